"""The train entrypoint: compose -> validate -> run -> record.

python -m mnist_pairs.train model=cnn4_bn activation=tanh seed=3
python -m mnist_pairs.train -m model=cnn4_bn activation=relu,tanh,leakyrelu seed=0,1,2
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from mnist_pairs.config.callbacks import check_command_line
from mnist_pairs.config.folders import seed_batch_dirs
from mnist_pairs.config.schema import ConfigError
from mnist_pairs.results import records
from mnist_pairs.results.progress import record_outcomes
from mnist_pairs.training.batch import run_seed_batch
from mnist_pairs.training.data import DataError
from mnist_pairs.training.interrupt import exit_code, handle_stop_signals, quiet_unraisable_interrupts
from mnist_pairs.training.run import run
from mnist_pairs.tune import mean_objective

log = logging.getLogger("mnist_pairs.train")


def signal_name(error: BaseException) -> str:
    """SIGINT or SIGTERM: the signal behind an ``Interrupted`` (a plain KeyboardInterrupt: SIGINT)."""
    return signal.Signals(exit_code(error) - 128).name


def interrupted_line(error: BaseException, cfg: DictConfig, dirs: dict[int, Path]) -> str:
    """The one line a stopped job prints: the signal, its runs without a finished record (an
    ``interrupted`` one, or none where a seed had not started) by their folders, and how to go on."""
    results = Path(cfg.output_root) / cfg.experiment_name
    left = [
        str(run_dir.relative_to(results) if run_dir.is_relative_to(results) else run_dir)
        for run_dir in dirs.values()
        if records.finished_record(run_dir) is None
    ]
    if not left:
        return f"interrupted ({signal_name(error)}) after its runs finished: nothing left to do"
    return f"interrupted ({signal_name(error)}): {', '.join(left)} not finished; the same command resumes"


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """One job: one run, or a batch of seeds (at once or in turn); returns the tuning objective
    (validation accuracy, the mean over the job's seeds) for sweepers that optimise."""
    quiet_unraisable_interrupts()  # a worker's Ctrl-C, too, prints no traceback
    started, tic = records.now(), time.perf_counter()
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    run_dir = Path(hc.runtime.output_dir)
    done: list[records.RunRecord] = []
    dirs = {int(cfg.seed): run_dir}
    try:
        dirs = seed_batch_dirs(cfg, run_dir, "hydra.sweep.subdir" if multirun else "hydra.run.dir")
        if len(dirs) > 1:
            done = run_seed_batch(cfg, dirs, variant=hc.job.override_dirname)
        else:
            done = [run(cfg, run_dir, variant=hc.job.override_dirname)]
    except (ConfigError, DataError) as error:
        sys.exit(f"error: {error}")  # one clear line, before any training
    except KeyboardInterrupt as error:  # SIGINT or SIGTERM (handle_stop_signals): recorded as interrupted
        if multirun:
            raise  # the sweep stops, and says what is left
        print(interrupted_line(error, cfg, dirs), file=sys.stderr)
        sys.exit(exit_code(error))
    except Exception as error:
        log.error("run failed (recorded in %s): %s", run_dir, error)
        if not multirun:
            sys.exit(1)  # in a sweep, one crashed run must not stop the others
    if multirun:
        # an old record: skipped; a batch that raised: every seed failed
        outcomes = [("skipped" if r["finished_at"] < started else r["status"]) for r in done] or ["failed"] * len(dirs)
        line = record_outcomes(Path(hc.sweep.dir), list(zip(outcomes, dirs.values())), time.perf_counter() - tic)
        if line:
            log.info(line)
    return mean_objective(done)


def cli() -> None:
    """``python -m mnist_pairs.train``: the hydra node checked, then Hydra's run or multirun.
    SIGINT and SIGTERM stop it with one line and the shell's status for the signal (130, 143)."""
    handle_stop_signals()
    check_command_line(sys.argv[1:])
    try:
        main()
    except KeyboardInterrupt as error:  # before a run started, or a sweep that let it through
        print(f"interrupted ({signal_name(error)}); the same command resumes", file=sys.stderr)
        sys.exit(exit_code(error))


if __name__ == "__main__":
    cli()
