"""The train entrypoint: compose -> validate -> run -> record.

python -m mnist_pairs.train model=cnn4_bn activation=tanh seed=3
python -m mnist_pairs.train -m model=cnn4_bn activation=relu,tanh,leakyrelu seed=0,1,2
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

import mnist_pairs
from mnist_pairs.config.checks import ConfigError, resolve_device, task_config, use_channels_last, validate
from mnist_pairs.config.preflight import check_command_line, check_data, seed_batch_dirs
from mnist_pairs.models import build_model
from mnist_pairs.results import records, track
from mnist_pairs.results.progress import record_outcome
from mnist_pairs.results.runs import save_weights
from mnist_pairs.training.augment import AugmentSettings, augment
from mnist_pairs.training.data import DataError, Pairs, make_pairs, split_validation
from mnist_pairs.training.engine import Augmenter, DivergedError, FitResult, TrainSettings, evaluate, fit, score
from mnist_pairs.training.seeding import generator, stream_seed
from mnist_pairs.training.vectorize import StackedModels, fit_stacked

log = logging.getLogger("mnist_pairs.train")


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


def train_settings(cfg: DictConfig) -> TrainSettings:
    settings = OmegaConf.to_container(cfg.train, resolve=True)
    settings.pop("save_model", None)  # what to keep of a run, not how to train it
    return TrainSettings(**settings)


def augmenter(cfg: DictConfig) -> Augmenter | None:
    """The run's on-the-fly augmentation (its own random stream), or None for ``augment=none``."""
    settings = AugmentSettings(
        **{k: v for k, v in OmegaConf.to_container(cfg.augment, resolve=True).items() if k != "name"}
    )
    if not settings.active:
        return None
    stream = generator(cfg.seed, "augment")
    return lambda x, digits: augment(x, digits, settings, stream)


def tuning_objective(record: records.RunRecord) -> float | None:
    """What a tuning sweeper (experiment=tune) maximises: the validation accuracy, and nothing
    computed from the test pairs. None without validation pairs or when the run did not finish."""
    metrics = record["metrics"] or {}
    return metrics.get("val_acc")


def mean_objective(done: list[records.RunRecord]) -> float | None:
    """A job's tuning objective: the mean of its seeds' objectives (a tuning preset may give each
    trial several seeds, ``device.seed_batch``, each with its own training/validation split), or
    None when a seed has none (it did not finish: the trial counts as failed)."""
    values = [tuning_objective(r) for r in done]
    if not values or any(v is None for v in values):
        return None
    return sum(values) / len(values)


def finished_or_set_aside(cfg: DictConfig, run_dir: Path) -> tuple[dict[str, Any], str, records.RunRecord | None]:
    """(resolved config, identity hash, the finished record to skip with or None). A finished
    record of another config (a default changed since) is renamed aside, never overwritten."""
    config = task_config(cfg)  # as the grid sweeper computes it (GridSweeper.finished_jobs): one identity
    ident = records.config_hash(config)
    done = records.finished_record(run_dir)
    if done is not None and done["config_hash"] == ident and not cfg.force:
        log.info("skip %s: finished record exists (force=true redoes it)", run_dir)
        return config, ident, done
    if (
        done is not None and done["config_hash"] != ident
    ):  # force=true too: force redoes this config's run, never erases another's
        kept = records.set_aside(run_dir, done["config_hash"])
        log.warning(
            "%s held a finished run of another config (hash %s, now %s): kept as %s",
            run_dir,
            done["config_hash"],
            ident,
            kept.name,
        )
    return config, ident, None


def keeps_torch_threads(function: Callable[..., Any]) -> Callable[..., Any]:
    """``device.threads`` sets torch's thread count, process-wide: give the caller (a test
    process, a notebook, the next job of a worker) its own count back when ``function`` returns."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        before = torch.get_num_threads()
        try:
            return function(*args, **kwargs)
        finally:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)

    return wrapper


def set_up_device(cfg: DictConfig) -> torch.device:
    """The run's device, and its torch thread count (``device.threads``; 0 keeps torch's)."""
    if cfg.device.threads:
        torch.set_num_threads(cfg.device.threads)
    return resolve_device(cfg.device.type)


def load_pairs(cfg: DictConfig, device: torch.device) -> tuple[Pairs, Pairs | None, Pairs]:
    """(train, validation or None, test) pairs of this seed, on ``device``."""
    train, test = make_pairs(
        cfg.data.root,
        cfg.data.n_train,
        cfg.data.n_test,
        generator(cfg.seed, "data"),
        scale=cfg.data.scale,
        download=cfg.data.download,
        cache_dir=cfg.data.cache_dir,
    )
    train, val = split_validation(train, cfg.data.n_val)
    return train.to(device), val.to(device) if val is not None else None, test.to(device)


def warm_up_worker(data: dict[str, Any], device_type: str) -> tuple[int, float]:
    """Ready a fresh worker process for its first job while the parent still validates the sweep
    (the grid sweeper runs this in the joblib launcher's workers): torch and the project are
    imported (unpickling this function did that), both MNIST splits sit in ``load_split``'s
    per-process cache (torchvision imported), and the device is open (CUDA context, cuBLAS).
    Returns (process id, seconds). A data error is left for the first job to report."""
    tic = time.perf_counter()
    with contextlib.suppress(DataError):
        make_pairs(data["root"], 1, 1, torch.Generator(), download=data["download"], cache_dir=data["cache_dir"])
    device = resolve_device(device_type)
    if device.type == "cuda":
        torch.ones(64, 64, device=device).matmul(torch.ones(64, 64, device=device)).sum().item()
    return os.getpid(), time.perf_counter() - tic


def init_model(
    cfg: DictConfig, device: torch.device, pairs: Sequence[Pairs | None]
) -> tuple[torch.nn.Module, list[Pairs | None]]:
    """This seed's freshly initialised model (its ``init`` stream, which also drives dropout), and
    ``pairs`` in the memory format the model prefers."""
    torch.manual_seed(stream_seed(cfg.seed, "init"))
    model = build_model(cfg.model).to(device)
    if use_channels_last(cfg.device.channels_last, model):
        model = model.to(memory_format=torch.channels_last)
        pairs = [p.channels_last() if p is not None else None for p in pairs]
    return model, list(pairs)


def new_record(config: dict[str, Any], ident: str, variant: str, device: torch.device) -> records.RunRecord:
    """records.new_record with what this process knows of its device and libraries."""
    return records.new_record(config, ident, variant, str(device), device_name(device), library_versions())


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


def fail_record(record: records.RunRecord, error: BaseException) -> None:
    record.update(status="failed", error="".join(traceback.format_exception_only(error)).strip())
    record["traceback"] = traceback.format_exc()


def log_done(record: records.RunRecord) -> None:
    name = f"{record['model']}/{record['activation']} seed={record['seed']}"
    if record["status"] == "ok":
        m = record["metrics"]
        shown = " ".join(f"{k} {m[k]:.4f}" for k in ("test_acc", "val_acc", "train_acc", "test_loss") if k in m)
        log.info("%s done: %s, %.2f s", name, shown, record["train_time_s"])
    else:
        log.warning("%s %s: %s", name, record["status"], record["error"])


def epoch_logger(cfg: DictConfig) -> Callable[[int, dict[str, float]], None]:
    name = f"{cfg.model.name}/{cfg.activation.name} seed={cfg.seed}"

    def log_epoch(epoch: int, row: dict[str, float]) -> None:
        log.info("%s epoch %d/%d %s", name, epoch, cfg.train.epochs, " ".join(f"{k} {v:.4f}" for k, v in row.items()))

    return log_epoch


@keeps_torch_threads
def run(cfg: DictConfig, run_dir: Path, variant: str = "") -> records.RunRecord:
    """Train one run and write its record into ``run_dir``; skip it when ``run_dir`` already holds
    a finished record of the same config (unless ``force``); a finished record of another config
    (a default changed since) is renamed aside, never overwritten, and the run is redone. A NaN loss is recorded as
    ``diverged``; an error while building or training the model is recorded as ``failed`` and
    re-raised; config and data errors raise before any work and write nothing."""
    validate(cfg)
    check_data(cfg)
    config, ident, done = finished_or_set_aside(cfg, run_dir)
    if done is not None:
        return done
    device = set_up_device(cfg)
    train, val, test = load_pairs(cfg, device)
    records.mark_started(run_dir, [cfg.seed])
    record = new_record(config, ident, variant, device)
    try:
        model, (train, val, test) = init_model(cfg, device, (train, val, test))
        optimizer = instantiate(cfg.optimizer)(model.parameters())
        record["n_params"] = sum(p.numel() for p in model.parameters())
        log.info(
            "%s/%s seed=%s: %d parameters, %d/%d pairs, %s",
            cfg.model.name,
            cfg.activation.name,
            cfg.seed,
            record["n_params"],
            len(train),
            len(test),
            record["device_name"],
        )
        result = fit(
            model,
            optimizer,
            train,
            test,
            train_settings(cfg),
            generator(cfg.seed, "shuffle"),
            epoch_logger(cfg),
            val=val,
            augment=augmenter(cfg),
        )
        complete_record(record, model, result, train, val, test)
        if cfg.train.save_model:
            save_weights(run_dir, model, record)
    except DivergedError as error:
        record.update(status="diverged", error=str(error))
    except Exception as error:
        fail_record(record, error)
        raise
    finally:
        record["finished_at"] = records.now()
        records.write_record(run_dir, record)
    log_done(record)
    track.log_run(cfg, run_dir, record)
    return record


def seed_config(cfg: DictConfig, seed: int) -> DictConfig:
    """``cfg`` with another seed (the other keys, the seed batch included, unchanged)."""
    one = copy.deepcopy(cfg)
    with open_dict(one):
        one.seed = seed
    return one


def run_seeds_in_turn(cfgs: dict[int, DictConfig], run_dirs: dict[int, Path], variant: str) -> list[records.RunRecord]:
    """``run`` for each seed, one after another (``device.seeds_per_job``); a seed that fails has
    its ``failed`` record and the next seeds still run."""
    out = []
    for seed, one in cfgs.items():
        try:
            out.append(run(one, run_dirs[seed], variant))
        except (ConfigError, DataError):
            raise  # nothing was written, and the other seeds would fail alike
        except Exception as error:
            log.error("run failed (recorded in %s): %s", run_dirs[seed], error)
            out.append(records.read_record(run_dirs[seed] / records.RECORD_FILE))
    return out


def run_seed_batch(cfg: DictConfig, run_dirs: dict[int, Path], variant: str = "") -> list[records.RunRecord]:
    """``run`` for several seeds of one config: with ``device.vectorize`` > 1 trained at once
    (mnist_pairs.training.vectorize), else one after another. One record per seed in its own folder, of the
    same form as a run alone. Seeds with a finished record are skipped; one seed left is simply
    ``run``."""
    cfgs = {seed: seed_config(cfg, seed) for seed in run_dirs}
    if cfg.device.vectorize == 1:
        return run_seeds_in_turn(cfgs, run_dirs, variant)  # run() validates each seed's config
    for one in cfgs.values():
        validate(one)
    check_data(cfg)
    out: dict[int, records.RunRecord] = {}
    pending: dict[int, tuple[dict[str, Any], str]] = {}
    for seed, one in cfgs.items():
        config, ident, done = finished_or_set_aside(one, run_dirs[seed])
        if done is not None:
            out[seed] = done
        else:
            pending[seed] = (config, ident)
    if len(pending) == 1:
        (seed,) = pending
        out[seed] = run(cfgs[seed], run_dirs[seed], variant)
    elif pending:
        out.update(train_seed_batch({s: cfgs[s] for s in pending}, pending, run_dirs, variant))
    return [out[seed] for seed in run_dirs]


@keeps_torch_threads
def train_seed_batch(
    cfgs: dict[int, DictConfig],
    identities: dict[int, tuple[dict[str, Any], str]],
    run_dirs: dict[int, Path],
    variant: str,
) -> dict[int, records.RunRecord]:
    first_seed, first = next(iter(cfgs.items()))
    device = set_up_device(first)
    pairs = {seed: load_pairs(one, device) for seed, one in cfgs.items()}
    for seed in cfgs:  # only the first seed's folder gets Hydra's .hydra/: mark every one as started
        records.mark_started(run_dirs[seed], list(cfgs))
    recs = {seed: new_record(*identities[seed], variant, device) for seed in cfgs}
    try:
        models = {}
        for seed, one in cfgs.items():
            models[seed], pairs[seed] = init_model(one, device, pairs[seed])
            recs[seed]["n_params"] = sum(p.numel() for p in models[seed].parameters())
        stacked = StackedModels(list(models.values()))
        optimizer = instantiate(first.optimizer)(stacked.parameters())
        loggers = [epoch_logger(one) for one in cfgs.values()]
        log.info(
            "%s/%s seeds %s trained at once: %d parameters each, %s",
            first.model.name,
            first.activation.name,
            list(cfgs),
            recs[first_seed]["n_params"],
            recs[first_seed]["device_name"],
        )
        results = fit_stacked(
            stacked,
            optimizer,
            [p[0] for p in pairs.values()],
            [p[2] for p in pairs.values()],
            train_settings(first),
            [generator(s, "shuffle") for s in cfgs],
            lambda k, epoch, row: loggers[k](epoch, row),
            vals=[p[1] for p in pairs.values()],
            augment=[augmenter(one) for one in cfgs.values()],
        )
        for (seed, (train, val, test)), result in zip(pairs.items(), results):
            if result.diverged:
                recs[seed].update(status="diverged", error=result.diverged)
            else:
                complete_record(recs[seed], models[seed], result.fit, train, val, test)
                if first.train.save_model:
                    save_weights(run_dirs[seed], models[seed], recs[seed])
    except Exception as error:
        for rec in recs.values():
            fail_record(rec, error)
        raise
    finally:
        for seed, rec in recs.items():
            rec["finished_at"] = records.now()
            records.write_record(run_dirs[seed], rec)
    for seed, rec in recs.items():
        log_done(rec)
        track.log_run(cfgs[seed], run_dirs[seed], rec)
    return recs


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
        for outcome in outcomes:
            line = record_outcome(
                Path(hc.sweep.dir), outcome, cfg.model.name, (time.perf_counter() - tic) / len(outcomes)
            )
        if line:
            log.info(line)
    return mean_objective(done)


def cli() -> None:
    """``python -m mnist_pairs.train``: the hydra node checked, then Hydra's run or multirun."""
    check_command_line(sys.argv[1:])
    main()


if __name__ == "__main__":
    cli()
