"""The train entrypoint: compose -> validate -> run -> record.

python -m mnist_pairs.train model=cnn4_bn activation=tanh seed=3
python -m mnist_pairs.train -m model=cnn4_bn activation=relu,tanh,leakyrelu seed=0,1,2
"""

from __future__ import annotations

import logging
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
from mnist_pairs.training.run import run
from mnist_pairs.tune import mean_objective

log = logging.getLogger("mnist_pairs.train")


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """One job: one run, or a batch of seeds (at once or in turn); returns the tuning objective
    (validation accuracy, the mean over the job's seeds) for sweepers that optimise."""
    started, tic = records.now(), time.perf_counter()
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    run_dir = Path(hc.runtime.output_dir)
    done: list[records.RunRecord] = []
    try:
        dirs = seed_batch_dirs(cfg, run_dir, "hydra.sweep.subdir" if multirun else "hydra.run.dir")
        if len(dirs) > 1:
            done = run_seed_batch(cfg, dirs, variant=hc.job.override_dirname)
        else:
            done = [run(cfg, run_dir, variant=hc.job.override_dirname)]
    except (ConfigError, DataError) as error:
        sys.exit(f"error: {error}")  # one clear line, before any training
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
    """``python -m mnist_pairs.train``: the hydra node checked, then Hydra's run or multirun."""
    check_command_line(sys.argv[1:])
    main()


if __name__ == "__main__":
    cli()
