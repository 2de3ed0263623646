"""One place for the allowed values of the configuration, checked before any work starts.

Hydra already rejects unknown group choices (model=..., activation=..., device=...) with its list
of options; this module checks the values inside the groups, the `_target_`s YAML may name (on
the object they name: mnist_pairs.config.targets), the arguments each target gets (against its
constructor's type hints: mnist_pairs.config.targets too), and that the model can be built and trained (a dry run on the meta
device: mnist_pairs.config.dryrun). ``compose_config`` (mnist_pairs.config.compose, re-exported here) composes
conf/ outside the CLI (scripts, tests) as the CLI would."""

from __future__ import annotations

import collections.abc
import importlib.util
import math
import re
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mnist_pairs.config.targets import TargetError, check_targets
from mnist_pairs.results.records import setting
from mnist_pairs.training.data import SCALES, SPLIT_SIZES

DEVICE_TYPES = ("auto", "cpu", "cuda")
MONITOR_MODES = ("batches", "train_mode_forward")
AUX_SCHEDULES = ("weighted_sum", "alternating_full_batch")
ZERO_GRAD_MODES = ("none", "zero")
LR_SCHEDULES = ("none", "cosine", "onecycle")
PRECISIONS = ("fp32", "bf16")
MAX_EPOCHS = 100_000  # beyond, a typo (the report trains 50); a bound keeps a run from never ending
MAX_THREADS = 1024
# Keys that may read the environment (${oc.env:...}): paths on this machine, outside a run's
# identity. Anywhere else a shared YAML would carry the environment into folder names and records.
ENVIRONMENT_KEYS = ("data.root", "data.cache_dir", "output_root")
# Labels that name folders: plain names, never a way out of output_root.
NAME = re.compile(r"[A-Za-z0-9_.+-]+")
NAMED_LABELS = ("model.name", "activation.name", "augment.name")
MAX_NAME = 255  # characters of a file name on common file systems


class ConfigError(ValueError):
    """A configuration value is not allowed; the message names key, value and what is allowed."""


def shown(value: Any, limit: int = 200) -> str:
    """``repr(value)``, cut to ``limit`` characters: a hostile value must not flood the one line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _fail(key: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{key}={shown(value)} is not allowed: {allowed}")


def _int(cfg: DictConfig, key: str, low: int, high: int | None = None, allowed: str | None = None) -> int:
    """The integer at ``key``, checked to lie in [low, high]; ``allowed`` words the error."""
    value = OmegaConf.select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        _fail(
            key, value, allowed or (f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}")
        )
    return value


def _positive_int(cfg: DictConfig, key: str, maximum: int | None = None) -> None:
    _int(cfg, key, 1, maximum, None if maximum else "a positive integer")


def _choice(cfg: DictConfig, key: str, choices: tuple[str, ...]) -> None:
    value = OmegaConf.select(cfg, key)
    if value not in choices:
        _fail(key, value, f"one of {', '.join(choices)}")


def _number(cfg: DictConfig, key: str, low: float, high: float, high_open: bool = False) -> None:
    value = OmegaConf.select(cfg, key)
    ok = _is_number(value) and low <= value and (value < high if high_open else value <= high)
    if not ok:
        _fail(key, value, f"a number from {low} to {high}{' (excluded)' if high_open else ''}")


def _is_number(value: Any) -> bool:
    """A finite int or float (not a bool: YAML's true is an int to Python)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def task_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config a job's task function gets (all but the ``hydra`` node), as plain
    dicts and lists; a value that cannot be resolved (an unset environment variable, a missing
    key, an unknown resolver) is a ConfigError naming it."""
    out: dict[str, Any] = {}
    for key in cfg:
        if key == "hydra":
            continue
        try:
            value = cfg[key]
            out[str(key)] = (
                OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value
            )
        except OmegaConfBaseException as error:
            where = getattr(error, "full_key", None) or str(key)
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            _fail(where, _raw(cfg, where), f"it cannot be resolved ({reason})")
    return out


def _raw(cfg: DictConfig, dotted: str) -> Any:
    """The value at ``dotted`` as written, interpolations unresolved (None when not found)."""
    node: Any = OmegaConf.to_container(cfg, resolve=False)
    for part in re.findall(r"[^.\[\]]+", dotted):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _leaves(node: Any, path: str = "") -> collections.abc.Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf of a plain container."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _leaves(item, f"{path}[{i}]")
    else:
        yield path, node


ENVIRONMENT_READ = re.compile(r"\$\{\s*oc\.env\s*:")


def _validate_interpolations(cfg: DictConfig) -> None:
    """``${oc.env:...}`` only where ENVIRONMENT_KEYS allow it (as written, escaped or not). A value
    that resolves to an interpolation is refused by targets.check_targets (every caller that
    builds from a config gets that check)."""
    written = {k: v for k, v in OmegaConf.to_container(cfg, resolve=False).items() if k != "hydra"}
    for key, value in _leaves(written):
        if isinstance(value, str) and ENVIRONMENT_READ.search(value) and key not in ENVIRONMENT_KEYS:
            _fail(
                key,
                value,
                f"environment variables (oc.env) may only set {', '.join(ENVIRONMENT_KEYS)}: "
                "elsewhere they would go into run folders and records",
            )


def _validate_names(config: dict[str, Any]) -> None:
    """Labels that become folder names are plain names; experiment_name a relative path of them."""
    for key in NAMED_LABELS:
        value = setting(config, key)
        if not _plain_name(value):
            _fail(
                key,
                value,
                f"a plain name of at most {MAX_NAME} characters (letters, digits, _ . + -): it names run folders",
            )
    name = config.get("experiment_name")
    if not isinstance(name, str) or not all(_plain_name(part) for part in name.split("/")):
        _fail(
            "experiment_name",
            name,
            f"plain names (letters, digits, _ . + -, at most {MAX_NAME} characters) separated by /: a folder below output_root",
        )
    _path(config, "output_root")


def _plain_name(value: Any) -> bool:
    return (
        isinstance(value, str) and bool(NAME.fullmatch(value)) and value not in (".", "..") and len(value) <= MAX_NAME
    )


def _path(cfg: DictConfig | dict[str, Any], key: str) -> None:
    """A folder's path: a non-empty string without control characters, no part of it longer than
    file systems allow."""
    value = OmegaConf.select(cfg, key) if isinstance(cfg, DictConfig) else setting(cfg, key)
    ok = (
        isinstance(value, str)
        and value.strip()
        and value.isprintable()
        and all(len(p) <= MAX_NAME for p in value.split("/"))
    )
    if not ok:
        _fail(
            key,
            value,
            f"a folder (a path of printable characters, each part at most {MAX_NAME})"
            + (" or null" if key == "data.cache_dir" else ""),
        )


def _validate_selection_and_augmentation(cfg: DictConfig) -> None:
    """Validation split, early stopping, regularisation and augmentation keys."""
    n_val = _int(
        cfg, "data.n_val", 0, cfg.data.n_train - 1, f"an integer from 0 to data.n_train - 1 = {cfg.data.n_train - 1}"
    )
    patience = _int(cfg, "train.early_stop_patience", 0, allowed="an integer >= 0 (0 = off)")
    if patience > 0 and n_val == 0:
        _fail(
            "train.early_stop_patience",
            patience,
            "early stopping reads validation pairs: set data.n_val > 0 too (never the test pairs)",
        )
    _choice(cfg, "train.precision", PRECISIONS)
    _choice(cfg, "train.lr_schedule", LR_SCHEDULES)
    _number(cfg, "train.label_smoothing", 0.0, 1.0, high_open=True)
    _number(cfg, "optimizer.weight_decay", 0.0, 1.0)
    _number(cfg, "augment.rotate_deg", 0.0, 180.0)
    _number(cfg, "augment.translate_px", 0.0, 7.0)
    if not isinstance(cfg.augment.swap, bool):
        _fail("augment.swap", cfg.augment.swap, "true or false")


def _validate_vectorize(cfg: DictConfig) -> None:
    """device.vectorize trains several seeds at once; it supports what mnist_pairs.training.vectorize does."""
    k = _int(cfg, "device.vectorize", 1, allowed="an integer >= 1 (1 = one seed per run)")
    _int(cfg, "device.seeds_per_job", 1, allowed="an integer >= 1 (seeds run one after another in one job)")
    batch = OmegaConf.select(cfg, "device.seed_batch", default=None)
    if batch is not None and (
        not isinstance(batch, ListConfig)
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in batch)
    ):
        _fail(
            "device.seed_batch", batch, "null or a list of seeds >= 0 (the grid sweeper and the tuning presets set it)"
        )
    if k > 1:
        for key, value, off in [
            ("train.early_stop_patience", cfg.train.early_stop_patience, 0),
            ("train.aux_schedule", cfg.train.aux_schedule, "weighted_sum"),
            ("train.monitor", cfg.train.monitor, "batches"),
        ]:
            if value != off:
                _fail(key, value, f"with device.vectorize > 1 only {off!r} (seeds trained at once)")


TRACKING_BACKENDS = ("none", "mlflow")
TRACKING_URI = re.compile(r"(https?://[\w.-]+(:\d+)?(/[\w./-]*)?|sqlite:///[\w./ +-]+)")


def _validate_outputs(cfg: DictConfig) -> None:
    """train.save_model and the tracking group (records written before them lack both). A tracking
    URI is a server (http, https) or a SQLite file; the experiment's name becomes a folder of
    artifacts, so it follows experiment_name's rules."""
    save = OmegaConf.select(cfg, "train.save_model", default=False)
    if not isinstance(save, bool):
        _fail("train.save_model", save, "true or false")
    backend = OmegaConf.select(cfg, "tracking.backend", default="none")
    if backend not in TRACKING_BACKENDS:
        _fail("tracking.backend", backend, f"one of {', '.join(TRACKING_BACKENDS)} (or the group: tracking=mlflow)")
    if backend == "none":
        return
    if importlib.util.find_spec("mlflow") is None:
        _fail(
            "tracking",
            "mlflow",
            "MLflow is not installed: pip install -e '.[tracking]' (make venv installs it), or tracking=none",
        )
    uri = OmegaConf.select(cfg, "tracking.uri", default=None)
    if uri is not None and not (
        isinstance(uri, str) and len(uri) <= 1000 and TRACKING_URI.fullmatch(uri) and ".." not in uri
    ):
        _fail(
            "tracking.uri",
            uri,
            "null (the embedded SQLite store under output_root), a server's http(s)://host[:port] or sqlite:///<path>",
        )
    name = OmegaConf.select(cfg, "tracking.experiment", default=OmegaConf.select(cfg, "experiment_name"))
    if not isinstance(name, str) or not all(_plain_name(part) for part in name.split("/")):
        _fail(
            "tracking.experiment",
            name,
            f"plain names (letters, digits, _ . + -, at most {MAX_NAME} characters) separated by /: "
            "it names the folder of the experiment's artifacts",
        )


def validate_seed(cfg: DictConfig) -> None:
    """The seed alone: what tells apart the jobs of a sweep that share one composition (the rest
    of such a job's config is the same, validated once)."""
    _int(cfg, "seed", 0)


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError on the first value that is not allowed. Nothing is instantiated before
    every ``_target_`` passed; the model is then built once per distinct config (cached), on the
    meta device: no memory, no time."""
    from mnist_pairs.config import dryrun  # imports the training engine: after the plain checks' imports

    config = task_config(cfg)
    _validate_interpolations(cfg)
    _validate_names(config)
    validate_seed(cfg)
    for key in ("force", "data.download", "train.shuffle", "train.eval_every_epoch"):
        if not isinstance(OmegaConf.select(cfg, key), bool):
            _fail(key, OmegaConf.select(cfg, key), "true or false")
    _int(cfg, "train.epochs", 1, MAX_EPOCHS)
    _positive_int(cfg, "train.batch_size")
    _positive_int(cfg, "train.eval_interval")
    _positive_int(cfg, "data.n_train", SPLIT_SIZES["train"] // 2)
    n_test = _int(
        cfg,
        "data.n_test",
        0,
        SPLIT_SIZES["test"] // 2,
        f"an integer from 0 (no test pairs: tuning) to {SPLIT_SIZES['test'] // 2}",
    )
    if n_test == 0 and cfg.train.eval_every_epoch:
        _fail("train.eval_every_epoch", True, "false with data.n_test=0 (there are no test pairs to evaluate)")
    _choice(cfg, "data.scale", SCALES)
    _path(cfg, "data.root")
    if cfg.data.cache_dir is not None:
        _path(cfg, "data.cache_dir")
    _choice(cfg, "train.monitor", MONITOR_MODES)
    _choice(cfg, "train.aux_schedule", AUX_SCHEDULES)
    _choice(cfg, "train.zero_grad", ZERO_GRAD_MODES)
    lr = cfg.optimizer.lr
    if not _is_number(lr) or not lr > 0:
        _fail("optimizer.lr", lr, "a finite number > 0 (or a preset: lr=fcnn|fc_dropout|conv|resnet_siamese)")
    aux = OmegaConf.select(cfg, "model.aux_weight", default=0.0)
    if not _is_number(aux) or aux < 0:
        _fail("model.aux_weight", aux, "a finite number >= 0")
    _validate_selection_and_augmentation(cfg)
    _choice(cfg, "device.type", DEVICE_TYPES)
    if cfg.device.type == "cuda" and not torch.cuda.is_available():
        _fail(
            "device", "cuda", "cuda needs a visible CUDA GPU and this machine has none; use device=cpu or device=auto"
        )
    _int(cfg, "device.threads", 0, MAX_THREADS, f"an integer from 0 (torch's default) to {MAX_THREADS}")
    _validate_vectorize(cfg)
    _validate_outputs(cfg)
    if not (isinstance(cfg.device.channels_last, bool) or cfg.device.channels_last == "auto"):
        _fail("device.channels_last", cfg.device.channels_last, "auto, true or false")
    try:
        check_targets(config)
    except TargetError as error:
        _fail(error.key, error.value, error.allowed)
    problem = dryrun.problem(config)
    if problem is not None:
        raise ConfigError(problem)


def use_channels_last(setting: str | bool, model: torch.nn.Module) -> bool:
    """``auto`` follows the model family's ``prefers_channels_last`` (plain CNNs are faster without)."""
    return bool(getattr(model, "prefers_channels_last", False)) if setting == "auto" else bool(setting)


def resolve_device(kind: str) -> torch.device:
    """``auto`` picks CUDA when a GPU is visible, else the CPU."""
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(kind)
