"""``hydra/sweeper=grid``: Hydra's basic sweeper over a union of grids.

The report's benchmark is not one cartesian product (8 basic models x 3 activations x 15 seeds,
plus 5 advanced models x ReLU x 10 seeds), so ``grids`` lists several products; ``params`` and the
command line apply to every grid (the command line wins). The sweeper decides which jobs to
launch: every job's config is composed and validated first, so a bad value stops the sweep before
any training; runs whose folder already holds their finished record are not launched at all (a
resumed sweep launches only what is missing); seeds of a config are packed into jobs of several
(``device.seeds_per_job``, ``device.vectorize``). The launch runs inside
mnist_pairs.results.session.sweep_session: progress and ETA, export, the report of runs that did
not finish, Ctrl-C and SIGTERM."""

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from omegaconf import DictConfig, OmegaConf

if TYPE_CHECKING:
    from mnist_pairs.results.session import PlannedRun

log = logging.getLogger(__name__)


@dataclass
class GridSweeperConf:
    _target_: str = "hydra_plugins.mnist_pairs_sweeper.grid_sweeper.GridSweeper"
    max_batch_size: int | None = None
    params: dict[str, str] | None = None
    grids: list[dict[str, str]] | None = None


ConfigStore.instance().store(group="hydra/sweeper", name="grid", node=GridSweeperConf, provider="mnist_pairs")


def split_seed(overrides: Sequence[str]) -> tuple[tuple, str | None]:
    """(the job's overrides but its seed, the seed's value or None): jobs with the same first part
    differ only in their seed."""
    rest = tuple(o for o in overrides if not o.startswith("seed="))
    seeds = [o.split("=", 1)[1] for o in overrides if o.startswith("seed=")]
    return rest, (seeds[-1] if seeds else None)


class GridSweeper(BasicSweeper):
    def __init__(
        self,
        max_batch_size: int | None = None,
        params: dict[str, str] | None = None,
        grids: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.grids = [dict(g) for g in grids] if grids else [{}]
        self.composed: dict[tuple, DictConfig] = {}
        self.validated: set = set()  # compositions validated in full: their other jobs differ only in the seed

    def job_overrides(self, arguments: list[str]) -> list[list[str]]:
        """The override lists of every job: each grid's product, in order."""
        assert self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        jobs: list[list[str]] = []
        for grid in self.grids:
            conf = [f"{k}={v}" for k, v in {**self.params, **grid}.items()] + list(arguments)
            (batch,) = self.split_arguments(parser.parse_overrides(conf), None)
            jobs.extend(batch)
        return jobs

    def compose(self, overrides: Sequence[str]) -> DictConfig:
        """A job's config. Jobs that differ only in their seed share one composition (composing
        costs ~0.1 s); the seed is set on it."""
        assert self.hydra_context is not None and self.config is not None
        rest, seed = split_seed(overrides)
        if rest not in self.composed:
            self.composed[rest] = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        cfg = self.composed[rest]
        if seed is not None:
            cfg.seed = yaml.safe_load(seed)
        return cfg

    def validate_sweep(self, jobs: Sequence[Sequence[str]]) -> list[int]:
        """Compose every job and pass it through the validation pipeline as a single run is
        checked before Hydra makes its folder (mnist_pairs.config.checks.validate: the whole
        pipeline once per composition, the seed, data and run folder for each of its jobs); exit
        with one line naming the first bad value; log the time it took. Returns how many of its
        seeds one job takes, for every job."""
        from mnist_pairs.config.callbacks import one_line
        from mnist_pairs.config.checks import STAGES, seeds_per_job, validate
        from mnist_pairs.config.schema import ConfigError
        from mnist_pairs.training.data import DataError

        tic, per_job = time.perf_counter(), []
        with self.hydra_config() as set_config:
            for overrides in jobs:
                cfg = self.compose(overrides)
                try:
                    set_config(cfg)
                    stages = ("schema", "data") if id(cfg) in self.validated else STAGES[:4]
                    checked = validate(cfg, stages, folder_key="hydra.sweep.subdir", packs_seeds=True)
                    self.validated.add(id(cfg))
                except (ConfigError, DataError) as error:
                    sys.exit(f"error: {error} (job: {' '.join(overrides)})")
                except Exception as error:  # one line, not a traceback, before anything is launched
                    sys.exit(f"error: {one_line(error)} (while checking job: {' '.join(overrides)})")
                assert checked is not None
                per_job.append(seeds_per_job(checked.device))
        log.info("sweep of %d runs validated in %.1f s", len(jobs), time.perf_counter() - tic)
        return per_job

    @contextlib.contextmanager
    def hydra_config(self) -> Iterator[Callable[[DictConfig], None]]:
        """A setter of Hydra's global config to a job's (a run folder's name reads
        ``${hydra:job.override_dirname}``), set only when the composition changes; the sweep's own
        config is restored after."""
        hydra_config = HydraConfig.instance()
        before, current = hydra_config.cfg, [None]

        def set_config(cfg: DictConfig) -> None:
            if cfg is not current[0]:
                hydra_config.set_config(cfg)
                current[0] = cfg

        try:
            yield set_config
        finally:
            hydra_config.cfg = before

    def plan_runs(self, jobs: Sequence[Sequence[str]], sweep_dir: Path) -> "list[PlannedRun]":
        """Every job's run as Hydra's run_job and the job will do it: its folder, identity, finished
        record, cell and work (mnist_pairs.results.session.plan_run)."""
        from mnist_pairs.config.folders import run_folder
        from mnist_pairs.results.session import plan_run

        with self.hydra_config() as set_config:
            planned = []
            for overrides in jobs:
                cfg = self.compose(overrides)
                set_config(cfg)
                planned.append(plan_run(cfg, sweep_dir, run_folder(cfg, "hydra.sweep.subdir")))
        return planned

    @staticmethod
    def pack_seeds(jobs: Sequence[Sequence[str]], per_job: Sequence[int], todo: Sequence[int]) -> list[list[int]]:
        """The jobs ``todo`` that differ only in their seed, packed K at a time (K = ``per_job``, 1
        keeps each job alone): the indices of each packed job's members, in launch order."""
        groups: dict[tuple, list[int]] = {}
        for i in todo:
            rest, seed = split_seed(jobs[i])
            groups.setdefault(rest if seed is not None else (i,), []).append(i)
        packed: list[list[int]] = []
        for members in groups.values():
            k = per_job[members[0]]
            packed.extend(members[i : i + k] for i in range(0, len(members), k))
        return packed

    @staticmethod
    def packed_overrides(jobs: Sequence[Sequence[str]], per_job: Sequence[int], members: Sequence[int]) -> list[str]:
        """One launched job's overrides: its own for one seed per job, else the first seed's plus
        ``device.seed_batch=[...]`` (mnist_pairs.train trains them at once, or one after another,
        and writes each seed's record in its own folder)."""
        if per_job[members[0]] == 1 or split_seed(jobs[members[0]])[1] is None:
            return list(jobs[members[0]])
        seeds = ",".join(str(split_seed(jobs[i])[1]) for i in members)
        return [*jobs[members[0]], f"device.seed_batch=[{seeds}]"]

    def sweep(self, arguments: list[str]) -> Any:
        from mnist_pairs.results.session import interruptible_sweep, sweep_session

        assert self.config is not None and self.launcher is not None
        with interruptible_sweep():
            jobs = self.job_overrides(arguments)
            per_job = self.validate_sweep(jobs)
            sweep_dir = Path(self.config.hydra.sweep.dir)
            runs = self.plan_runs(jobs, sweep_dir)
            if any(r.done for r in runs):
                log.info(
                    "%d of %d runs already done (finished records of the same config): not launched",
                    sum(r.done for r in runs),
                    len(jobs),
                )
            todo = [i for i, r in enumerate(runs) if not r.done]
            packed = self.pack_seeds(jobs, per_job, todo)
            if len(packed) < len(todo):
                log.info(
                    "%d runs in %d jobs of several seeds each (device.vectorize, device.seeds_per_job)",
                    len(todo),
                    len(packed),
                )
            launched = [self.packed_overrides(jobs, per_job, members) for members in packed]
            self.overrides = list(self.split_overrides_to_chunks(launched, self.max_batch_size)) if launched else []
            sweep_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
            launcher = self.config.hydra.launcher  # runs at once: joblib's n_jobs, or the submitit launchers' jobs
            workers = (
                launcher.get("n_jobs")
                or launcher.get("jobs")
                or min(int(launcher.get("array_parallelism") or 1), max(1, len(packed)))
            )
            returns: list[Sequence[JobReturn]] = []
            with sweep_session(self.config, runs, packed, int(workers)):
                while not self.is_done():
                    batch = self.get_job_batch()
                    results = self.launcher.launch(batch, initial_job_idx=sum(len(r) for r in returns))
                    for r in results:
                        _ = r.return_value  # re-raises what escaped a job (the task records training errors itself)
                    returns.append(results)
            return returns
