"""``hydra/sweeper=grid``: Hydra's basic sweeper over a union of grids.

The report's benchmark is not one cartesian product (8 basic models x 3 activations x 15 seeds,
plus 5 advanced models x ReLU x 10 seeds), so ``grids`` lists several products; ``params`` and the
command line apply to every grid (the command line wins). Before launching, every job's config is
composed and validated, so a bad value stops the sweep before any training; then the sweep's
progress session is started (see mnist_pairs.progress)."""

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


@dataclass
class GridSweeperConf:
    _target_: str = "hydra_plugins.mnist_pairs_sweeper.grid_sweeper.GridSweeper"
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = None
    grids: Optional[List[Dict[str, str]]] = None


ConfigStore.instance().store(group="hydra/sweeper", name="grid", node=GridSweeperConf, provider="mnist_pairs")


def split_seed(overrides: Sequence[str]) -> Tuple[tuple, Optional[str]]:
    """(the job's overrides but its seed, the seed's value or None): jobs with the same first part
    differ only in their seed."""
    rest = tuple(o for o in overrides if not o.startswith("seed="))
    seeds = [o.split("=", 1)[1] for o in overrides if o.startswith("seed=")]
    return rest, (seeds[-1] if seeds else None)


class GridSweeper(BasicSweeper):
    def __init__(
        self,
        max_batch_size: Optional[int] = None,
        params: Optional[Dict[str, str]] = None,
        grids: Optional[List[Dict[str, str]]] = None,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.grids = [dict(g) for g in grids] if grids else [{}]

    def job_overrides(self, arguments: List[str]) -> List[List[str]]:
        """The override lists of every job: each grid's product, in order."""
        assert self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        jobs: List[List[str]] = []
        for grid in self.grids:
            conf = [f"{k}={v}" for k, v in {**self.params, **grid}.items()] + list(arguments)
            (batch,) = self.split_arguments(parser.parse_overrides(conf), None)
            jobs.extend(batch)
        return jobs

    def validate_jobs(self, jobs: Sequence[Sequence[str]]) -> Tuple[List[str], List[int]]:
        """Compose and validate every job; exit with one line naming the first bad value. Returns
        the model name of every job (for the progress estimate) and how many of its seeds one job
        takes: ``device.vectorize`` when > 1 (trained at once), else ``device.seeds_per_job``.

        Jobs that differ only in their seed share one composition (composing costs ~0.1 s)."""
        from mnist_pairs.config import ConfigError, validate

        assert self.hydra_context is not None and self.config is not None
        composed: Dict[tuple, Any] = {}
        models: List[str] = []
        per_job: List[int] = []
        for overrides in jobs:
            rest, seed = split_seed(overrides)
            if rest not in composed:
                composed[rest] = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            cfg = composed[rest]
            if seed is not None:
                cfg.seed = yaml.safe_load(seed)
            try:
                validate(cfg)
            except ConfigError as error:
                sys.exit(f"error: {error} (job: {' '.join(overrides)})")
            models.append(str(cfg.model.name))
            k = int(OmegaConf.select(cfg, "device.vectorize", default=1))
            per_job.append(k if k > 1 else int(OmegaConf.select(cfg, "device.seeds_per_job", default=1)))
        return models, per_job

    @staticmethod
    def pack_seeds(jobs: Sequence[Sequence[str]], per_job: Sequence[int]) -> List[List[str]]:
        """Jobs that differ only in their seed, packed K at a time into jobs of K seeds: the first
        seed's overrides plus ``device.seed_batch=[...]`` (mnist_pairs.train trains them at once,
        or one after another, and writes each seed's record in its own folder)."""
        groups: Dict[tuple, List[Tuple[List[str], str, int]]] = {}
        for overrides, k in zip(jobs, per_job):
            rest, seed = split_seed(overrides)
            groups.setdefault(rest, []).append((list(overrides), seed, k))
        packed: List[List[str]] = []
        for members in groups.values():
            k = members[0][2]
            if k == 1 or members[0][1] is None:
                packed.extend(m[0] for m in members)
                continue
            for i in range(0, len(members), k):
                chunk = members[i : i + k]
                packed.append(chunk[0][0] + [f"device.seed_batch=[{','.join(m[1] for m in chunk)}]"])
        return packed

    def sweep(self, arguments: List[str]) -> Any:
        from mnist_pairs.progress import start_session

        assert self.config is not None and self.launcher is not None
        jobs = self.job_overrides(arguments)
        tic = time.perf_counter()
        models, per_job = self.validate_jobs(jobs)
        log.info("sweep of %d runs validated in %.1f s", len(jobs), time.perf_counter() - tic)
        if max(per_job) > 1:
            jobs = self.pack_seeds(jobs, per_job)
            log.info("%d runs in %d jobs of several seeds each (device.vectorize, device.seeds_per_job)", len(models), len(jobs))
        self.overrides = list(self.split_overrides_to_chunks(jobs, self.max_batch_size))
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        launcher = self.config.hydra.launcher  # runs at once: joblib's n_jobs, or the submitit launchers' jobs
        workers = launcher.get("n_jobs") or launcher.get("jobs") or min(int(launcher.get("array_parallelism") or 1), len(jobs))
        start_session(sweep_dir, models, workers=int(workers))
        returns: List[Sequence[JobReturn]] = []
        initial_job_idx = 0
        while not self.is_done():
            batch = self.get_job_batch()
            results = self.launcher.launch(batch, initial_job_idx=initial_job_idx)
            for r in results:
                _ = r.return_value  # re-raises what escaped a job (the task records training errors itself)
            initial_job_idx += len(batch)
            returns.append(results)
        return returns
