"""A run's record built from what training gives: the record of a run about to train (with
this process's device and library versions), completed with its final metrics, and written
however training ends."""

from __future__ import annotations

import logging
import platform
import signal
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

import mnist_pairs
from mnist_pairs.results import records, track
from mnist_pairs.training.data import Pairs
from mnist_pairs.training.engine import DivergedError, FitResult, evaluate, score

log = logging.getLogger("mnist_pairs.train")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def new_record(config: dict[str, Any], ident: str, variant: str, device: torch.device) -> records.RunRecord:
    """records.new_record with what this process knows of its device and libraries."""
    import numpy
    import omegaconf
    import torchvision

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "hydra": hydra.__version__,
        "omegaconf": omegaconf.__version__,
        "numpy": numpy.__version__,
        "mnist_pairs": mnist_pairs.__version__,
    }
    return records.new_record(config, ident, variant, str(device), device_name(device), versions)


def complete_record(
    record: records.RunRecord, model: torch.nn.Module, result: FitResult, train: Pairs, val: Pairs | None, test: Pairs
) -> None:
    """Final eval-mode metrics on all pairs (no test metrics without test pairs), the predicted
    class of every test pair (and the digit branch's accuracy), the history and the time."""
    metrics: records.Metrics = {}
    metrics["train_acc"], metrics["train_loss"] = evaluate(model, train)
    test_pairs = None
    if len(test):
        scores = score(model, test, per_pair=True)
        metrics["test_acc"], metrics["test_loss"] = scores.acc, scores.loss
        if scores.digit_acc is not None:
            metrics["digit_acc"] = scores.digit_acc
        test_pairs = records.encode_test_pairs(test.digits.reshape(-1).tolist(), scores.predicted.tolist())
    if val is not None:
        metrics["val_acc"], metrics["val_loss"] = evaluate(model, val)
    best_epoch = result.best_epoch if val is not None else None
    records.complete_record(record, metrics, result.history, result.train_time_s, best_epoch, test_pairs)


class Recorded:
    """Around training, the records of its runs (``(cfg, run_dir, record)`` each): written however
    training ends (``finished_at`` set), then logged and tracked unless it raised. A NaN loss
    (DivergedError) is recorded as ``diverged``; an error as ``failed`` (every record: a batch's
    seeds train as one) and re-raised; SIGINT or SIGTERM (an ``Interrupted``, or a plain
    KeyboardInterrupt, which counts as SIGINT) as ``interrupted`` with the signal's name and no
    traceback (the run was stopped, it did not fail), re-raised, except the runs in ``done``
    (complete, weights saved)."""

    def __init__(self, runs: list[tuple[DictConfig, Path, records.RunRecord]]) -> None:
        self.runs = runs
        self.done: set[Path] = set()

    def __enter__(self) -> Recorded:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> bool:
        for _, run_dir, record in self.runs:
            if isinstance(error, DivergedError):
                record.update(status="diverged", error=str(error))
            elif isinstance(error, Exception):
                record.update(status="failed", error="".join(traceback.format_exception_only(error)).strip())
                record["traceback"] = traceback.format_exc()
            elif isinstance(error, KeyboardInterrupt) and run_dir not in self.done:
                name = signal.Signals(getattr(error, "signum", signal.SIGINT)).name
                record.update(status="interrupted", error=f"interrupted by {name}")
                record.pop("traceback", None)
            record["finished_at"] = records.now()
            records.write_record(run_dir, record)
        if error is None or isinstance(error, DivergedError):
            for cfg, run_dir, record in self.runs:
                log_done(record)
                track.log_run(cfg, run_dir, record)
        return isinstance(error, DivergedError)


def log_done(record: records.RunRecord) -> None:
    name = f"{record['model']}/{record['activation']} seed={record['seed']}"
    if record["status"] == "ok":
        m = record["metrics"]
        shown = " ".join(f"{k} {m[k]:.4f}" for k in ("test_acc", "val_acc", "train_acc", "test_loss") if k in m)
        log.info("%s done: %s, %.2f s", name, shown, record["train_time_s"])
    else:
        log.warning("%s %s: %s", name, record["status"], record["error"])
