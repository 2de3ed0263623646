"""One place for the allowed values of the configuration, checked before any work starts.

Hydra already rejects unknown group choices (model=..., activation=..., device=...) with its list
of options; this module checks the values inside the groups and the `_target_`s YAML may name.
``compose_config`` composes conf/ outside the CLI (scripts, tests) as the CLI would."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, ListConfig, OmegaConf

from mnist_pairs.data import SCALES, SPLIT_SIZES

ALLOWED_TARGET_PREFIXES = ("mnist_pairs.", "torch.nn.", "torch.optim.")
DEVICE_TYPES = ("auto", "cpu", "cuda")
MONITOR_MODES = ("batches", "train_mode_forward")
AUX_SCHEDULES = ("weighted_sum", "alternating_full_batch")
ZERO_GRAD_MODES = ("none", "zero")
LR_SCHEDULES = ("none", "cosine", "onecycle")
PRECISIONS = ("fp32", "bf16")


CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose_config(*overrides: str, hydra: bool = False) -> DictConfig:
    """conf/ composed with Hydra's compose API, as the CLI composes a run's config; ``hydra`` keeps
    the ``hydra`` node (launcher, sweeper, run folders)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)


class ConfigError(ValueError):
    """A configuration value is not allowed; the message names key, value and what is allowed."""


def _fail(key: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")


def _int(cfg: DictConfig, key: str, low: int, high: int | None = None, allowed: str | None = None) -> int:
    """The integer at ``key``, checked to lie in [low, high]; ``allowed`` words the error."""
    value = OmegaConf.select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        _fail(key, value, allowed or (f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"))
    return value


def _positive_int(cfg: DictConfig, key: str, maximum: int | None = None) -> None:
    _int(cfg, key, 1, maximum, None if maximum else "a positive integer")


def _choice(cfg: DictConfig, key: str, choices: tuple[str, ...]) -> None:
    value = OmegaConf.select(cfg, key)
    if value not in choices:
        _fail(key, value, f"one of {', '.join(choices)}")


def _number(cfg: DictConfig, key: str, low: float, high: float, high_open: bool = False) -> None:
    value = OmegaConf.select(cfg, key)
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and low <= value and (value < high if high_open else value <= high)
    if not ok:
        _fail(key, value, f"a number from {low} to {high}{' (excluded)' if high_open else ''}")


def _validate_selection_and_augmentation(cfg: DictConfig) -> None:
    """Validation split, early stopping, regularisation and augmentation keys."""
    n_val = _int(cfg, "data.n_val", 0, cfg.data.n_train - 1, f"an integer from 0 to data.n_train - 1 = {cfg.data.n_train - 1}")
    patience = _int(cfg, "train.early_stop_patience", 0, allowed="an integer >= 0 (0 = off)")
    if patience > 0 and n_val == 0:
        _fail("train.early_stop_patience", patience, "early stopping reads validation pairs: set data.n_val > 0 too (never the test pairs)")
    _choice(cfg, "train.precision", PRECISIONS)
    _choice(cfg, "train.lr_schedule", LR_SCHEDULES)
    _number(cfg, "train.label_smoothing", 0.0, 1.0, high_open=True)
    _number(cfg, "optimizer.weight_decay", 0.0, 1.0)
    _number(cfg, "augment.rotate_deg", 0.0, 180.0)
    _number(cfg, "augment.translate_px", 0.0, 7.0)
    if not isinstance(cfg.augment.swap, bool):
        _fail("augment.swap", cfg.augment.swap, "true or false")


def _validate_vectorize(cfg: DictConfig) -> None:
    """device.vectorize trains several seeds at once; it supports what mnist_pairs.vectorize does."""
    k = _int(cfg, "device.vectorize", 1, allowed="an integer >= 1 (1 = one seed per run)")
    _int(cfg, "device.seeds_per_job", 1, allowed="an integer >= 1 (seeds run one after another in one job)")
    batch = OmegaConf.select(cfg, "device.seed_batch", default=None)
    if batch is not None and (not isinstance(batch, ListConfig) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in batch)):
        _fail("device.seed_batch", batch, "null or a list of seeds >= 0 (the grid sweeper and the tuning presets set it)")
    if k > 1:
        for key, value, off in [("train.early_stop_patience", cfg.train.early_stop_patience, 0),
                                ("train.aux_schedule", cfg.train.aux_schedule, "weighted_sum"),
                                ("train.monitor", cfg.train.monitor, "batches")]:  # fmt: skip
            if value != off:
                _fail(key, value, f"with device.vectorize > 1 only {off!r} (seeds trained at once)")


def _validate_outputs(cfg: DictConfig) -> None:
    """train.save_model and the tracking group (records written before them lack both)."""
    save = OmegaConf.select(cfg, "train.save_model", default=False)
    if not isinstance(save, bool):
        _fail("train.save_model", save, "true or false")
    if OmegaConf.select(cfg, "tracking.backend", default="none") != "mlflow":
        return
    if importlib.util.find_spec("mlflow") is None:
        _fail("tracking", "mlflow", "MLflow is not installed: pip install -e '.[tracking]' (make venv installs it), or tracking=none")
    uri, name = cfg.tracking.uri, cfg.tracking.experiment
    if uri is not None and (not isinstance(uri, str) or not uri.strip()):
        _fail("tracking.uri", uri, "null (the embedded SQLite store under output_root) or a tracking URI such as http://127.0.0.1:5000")
    if not isinstance(name, str) or not name.strip():
        _fail("tracking.experiment", name, "a non-empty experiment name")


def _targets(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, target) of every ``_target_`` below ``node``, outside Hydra's own ``hydra``
    node (its launcher and sweeper are Hydra plugins, not instantiated by us)."""
    if isinstance(node, (DictConfig, ListConfig)) and node._is_none():
        return
    if isinstance(node, DictConfig):
        for key in node.keys():
            if not path and key == "hydra":
                continue
            child = node._get_node(key)
            if key == "_target_":
                yield f"{path}._target_".lstrip("."), str(node[key])
            elif isinstance(child, (DictConfig, ListConfig)):
                yield from _targets(child, f"{path}.{key}")
    elif isinstance(node, ListConfig):
        for i, item in enumerate(node):
            yield from _targets(item, f"{path}[{i}]")


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError on the first value that is not allowed."""
    _int(cfg, "seed", 0)
    _positive_int(cfg, "train.epochs")
    _positive_int(cfg, "train.batch_size")
    _positive_int(cfg, "train.eval_interval")
    _positive_int(cfg, "data.n_train", SPLIT_SIZES["train"] // 2)
    n_test = _int(cfg, "data.n_test", 0, SPLIT_SIZES["test"] // 2, f"an integer from 0 (no test pairs: tuning) to {SPLIT_SIZES['test'] // 2}")
    if n_test == 0 and cfg.train.eval_every_epoch:
        _fail("train.eval_every_epoch", True, "false with data.n_test=0 (there are no test pairs to evaluate)")
    _choice(cfg, "data.scale", SCALES)
    _choice(cfg, "train.monitor", MONITOR_MODES)
    _choice(cfg, "train.aux_schedule", AUX_SCHEDULES)
    _choice(cfg, "train.zero_grad", ZERO_GRAD_MODES)
    lr = cfg.optimizer.lr
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        _fail("optimizer.lr", lr, "a number > 0 (or a preset: lr=fcnn|fc_dropout|conv|resnet_siamese)")
    aux = OmegaConf.select(cfg, "model.aux_weight", default=0.0)
    if not isinstance(aux, (int, float)) or aux < 0:
        _fail("model.aux_weight", aux, "a number >= 0")
    _validate_selection_and_augmentation(cfg)
    _choice(cfg, "device.type", DEVICE_TYPES)
    if cfg.device.type == "cuda" and not torch.cuda.is_available():
        _fail("device", "cuda", "cuda needs a visible CUDA GPU and this machine has none; use device=cpu or device=auto")
    _int(cfg, "device.threads", 0, allowed="an integer >= 0 (0 = torch's default)")
    _validate_vectorize(cfg)
    _validate_outputs(cfg)
    if cfg.device.channels_last not in ("auto", True, False):
        _fail("device.channels_last", cfg.device.channels_last, "auto, true or false")
    for key, target in _targets(cfg):
        if not target.startswith(ALLOWED_TARGET_PREFIXES):
            _fail(key, target, f"targets must start with one of {', '.join(ALLOWED_TARGET_PREFIXES)}")


def use_channels_last(setting: str | bool, model: torch.nn.Module) -> bool:
    """``auto`` follows the model family's ``prefers_channels_last`` (plain CNNs are faster without)."""
    return bool(getattr(model, "prefers_channels_last", False)) if setting == "auto" else bool(setting)


def resolve_device(kind: str) -> torch.device:
    """``auto`` picks CUDA when a GPU is visible, else the CPU."""
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(kind)
