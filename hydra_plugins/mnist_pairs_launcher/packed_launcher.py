"""``hydra/launcher=packed_slurm`` and ``packed_submitit_local``: hydra-submitit-launcher with
several runs packed into one job, and no run lost silently.

hydra-submitit-launcher submits one job per run and stops at the first job that did not finish,
while the others go on unwatched. Here ``runs_per_job`` runs (or all runs dealt into ``jobs``) share one job (one
Python start and
one MNIST read for all of them: a run of a small model takes seconds, a job start several), the
launcher waits for every job, and then names each job that did not finish (cancelled, pre-empted,
failed, timed out), its SLURM state and the runs it held. Those runs have no finished record, so
the same command redoes exactly them (mnist_pairs.train skips runs with a finished record).
Interrupting the sweep cancels its jobs."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, LocalQueueConf, SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
from omegaconf import OmegaConf

log = logging.getLogger(__name__)

JobParams = tuple[list[str], str, int, str, Any]  # what BaseSubmititLauncher.__call__ takes


class UnfinishedJobsError(RuntimeError):
    """Some jobs ended without results; their runs are redone by rerunning the same command."""


class PackedSubmititLauncher(BaseSubmititLauncher):
    def __init__(self, runs_per_job: int = 1, jobs: int | None = None, **params: Any) -> None:
        for key, value in (("runs_per_job", runs_per_job), ("jobs", 1 if jobs is None else jobs)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"hydra.launcher.{key} must be a positive integer, got {value!r}")
        super().__init__(**params)
        self.runs_per_job = runs_per_job
        self.jobs = jobs

    def run_pack(self, pack: Sequence[JobParams]) -> list[JobReturn]:
        """Runs one job's share of the sweep, one after another, in this process."""
        return [self(*params) for params in pack]

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        return None  # a pre-empted pack is not requeued: its unfinished runs are redone on resume

    def make_executor(self) -> Any:
        """submitit's executor with this launcher's parameters (as hydra-submitit-launcher does)."""
        import submitit

        specific_init_keys = {"max_num_timeout"}
        init_params = {"folder": self.params["submitit_folder"]}
        init_params.update({f"{self._EXECUTOR}_{k}": v for k, v in self.params.items() if k in specific_init_keys})
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init_params)
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{
                k if k in base else f"{self._EXECUTOR}_{k}": v
                for k, v in self.params.items()
                if k not in specific_init_keys | {"submitit_folder"}
            }
        )
        return executor

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None and len(job_overrides) > 0
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        params: list[JobParams] = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        # consecutive runs, runs_per_job to a job; or, with jobs, the runs dealt round-robin into
        # that many jobs (balanced: sweeps list their slow runs first)
        if self.jobs:
            packs = [params[i :: self.jobs] for i in range(min(self.jobs, len(params)))]
        else:
            packs = [params[i : i + self.runs_per_job] for i in range(0, len(params), self.runs_per_job)]
        jobs = self.make_executor().map_array(self.run_pack, packs)
        log.info(
            f"Submitit '{self._EXECUTOR}': {len(params)} runs in {len(jobs)} jobs ({jobs[0].job_id.split('_')[0]}), "
            f"results in {sweep_dir}"
        )
        return self.collect(jobs, packs)

    def collect(self, jobs: Sequence[Any], packs: Sequence[Sequence[JobParams]]) -> list[JobReturn]:
        """Waits for every job; raises UnfinishedJobsError naming the jobs without results. Ctrl-C
        or SIGTERM while waiting cancels the jobs not done (else they would run on unwatched, and
        the same command, which resumes the sweep, would start their runs a second time)."""
        results: list[JobReturn] = []
        unfinished: list[str] = []
        try:
            for job, pack in zip(jobs, packs):
                try:
                    results.extend(job.results()[0])
                except Exception as error:  # submitit's UncompletedJobError / FailedJobError
                    runs = "; ".join(" ".join(filter_overrides(p[0])) for p in pack)
                    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                    unfinished.append(f"job {job.job_id} ({job.state}): {runs}: {first_line}")
        except KeyboardInterrupt:
            cancelled = [job for job in jobs if not job.done()]
            for job in cancelled:
                job.cancel(check=False)
            log.warning("cancelled %d of %d jobs that were queued or running", len(cancelled), len(jobs))
            raise
        if unfinished:
            for line in unfinished:
                log.error("no results from %s", line)
            raise UnfinishedJobsError(
                f"{len(unfinished)} of {len(jobs)} jobs ended without results (listed above); the runs they held "
                "have no finished record: run the same command again to redo exactly those"
            )
        return results


class PackedSlurmLauncher(PackedSubmititLauncher):
    _EXECUTOR = "slurm"


class PackedLocalLauncher(PackedSubmititLauncher):
    _EXECUTOR = "local"


@dataclass
class PackedSlurmConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.mnist_pairs_launcher.packed_launcher.PackedSlurmLauncher"
    runs_per_job: int = 1
    jobs: int | None = None


@dataclass
class PackedLocalConf(LocalQueueConf):
    _target_: str = "hydra_plugins.mnist_pairs_launcher.packed_launcher.PackedLocalLauncher"
    runs_per_job: int = 1
    jobs: int | None = None


ConfigStore.instance().store(group="hydra/launcher", name="packed_slurm", node=PackedSlurmConf, provider="mnist_pairs")
ConfigStore.instance().store(
    group="hydra/launcher", name="packed_submitit_local", node=PackedLocalConf, provider="mnist_pairs"
)
