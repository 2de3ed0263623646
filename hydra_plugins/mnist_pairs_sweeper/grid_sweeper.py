"""``hydra/sweeper=grid``: Hydra's basic sweeper over a union of grids.

The report's benchmark is not one cartesian product (8 basic models x 3 activations x 15 seeds,
plus 5 advanced models x ReLU x 10 seeds), so ``grids`` lists several products; ``params`` and the
command line apply to every grid (the command line wins). Before launching, every job's config is
composed and validated, so a bad value stops the sweep before any training; then the sweep's
progress session is started (see mnist_pairs.results.progress). Runs whose folder already holds their
finished record are not launched at all (a resumed sweep launches only what is missing). After the
launch, runs without a finished record are named and the sweep exits non-zero. With
``tracking=mlflow`` the sweep's folder is exported once its jobs are done
(mnist_pairs.results.track.export_sweep)."""

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from omegaconf import DictConfig, OmegaConf

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

    def validate_jobs(self, jobs: Sequence[Sequence[str]]) -> tuple[list[str], list[int]]:
        """Compose every job and pass it through the validation pipeline as a single run is
        checked before Hydra makes its folder (mnist_pairs.config.checks.validate: the whole
        pipeline once per composition, the seed, data and run folder for each of its jobs); exit
        with one line naming the first bad value. Returns the model name of every job (for the
        progress estimate) and how many of its seeds one job takes."""
        from mnist_pairs.config.callbacks import one_line
        from mnist_pairs.config.checks import STAGES, seeds_per_job, validate
        from mnist_pairs.config.schema import ConfigError
        from mnist_pairs.training.data import DataError

        models: list[str] = []
        per_job: list[int] = []
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
                models.append(str(cfg.model.name))
                per_job.append(seeds_per_job(checked.device))
        return models, per_job

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

    def run_records(self, jobs: Sequence[Sequence[str]]) -> Iterator[tuple[bool, Path, str, dict[str, Any] | None]]:
        """(force, run folder, identity hash, its finished record or None) of every job, worked out
        as Hydra's run_job and the job do them: the record found by records.find_finished, in the
        run folder or in the folder named by the model's name that the run had before."""
        from mnist_pairs.config.checks import task_config
        from mnist_pairs.config.folders import legacy_run_folder, run_folder
        from mnist_pairs.results import records

        with self.hydra_config() as set_config:
            for overrides in jobs:
                cfg = self.compose(overrides)
                set_config(cfg)
                run_dir, ident = run_folder(cfg, "hydra.sweep.subdir"), records.config_hash(task_config(cfg))
                legacy = legacy_run_folder(run_dir, cfg.hydra.runtime.choices.get("model"), str(cfg.model.name))
                found = records.find_finished(ident, run_dir, legacy)  # one set aside: the job puts it back
                done = found is not None and found[0].name == records.RECORD_FILE
                yield bool(cfg.force), run_dir, ident, found[1] if done else None

    def finished_jobs(self, jobs: Sequence[Sequence[str]], sweep_dir: Path) -> list[bool]:
        """Which jobs have their finished record (ok or diverged, the same identity hash, no
        ``force``) in their run folder or the folder named by the model's name (run_records): such
        a job would only skip its run (mnist_pairs.train.run), so the sweep does not launch it,
        and under SLURM does not submit it. A record of another identity is left to the job, which
        sets it aside and redoes the run; a record of the job's identity set aside, to the job,
        which puts it back (mnist_pairs.training.run.finished_or_set_aside)."""
        from mnist_pairs.results import records

        if not any(sweep_dir.rglob(records.RECORD_FILE)):
            return [False] * len(jobs)
        return [not force and record is not None for force, _, _, record in self.run_records(jobs)]

    def report_unfinished(self, jobs: Sequence[Sequence[str]]) -> None:
        """After the launch: each job whose run has no finished record of its config (it failed,
        or its process died) is named with its error, and the sweep exits non-zero; the others
        have finished. Their records say why; the same command redoes exactly them."""
        unfinished = [
            f"{run_dir}: {why}"
            for _, run_dir, ident, record in self.run_records(jobs)
            if (why := self.why_unfinished(run_dir, ident, record)) is not None
        ]
        if unfinished:
            for line in unfinished:
                log.error("run failed: %s", line)
            sys.exit(
                f"error: {len(unfinished)} of {len(jobs)} runs of this sweep failed (listed above, with the error "
                "their "
                "record.json holds); the others finished. The same command redoes only the failed ones."
            )

    @staticmethod
    def why_unfinished(run_dir: Path, ident: str, finished: dict[str, Any] | None) -> str | None:
        """None for a run that finished (ok or diverged, this config); else why not, in a few words."""
        from mnist_pairs.results import records

        if finished is not None and finished["config_hash"] == ident:
            return None
        try:
            record = records.read_record(run_dir / records.RECORD_FILE)
        except records.CorruptRecordError:
            return "no record of this config (the run failed before writing one: the log above says why)"
        return str(record["error"]) if record["config_hash"] == ident else "no record of this config"

    @staticmethod
    def pack_seeds(jobs: Sequence[Sequence[str]], per_job: Sequence[int]) -> list[list[str]]:
        """Jobs that differ only in their seed, packed K at a time into jobs of K seeds: the first
        seed's overrides plus ``device.seed_batch=[...]`` (mnist_pairs.train trains them at once,
        or one after another, and writes each seed's record in its own folder)."""
        groups: dict[tuple, list[tuple[list[str], str, int]]] = {}
        for overrides, k in zip(jobs, per_job):
            rest, seed = split_seed(overrides)
            groups.setdefault(rest, []).append((list(overrides), seed, k))
        packed: list[list[str]] = []
        for members in groups.values():
            k = members[0][2]
            if k == 1 or members[0][1] is None:
                packed.extend(m[0] for m in members)
                continue
            for i in range(0, len(members), k):
                chunk = members[i : i + k]
                packed.append(chunk[0][0] + [f"device.seed_batch=[{','.join(m[1] for m in chunk)}]"])
        return packed

    def validate_sweep(self, jobs: Sequence[Sequence[str]]) -> tuple[list[str], list[int]]:
        """``validate_jobs`` for the whole sweep, timed."""
        tic = time.perf_counter()
        models, per_job = self.validate_jobs(jobs)
        log.info("sweep of %d runs validated in %.1f s", len(jobs), time.perf_counter() - tic)
        return models, per_job

    def sweep(self, arguments: list[str]) -> Any:
        from mnist_pairs.results import track
        from mnist_pairs.results.progress import record_outcome, start_session

        assert self.config is not None and self.launcher is not None
        jobs = self.job_overrides(arguments)
        models, per_job = self.validate_sweep(jobs)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        done = self.finished_jobs(jobs, sweep_dir)
        if any(done):
            log.info(
                "%d of %d runs already done (finished records of the same config): not launched", sum(done), len(jobs)
            )
        todo = [i for i, d in enumerate(done) if not d]
        jobs, per_job = [jobs[i] for i in todo], [per_job[i] for i in todo]
        launched = list(jobs)
        if jobs and max(per_job) > 1:
            jobs = self.pack_seeds(jobs, per_job)
            log.info(
                "%d runs in %d jobs of several seeds each (device.vectorize, device.seeds_per_job)",
                len(todo),
                len(jobs),
            )
        self.overrides = list(self.split_overrides_to_chunks(jobs, self.max_batch_size)) if jobs else []
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        launcher = self.config.hydra.launcher  # runs at once: joblib's n_jobs, or the submitit launchers' jobs
        workers = (
            launcher.get("n_jobs")
            or launcher.get("jobs")
            or min(int(launcher.get("array_parallelism") or 1), max(1, len(jobs)))
        )
        start_session(sweep_dir, models, workers=int(workers))
        line = None
        for model, d in zip(models, done):
            if d:
                line = record_outcome(sweep_dir, "skipped", model, 0.0)
        if line:
            log.info(line)
        returns: list[Sequence[JobReturn]] = []
        initial_job_idx = 0
        try:
            while not self.is_done():
                batch = self.get_job_batch()
                results = self.launcher.launch(batch, initial_job_idx=initial_job_idx)
                for r in results:
                    _ = r.return_value  # re-raises what escaped a job (the task records training errors itself)
                initial_job_idx += len(batch)
                returns.append(results)
        finally:
            track.export_sweep(self.config, sweep_dir)  # tracking=mlflow: what the jobs could not log (lost jobs too)
        self.report_unfinished(launched)
        return returns
