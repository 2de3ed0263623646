"""The train entrypoint: compose -> validate -> run -> record.

    python -m mnist_pairs.train model=cnn4_bn activation=tanh seed=3
    python -m mnist_pairs.train -m model=cnn4_bn activation=relu,tanh,leakyrelu seed=0,1,2
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import mnist_pairs
from mnist_pairs import records
from mnist_pairs.config import ConfigError, resolve_device, use_channels_last, validate
from mnist_pairs.augment import AugmentSettings, augment
from mnist_pairs.data import DataNotFoundError, make_pairs, split_validation
from mnist_pairs.progress import record_outcome
from mnist_pairs.engine import Augmenter, DivergedError, TrainSettings, evaluate, fit
from mnist_pairs.seeding import generator, stream_seed

log = logging.getLogger("mnist_pairs.train")


def run_subdir(model: str, activation: str, seed: Any, variant: str = "") -> str:
    """A run's directory below its experiment: model/activation[/variant]/seed=N. ``variant`` is
    Hydra's override_dirname of the keys that are not already in the path."""
    return "/".join(p for p in (model, activation, variant, f"seed={seed}") if p)


OmegaConf.register_new_resolver("run_subdir", run_subdir, replace=True)


def build_model(model_cfg: DictConfig) -> torch.nn.Module:
    """Instantiate the model group's ``_target_`` (its ``name`` is a label, not an argument)."""
    spec = OmegaConf.to_container(model_cfg, resolve=True)
    spec.pop("name", None)
    return instantiate(spec)


def library_versions() -> dict[str, str]:
    import numpy
    import omegaconf
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "hydra": hydra.__version__,
        "omegaconf": omegaconf.__version__,
        "numpy": numpy.__version__,
        "mnist_pairs": mnist_pairs.__version__,
    }


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


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def slurm_job() -> dict[str, str]:
    """``{"slurm_job": "<array job>_<task>"}`` (or the plain job id) when SLURM runs this process."""
    env = os.environ
    if "SLURM_ARRAY_JOB_ID" in env:
        return {"slurm_job": f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"}
    return {"slurm_job": env["SLURM_JOB_ID"]} if "SLURM_JOB_ID" in env else {}


def train_settings(cfg: DictConfig) -> TrainSettings:
    return TrainSettings(**OmegaConf.to_container(cfg.train, resolve=True))


def augmenter(cfg: DictConfig) -> Augmenter | None:
    """The run's on-the-fly augmentation (its own random stream), or None for ``augment=none``."""
    settings = AugmentSettings(**{k: v for k, v in OmegaConf.to_container(cfg.augment, resolve=True).items() if k != "name"})
    if not settings.active:
        return None
    stream = generator(cfg.seed, "augment")
    return lambda x, digits: augment(x, digits, settings, stream)


def tuning_objective(record: records.RunRecord) -> float | None:
    """What a tuning sweeper (experiment=tune) maximises: the validation accuracy, and nothing
    computed from the test pairs. None without validation pairs or when the run did not finish."""
    metrics = record["metrics"] or {}
    return metrics.get("val_acc")


def run(cfg: DictConfig, run_dir: Path, variant: str = "") -> records.RunRecord:
    """Train one run and write its record into ``run_dir``; skip it when ``run_dir`` already holds
    a finished record of the same config (unless ``force``); a finished record of another config
    (a default changed since) is renamed aside, never overwritten, and the run is redone. A NaN loss is recorded as
    ``diverged``; an error while building or training the model is recorded as ``failed`` and
    re-raised; config and data errors raise before any work and write nothing."""
    validate(cfg)
    config = OmegaConf.to_container(cfg, resolve=True)
    ident = records.config_hash(config)
    done = records.finished_record(run_dir)
    if done is not None and not cfg.force:
        if done["config_hash"] == ident:
            log.info("skip %s: finished record exists (force=true redoes it)", run_dir)
            return done
        kept = records.set_aside(run_dir, done["config_hash"])  # a changed config: redo, keep the old
        log.warning("%s held a finished run of another config (hash %s, now %s): kept as %s", run_dir, done["config_hash"], ident, kept.name)

    device = resolve_device(cfg.device.type)
    if cfg.device.threads:
        torch.set_num_threads(cfg.device.threads)
    train, test = make_pairs(
        cfg.data.root, cfg.data.n_train, cfg.data.n_test, generator(cfg.seed, "data"),
        scale=cfg.data.scale, download=cfg.data.download, cache_dir=cfg.data.cache_dir,
    )  # fmt: skip
    train, val = split_validation(train, cfg.data.n_val)
    train, test = train.to(device), test.to(device)
    val = val.to(device) if val is not None else None
    record: records.RunRecord = {
        "schema_version": records.SCHEMA_VERSION,
        "status": "failed",
        "error": None,
        "model": cfg.model.name,
        "activation": cfg.activation.name,
        "variant": variant,
        "seed": cfg.seed,
        "config_hash": ident,
        "config": config,
        "n_params": 0,
        "metrics": None,
        "history": None,
        "train_time_s": None,
        "device": str(device),
        "device_name": device_name(device),
        "versions": library_versions(),
        "started_at": now(),
        "finished_at": "",
        "host": platform.node(),
        **slurm_job(),
    }
    name = f"{cfg.model.name}/{cfg.activation.name} seed={cfg.seed}"

    def log_epoch(epoch: int, row: dict[str, float]) -> None:
        log.info("%s epoch %d/%d %s", name, epoch, cfg.train.epochs, " ".join(f"{k} {v:.4f}" for k, v in row.items()))

    try:
        torch.manual_seed(stream_seed(cfg.seed, "init"))  # initialisation and dropout masks
        model = build_model(cfg.model).to(device)
        if use_channels_last(cfg.device.channels_last, model):
            model = model.to(memory_format=torch.channels_last)
            train, test = train.channels_last(), test.channels_last()
            val = val.channels_last() if val is not None else None
        optimizer = instantiate(cfg.optimizer)(model.parameters())
        record["n_params"] = sum(p.numel() for p in model.parameters())
        log.info("%s: %d parameters, %d/%d pairs, %s", name, record["n_params"], len(train), len(test), record["device_name"])
        result = fit(model, optimizer, train, test, train_settings(cfg), generator(cfg.seed, "shuffle"), log_epoch,
                     val=val, augment=augmenter(cfg))  # fmt: skip
        train_acc, train_loss = evaluate(model, train)
        test_acc, test_loss = evaluate(model, test)
        metrics: records.Metrics = {"train_acc": train_acc, "train_loss": train_loss, "test_acc": test_acc, "test_loss": test_loss}
        if val is not None:
            metrics["val_acc"], metrics["val_loss"] = evaluate(model, val)
            record["best_epoch"] = result.best_epoch
        record.update(status="ok", history=result.history, train_time_s=result.train_time_s, metrics=metrics)
    except DivergedError as error:
        record.update(status="diverged", error=str(error))
    except Exception as error:
        record.update(status="failed", error="".join(traceback.format_exception_only(error)).strip())
        record["traceback"] = traceback.format_exc()
        raise
    finally:
        record["finished_at"] = now()
        records.write_record(run_dir, record)
    if record["status"] == "ok":
        m = record["metrics"]
        log.info("%s done: test_acc %.4f train_acc %.4f test_loss %.4f, %.2f s", name, m["test_acc"], m["train_acc"], m["test_loss"], record["train_time_s"])
    else:
        log.warning("%s diverged: %s", name, record["error"])
    return record


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """One run; returns its tuning objective (validation accuracy) for sweepers that optimise."""
    started, tic = now(), time.perf_counter()
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    outcome, record = "failed", None
    try:
        record = run(cfg, Path(hc.runtime.output_dir), variant=hc.job.override_dirname)
        outcome = "skipped" if record["finished_at"] < started else record["status"]  # an old record: skipped
    except (ConfigError, DataNotFoundError) as error:
        sys.exit(f"error: {error}")  # one clear line, before any training
    except Exception as error:
        log.error("run failed (recorded in %s): %s", hc.runtime.output_dir, error)
        if not multirun:
            sys.exit(1)  # in a sweep, one crashed run must not stop the others
    if multirun and (line := record_outcome(Path(hc.sweep.dir), outcome, cfg.model.name, time.perf_counter() - tic)):
        log.info(line)
    return tuning_objective(record) if record is not None else None


if __name__ == "__main__":
    main()
