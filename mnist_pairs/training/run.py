"""One run: validate, skip when done, train, write its record.

run(cfg, run_dir) -> the record written into run_dir (or the finished one found there)"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from mnist_pairs.config.checks import validate
from mnist_pairs.config.folders import legacy_run_folder, model_choice
from mnist_pairs.config.schema import AugmentSettings
from mnist_pairs.models import build_model
from mnist_pairs.results import records
from mnist_pairs.results.runs import save_weights
from mnist_pairs.training.augment import augment
from mnist_pairs.training.data import Pairs, make_pairs, split_validation
from mnist_pairs.training.device import keeps_torch_threads, set_up_device, use_channels_last
from mnist_pairs.training.engine import Augmenter, fit
from mnist_pairs.training.recording import Recorded, complete_record, new_record
from mnist_pairs.training.seeding import generator, stream_seed

log = logging.getLogger("mnist_pairs.train")


def augmenter(settings: AugmentSettings, seed: int) -> Augmenter | None:
    """The run's on-the-fly augmentation (its own random stream), or None for ``augment=none``."""
    if not settings.active:
        return None
    stream = generator(seed, "augment")
    return lambda x, digits: augment(x, digits, settings, stream)


def finished_or_set_aside(config: dict[str, Any], run_dir: Path, force: bool) -> tuple[str, records.RunRecord | None]:
    """(identity hash, the finished record to skip with or None) of the resolved ``config``: its
    record in ``run_dir``, or in the folder named by the model's name that the run had before
    (records.find_finished, as the grid sweeper looks). A finished record of another config in
    ``run_dir`` (the same command, a default or the code changed since) is renamed aside, never
    overwritten (with ``force`` too: force redoes this config's run, never erases another's); a
    record of this config found set aside is put back in its place, and the run skipped. With
    ``force``, a finished record of this config in the older folder is set aside too (the folder
    named by ``model.name``): the redone run's record is then the one record of its identity."""
    ident = records.config_hash(config)  # the grid sweeper computes it alike (GridSweeper.run_records)
    legacy = legacy_run_folder(run_dir, model_choice(), config["model"]["name"])
    found = None if force else records.find_finished(ident, run_dir, legacy)
    old = records.finished_record(legacy) if force and legacy is not None else None
    if old is not None and old["config_hash"] == ident:  # one identity, one record: the redone run's
        kept = records.set_aside(legacy, ident)
        log.info("force: the finished record of %s in %s is kept as %s", run_dir.name, legacy, kept.name)
    if found is not None and found[0].name == records.RECORD_FILE:
        log.info("skip %s: finished record exists in %s (force=true redoes it)", run_dir, found[0].parent)
        return ident, found[1]
    done = records.finished_record(run_dir)
    if done is not None and done["config_hash"] != ident:
        kept = records.set_aside(run_dir, done["config_hash"])
        log.warning(
            "%s held a finished run of another config (hash %s, now %s): kept as %s",
            run_dir,
            done["config_hash"],
            ident,
            kept.name,
        )
    if found is not None:
        log.info("skip %s: its finished record was set aside as %s, put back (force=true redoes it)", run_dir, found[0])
        return ident, records.restore(found[0], run_dir)
    return ident, None


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


def epoch_logger(cfg: DictConfig) -> Callable[[int, dict[str, float]], None]:
    name = f"{cfg.model.name}/{cfg.activation.name} seed={cfg.seed}"

    def log_epoch(epoch: int, row: dict[str, float]) -> None:
        log.info("%s epoch %d/%d %s", name, epoch, cfg.train.epochs, " ".join(f"{k} {v:.4f}" for k, v in row.items()))

    return log_epoch


@keeps_torch_threads
def run(cfg: DictConfig, run_dir: Path, variant: str = "") -> records.RunRecord:
    """Train one run and write its record into ``run_dir``; skip it when ``run_dir`` already holds
    a finished record of the same config (unless ``force``); a finished record of another config
    (a default changed since) is renamed aside, never overwritten, and the run is redone. A NaN
    loss is recorded as ``diverged``; an error while building or training the model is recorded
    as ``failed`` and re-raised; SIGINT or SIGTERM while it trains (``Interrupted``, or a plain
    KeyboardInterrupt) as ``interrupted``, re-raised; config and data errors raise before any work
    and write nothing."""
    checked = validate(cfg)
    assert checked is not None
    ident, done = finished_or_set_aside(checked.config, run_dir, checked.run.force)
    if done is not None:
        return done
    device = set_up_device(checked.device)
    train, val, test = load_pairs(cfg, device)
    records.mark_started(run_dir, [cfg.seed])
    record = new_record(checked.config, ident, variant, device)
    with Recorded([(cfg, run_dir, record)]):
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
            checked.train,
            generator(cfg.seed, "shuffle"),
            epoch_logger(cfg),
            val=val,
            augment=augmenter(checked.augment, cfg.seed),
        )
        complete_record(record, model, result, train, val, test)
        if checked.train.save_model:
            save_weights(run_dir, model, record)
    return record
