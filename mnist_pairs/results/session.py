"""A sweep's session around its launch: progress and ETA, MLflow export, the report of what did
not finish, and an interruption (Ctrl-C, SIGTERM) as one line instead of a traceback.

    with sweep_session(config, runs, jobs, workers):
        launcher.launch(...)

``runs`` are every run of the sweep (``plan_run``: its folder, identity, cell, finished record and
predicted seconds), ``jobs`` the launched ones as lists of indices into ``runs``, in launch order."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import signal
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mnist_pairs.results import records
from mnist_pairs.results.eta import Run
from mnist_pairs.results.progress import fmt_seconds, record_outcomes, run_key, session_eta, start_session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep as its sweeper sees it before launch."""

    run_dir: Path
    ident: str
    force: bool
    record: records.RunRecord | None  # its finished record of this identity, if any
    run: Run
    legacy_dir: Path | None = None  # its folder when run folders were named by model.name

    @property
    def done(self) -> bool:
        """Finished with this identity and not forced: the job would only skip it."""
        return not self.force and self.record is not None


def plan_run(cfg: DictConfig, sweep_dir: Path, run_dir: Path) -> PlannedRun:
    """A job's run (Hydra's global config set to the job's ``cfg``) as mnist_pairs.train will do it."""
    from mnist_pairs.config.checks import task_config
    from mnist_pairs.config.folders import legacy_run_folder

    config = task_config(cfg)
    run = Run(run_key(sweep_dir, run_dir), records.cell_hash(config), str(config["model"]["name"]), run_work(config))
    ident = records.config_hash(config)
    legacy = legacy_run_folder(run_dir, cfg.hydra.runtime.choices.get("model"), str(cfg.model.name))
    return PlannedRun(run_dir, ident, bool(cfg.force), finished(ident, run_dir, legacy), run, legacy)


def finished(ident: str, run_dir: Path, legacy_dir: Path | None) -> records.RunRecord | None:
    """The run's finished record (records.find_finished: its folder, then its folder by model
    name); one only set aside is not: the job puts it back (training.run.finished_or_set_aside)."""
    found = records.find_finished(ident, run_dir, legacy_dir)
    return found[1] if found is not None and found[0].name == records.RECORD_FILE else None


# Timing a model: PROBE_WARMUP steps untimed (memory and kernels set up), then at least PROBE_STEPS
# steps and PROBE_SECONDS of them; 0.1-0.2 s a model config, ~1 s for the report's ResNets.
PROBE_WARMUP, PROBE_STEPS, PROBE_SECONDS = 2, 3, 0.1
PROBE_MIN_STEPS = 20  # a run's training steps below which its model is not timed


def run_work(config: dict[str, Any]) -> float:
    """Seconds a run of resolved ``config`` takes on one quiet worker of this machine, predicted
    before launch: its training steps at the measured seconds of one step (``step_seconds``), and
    its evaluations (forward only, a third of a step per pair): the history's test passes every
    ``train.eval_interval`` epochs, then the final pass over the training and test pairs. 0 (not
    known) for a run of fewer than ``PROBE_MIN_STEPS`` steps: timing its model would cost a
    good part of the run."""
    batch = int(records.setting(config, "train.batch_size", 250))
    n_train = int(records.setting(config, "data.n_train", 1000)) - int(records.setting(config, "data.n_val", 0))
    n_test = int(records.setting(config, "data.n_test", 1000))
    epochs = int(records.setting(config, "train.epochs", 1))
    steps = epochs * -(-n_train // batch)
    if steps < PROBE_MIN_STEPS:
        return 0.0
    threads = int(records.setting(config, "device.threads", 0) or 0)
    layout = records.setting(config, "device.channels_last", "auto")
    model_json = json.dumps(config["model"], sort_keys=True, default=str)
    seconds = step_seconds(model_json, min(batch, n_train), threads, layout)
    evaluated = (epochs // int(records.setting(config, "train.eval_interval", 1) or 1) + 1) * n_test + n_train
    return seconds * steps + seconds / min(batch, n_train) / 3 * evaluated


@functools.lru_cache(maxsize=256)
def step_seconds(model_json: str, batch: int, threads: int, channels_last: str | bool) -> float:
    """Seconds of one training step (forward, backward, SGD update) of the model on ``batch``
    random pairs, measured on this machine's CPU with the run's torch thread count (0: torch's):
    the fastest timed step (what else runs on the machine only adds to a step). Time per FLOP
    differs 2x between the report's model families here (docs/performance.md), so a run's cost
    is timed, not counted. 0 when it cannot be measured (the ETA then learns the run's
    cost from its cell alone)."""
    import time

    import torch

    from mnist_pairs.models import build_model
    from mnist_pairs.training.device import use_channels_last
    from mnist_pairs.training.engine import objective, step

    before = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(threads)
        model = build_model(json.loads(model_json)).train()
        x = torch.randn(batch, 2, 14, 14)
        if use_channels_last(channels_last, model):
            model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        target, digits = torch.randint(0, 2, (batch,)), torch.randint(0, 10, (batch, 2))
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
        timed: list[float] = []
        while len(timed) < PROBE_STEPS + PROBE_WARMUP or sum(timed[PROBE_WARMUP:]) < PROBE_SECONDS:
            begin = time.perf_counter()
            loss, _, _ = objective(model, x, target, digits)
            step(optimizer, loss, "none")
            timed.append(time.perf_counter() - begin)
        return min(timed[PROBE_WARMUP:])  # what else ran on the machine only adds to a step
    except Exception as error:  # an estimate must never stop a sweep
        log.warning("progress: a step of model %s was not timed (%s)", json.loads(model_json).get("name"), error)
        return 0.0
    finally:
        torch.set_num_threads(before)


def measured_history(sweep_dir: Path, runs: Sequence[Run]) -> list[tuple[Run, float]]:
    """(run, seconds) of every finished record under the sweep's folder whose cell is one of
    ``runs``' cells (any seed); records of other configs, or without times, are left out. A
    record's seconds are its share of wall time: ``finished_at - started_at``, over K for a run
    trained with K-1 other seeds at once (``device.vectorize``)."""
    cells = {r.cell: r for r in runs}
    history: list[tuple[Run, float]] = []
    for path in sweep_dir.rglob(records.RECORD_FILE):
        record = records.finished_record(path.parent)
        if record is None or not isinstance(record.get("config"), dict):
            continue
        cell = records.cell_hash(record["config"])
        try:
            wall = datetime.fromisoformat(record["finished_at"]) - datetime.fromisoformat(record["started_at"])
            seconds = wall.total_seconds() / max(1, int(records.setting(record["config"], "device.vectorize", 1) or 1))
        except (KeyError, TypeError, ValueError):
            continue
        if cell in cells and seconds > 0:
            history.append((cells[cell], seconds))
    return history


@contextlib.contextmanager
def interruptible_sweep() -> Iterator[None]:
    """Around a whole sweep: SIGINT and SIGTERM raise training.interrupt.Interrupted; one before
    the launch (while the jobs are validated) ends the sweep with one line, nothing having run."""
    from mnist_pairs.training.interrupt import exit_code, handle_stop_signals

    handle_stop_signals()
    try:
        yield
    except KeyboardInterrupt as error:
        code = exit_code(error)
        print(
            f"sweep interrupted ({signal.Signals(code - 128).name}) before its launch: no run was started",
            file=sys.stderr,
        )
        sys.exit(code)


@contextlib.contextmanager
def sweep_session(
    config: DictConfig, runs: Sequence[PlannedRun], jobs: Sequence[Sequence[int]], workers: int
) -> Iterator[None]:
    """Around a sweep's launch: the progress session started (finished runs logged as already
    done); after it, the sweep's folder exported (``tracking=mlflow``) and its unfinished runs
    named (exit 1); on SIGINT or SIGTERM (``interruptible_sweep`` makes them raise) one line and
    exit 130 or 143 (the same command resumes)."""
    from mnist_pairs.results import track
    from mnist_pairs.training.interrupt import exit_code, stop_requested

    sweep_dir = Path(str(config.hydra.sweep.dir))
    try:
        start_progress(sweep_dir, runs, jobs, workers)
        yield
    except BaseException as error:
        stopped = error if isinstance(error, KeyboardInterrupt) else stop_requested()
        if stopped is None:
            track.export_sweep(config, sweep_dir)  # what the jobs could not log (lost jobs too)
            raise
        # SIGINT or SIGTERM, whatever error it became; the records written stay
        code = exit_code(stopped)
        finished = sum(r.record is not None for r in replan(runs))
        name = signal.Signals(code - 128).name
        print(
            f"sweep interrupted ({name}): {finished} of {len(runs)} runs finished, {len(runs) - finished} not; "
            "the same command resumes",
            file=sys.stderr,
        )
        sys.exit(code)
    track.export_sweep(config, sweep_dir)
    report_unfinished(runs)


def start_progress(sweep_dir: Path, runs: Sequence[PlannedRun], jobs: Sequence[Sequence[int]], workers: int) -> None:
    """The progress session of the launched ``jobs``, with the measured seconds of finished runs
    of the same cells; the runs already done are logged as such, and the predicted time is logged."""
    history = measured_history(sweep_dir, [r.run for r in runs])
    launched = [[runs[i].run.key for i in job] for job in jobs]
    session = start_session(sweep_dir, [r.run for r in runs], launched, workers, history)
    line = record_outcomes(sweep_dir, [("skipped", r.run_dir) for r in runs if r.done], 0.0)
    if line:
        log.info(line)
    if jobs:
        predicted = fmt_seconds(session_eta(session, [], session["started"]))
        log.info("sweep of %d jobs on %d workers: predicted %s", len(jobs), workers, predicted)


def replan(runs: Sequence[PlannedRun]) -> list[PlannedRun]:
    """The runs with their finished records read again (after the launch)."""
    return [dataclasses.replace(r, record=finished(r.ident, r.run_dir, r.legacy_dir)) for r in runs]


def report_unfinished(runs: Sequence[PlannedRun]) -> None:
    """After the launch: each run without a finished record of its config (it failed, or its
    process died) is named with its error, and the sweep exits non-zero; the others have finished.
    Their records say why; the same command redoes exactly them."""
    unfinished = [f"{r.run_dir}: {why_unfinished(r)}" for r in replan(runs) if r.record is None]
    if unfinished:
        for line in unfinished:
            log.error("run failed: %s", line)
        sys.exit(
            f"error: {len(unfinished)} of {len(runs)} runs of this sweep failed (listed above, with the error their "
            "record.json holds); the others finished. The same command redoes only the failed ones."
        )


def why_unfinished(run: PlannedRun) -> str:
    """Why a run has no finished record of its config, in a few words."""
    try:
        record = records.read_record(run.run_dir / records.RECORD_FILE)
    except records.CorruptRecordError:
        return "no record of this config (the run failed before writing one: the log above says why)"
    return str(record["error"]) if record["config_hash"] == run.ident else "no record of this config"
