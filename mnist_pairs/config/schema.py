"""Every key that holds a plain value, defined once: type, default, what is allowed, one line of
documentation, whether it is part of a run's identity (docs/architecture.md). The ConfigStore
nodes type every field ``Any`` so values stay as written (OmegaConf would turn ``0`` into ``0.0``
and change older records' identity hash); ``__post_init__`` of the typed object checks them."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, NoReturn

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

MAX_NAME = 255  # characters of a file name on common file systems
NAME = re.compile(r"[A-Za-z0-9_.+-]+")
TRACKING_URI = re.compile(r"(https?://[\w.-]+(:\d+)?(/[\w./-]*)?|sqlite:///[\w./ +-]+)")
SPLIT_PAIRS = {"train": 30_000, "test": 5_000}  # half of MNIST's 60k/10k images: pairs of distinct images
MAX_EPOCHS = 100_000  # beyond, a typo (the report trains 50); a bound keeps a run from never ending
MAX_THREADS = 1024
# Keys the grid sweeper and Hydra put in a run's folder name by themselves (never in the variant).
IN_FOLDER_PATH = ("model", "activation", "seed", "experiment")
# Groups that choose how runs are executed, never what they compute.
EXECUTION_GROUPS = ("launcher", "sweeper")


class ConfigError(ValueError):
    """A configuration that is not allowed, in one line naming the key, the value and what is allowed."""


def fail(key: str, value: Any, allowed: str) -> NoReturn:
    """A value that is not allowed: ConfigError naming ``key``, ``value`` and what is ``allowed``."""
    raise ConfigError(f"{key}={shown(value)} is not allowed: {allowed}") from None


def shown(value: Any, limit: int = 200) -> str:
    """``repr(value)``, cut to ``limit`` characters: a hostile value must not flood the one line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def first_line(error: BaseException, limit: int = 300) -> str:
    """The first line of an error's message (its type's name when it has none), cut to ``limit``."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line if len(line) <= limit else f"{line[:limit]}... ({len(line)} characters)"


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # YAML's true is an int to Python


def is_number(value: Any) -> bool:
    """A finite int or float, not a bool."""
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value)


def plain_name(value: Any) -> bool:
    return (
        isinstance(value, str) and bool(NAME.fullmatch(value)) and value not in (".", "..") and len(value) <= MAX_NAME
    )


def folder_path(value: Any) -> bool:
    """A non-empty string of printable characters, no part longer than file systems allow."""
    return (
        isinstance(value, str)
        and bool(value.strip())
        and value.isprintable()
        and max(map(len, value.split("/"))) <= MAX_NAME
    )


@dataclass(frozen=True)
class Rule:
    """What a key allows: a test, its words, and the type the key table shows."""

    test: Callable[[Any], bool]
    allowed: str
    kind: str


def integer(low: int, high: int | None = None, allowed: str | None = None) -> Rule:
    words = allowed or (f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}")
    return Rule(lambda v: is_int(v) and v >= low and (high is None or v <= high), words, "int")


def number(low: float, high: float, high_open: bool = False) -> Rule:
    words = f"a number from {low} to {high}{' (excluded)' if high_open else ''}"
    return Rule(lambda v: is_number(v) and low <= v and (v < high if high_open else v <= high), words, "float")


def one_of(*choices: str, hint: str = "") -> Rule:
    return Rule(lambda v: v in choices, f"one of {', '.join(choices)}{hint}", "str")


def names(what: str) -> Rule:
    """A relative path of plain names (``benchmark``, ``tune/resnet-lr``)."""
    words = f"plain names (letters, digits, _ . + -, at most {MAX_NAME} characters) separated by /: {what}"
    return Rule(lambda v: isinstance(v, str) and all(plain_name(p) for p in v.split("/")), words, "names")


BOOL = Rule(lambda v: isinstance(v, bool), "true or false", "bool")
POSITIVE = integer(1, allowed="a positive integer")
FOLDER = Rule(folder_path, f"a folder (a path of printable characters, each part at most {MAX_NAME})", "path")
FOLDER_OR_NULL = Rule(lambda v: v is None or folder_path(v), f"{FOLDER.allowed} or null", "path | null")
PLAIN_NAME = Rule(
    plain_name,
    f"a plain name of at most {MAX_NAME} characters (letters, digits, _ . + -): it names run folders",
    "name",
)


def key(default: Any, doc: str, rule: Rule, identity: bool = True, vectorized: Any = None) -> Any:
    """A field of a settings class. ``identity`` False: the key never changes results (left out of
    a run's identity hash and folder name), as no folder (a path on this machine) and no key of a
    group that is not ``identity`` (device, tracking) does. ``vectorized``: the one value seeds
    trained at once (``device.vectorize`` > 1) support, where they do not support all (None: all)."""
    identity = identity and not rule.kind.startswith("path")
    return field(default=default, metadata={"doc": doc, "rule": rule, "identity": identity, "vectorized": vectorized})


class Settings:
    """A group's typed settings: each field checked against its rule after construction."""

    group: ClassVar[str] = ""  # its dotted prefix ("" for the top-level keys)
    open: ClassVar[bool] = False  # other keys allowed beside the schema's (a target's arguments)
    identity: ClassVar[bool] = True  # False: no key of the group changes results

    def __post_init__(self) -> None:
        for f in documented(type(self)):
            value = getattr(self, f.name)
            if not f.metadata["rule"].test(value):
                fail(self.dotted(f.name), value, f.metadata["rule"].allowed)

    @classmethod
    def dotted(cls, name: str) -> str:
        return f"{cls.group}.{name}" if cls.group else name

    @classmethod
    def from_mapping(cls, values: Any, **defaults: Any) -> Any:
        """The typed settings of a group's resolved values; ``defaults`` stand in for absent keys.
        A key the schema does not know is refused, unless the group is ``open``."""
        known = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        if not isinstance(values, dict):
            fail(cls.group, values, f"a group of keys ({', '.join(sorted(known))})")
        unknown = [k for k in values if k not in known]
        if unknown and not cls.open:
            fail(cls.dotted(str(unknown[0])), values[unknown[0]], f"{cls.group} has keys {', '.join(sorted(known))}")
        return cls(**{**defaults, **{k: v for k, v in values.items() if k in known}})


def documented(cls: type) -> list[dataclasses.Field]:
    """The keys of a settings class (Hydra's ``_target_`` and ``_partial_`` aside)."""
    return [f for f in dataclasses.fields(cls) if "doc" in f.metadata]


@dataclass(frozen=True)
class RunSettings(Settings):
    seed: int = key(0, "drives the pairs, the initialisation, the shuffling and dropout of one run", integer(0))
    force: bool = key(False, "redo a run even when its folder holds a complete record", BOOL, identity=False)
    output_root: str = key("outputs", "results land in <output_root>/<experiment_name>/<run>/", FOLDER)
    experiment_name: str = key(
        "runs",
        "the results folder below output_root (plain names separated by /)",
        names("a folder below output_root"),
        identity=False,
    )


@dataclass(frozen=True)
class DataSettings(Settings):
    group: ClassVar[str] = "data"
    root: str = key(
        "${oc.env:MNIST_PAIRS_DATA,data}",
        "the folder holding MNIST/raw/ ($MNIST_PAIRS_DATA, else ./data)",
        FOLDER,
    )
    cache_dir: str | None = key(
        None,
        "where a read-only root's .gz files are unpacked (null: ~/.cache/mnist_pairs)",
        FOLDER_OR_NULL,
    )
    download: bool = key(True, "let torchvision download missing files (needs internet)", BOOL, identity=False)
    n_train: int = key(
        1000, "training pairs drawn without replacement from the 60k train split", integer(1, SPLIT_PAIRS["train"])
    )
    n_test: int = key(
        1000,
        "test pairs drawn without replacement from the 10k test split",
        integer(0, SPLIT_PAIRS["test"], f"an integer from 0 (no test pairs: tuning) to {SPLIT_PAIRS['test']}"),
    )
    n_val: int = key(0, "of the n_train pairs, held out for model selection (early stopping, tuning)", integer(0))
    scale: str = key(
        "raw",
        "raw: 0..255 as the authors | unit: /255 | standard: zero mean, unit SD",
        one_of("raw", "unit", "standard"),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_val > self.n_train - 1:
            fail("data.n_val", self.n_val, f"an integer from 0 to data.n_train - 1 = {self.n_train - 1}")


@dataclass(frozen=True)
class TrainSettings(Settings):
    group: ClassVar[str] = "train"
    epochs: int = key(50, "training epochs", integer(1, MAX_EPOCHS))
    batch_size: int = key(250, "pairs per mini-batch", POSITIVE)
    shuffle: bool = key(True, "reshuffle mini-batches each epoch; false: the authors' fixed slices", BOOL)
    monitor: str = key(
        "batches",
        "per-epoch train metrics: from the mini-batches, or the authors' full-set forward in train mode",
        one_of("batches", "train_mode_forward"),
        vectorized="batches",
    )
    eval_every_epoch: bool = key(True, "test accuracy per epoch for the history (outside the timed region)", BOOL)
    eval_interval: int = key(
        1,
        "the history's test accuracy every that many epochs and at the last (never changes training)",
        POSITIVE,
    )
    aux_schedule: str = key(
        "weighted_sum",
        "models with aux_weight > 0: one weighted loss per mini-batch, or the authors' two full-set steps",
        one_of("weighted_sum", "alternating_full_batch"),
        vectorized="weighted_sum",
    )
    zero_grad: str = key(
        "none", "gradients set to None, or zero-filled as in the authors' code", one_of("none", "zero")
    )
    label_smoothing: float = key(0.0, "smoothed targets in every cross-entropy minimised", number(0.0, 1.0, True))
    lr_schedule: str = key(
        "none", "none (the report), cosine (to 0), onecycle (peak optimizer.lr)", one_of("none", "cosine", "onecycle")
    )
    early_stop_patience: int = key(
        0,
        "stop after that many epochs without a better validation accuracy (needs data.n_val); 0 = off",
        integer(0, allowed="an integer >= 0 (0 = off)"),
        vectorized=0,
    )
    precision: str = key("fp32", "bf16: autocast of the training forward passes", one_of("fp32", "bf16"))
    save_model: bool = key(False, "keep the trained weights beside the record, in model.pt", BOOL, identity=False)


@dataclass(frozen=True)
class DeviceSettings(Settings):
    group: ClassVar[str] = "device"
    identity: ClassVar[bool] = False
    type: str = key("auto", "auto: CUDA when a GPU is visible, else the CPU", one_of("auto", "cpu", "cuda"))
    threads: int = key(
        0,
        "torch intra-op threads; 0 = torch's default",
        integer(0, MAX_THREADS, f"an integer from 0 (torch's default) to {MAX_THREADS}"),
    )
    channels_last: Any = key(
        "auto",
        "memory format of conv models: auto = the model family's preference",
        Rule(lambda v: isinstance(v, bool) or v == "auto", "auto, true or false", "auto | bool"),
    )
    vectorize: int = key(
        1,
        "> 1: train this many seeds of one config at once (torch.func.vmap; pays on a GPU)",
        integer(1, allowed="an integer >= 1 (1 = one seed per run)"),
    )
    seeds_per_job: int = key(
        1,
        "with vectorize 1: this many seeds of one config one after another in one job",
        integer(1, allowed="an integer >= 1 (seeds run one after another in one job)"),
    )
    seed_batch: list[int] | None = key(
        None,
        "the seeds of this job (set by the grid sweeper or a tuning preset)",
        Rule(
            lambda v: v is None or (isinstance(v, list) and all(is_int(s) and s >= 0 for s in v)),
            "null or a list of seeds >= 0 (the grid sweeper and the tuning presets set it)",
            "list[int] | null",
        ),
    )


@dataclass(frozen=True)
class AugmentSettings(Settings):
    group: ClassVar[str] = "augment"
    name: str = key("none", "the preset's label (it names run folders)", PLAIN_NAME)
    rotate_deg: float = key(0.0, "each image turned by U(-rotate_deg, rotate_deg) degrees", number(0.0, 180.0))
    translate_px: float = key(0.0, "and shifted by U(-translate_px, translate_px) pixels per axis", number(0.0, 7.0))
    swap: bool = key(False, "swap the two images of a pair with probability 1/2 (target follows)", BOOL)

    @property
    def active(self) -> bool:
        return self.rotate_deg > 0 or self.translate_px > 0 or self.swap


@dataclass(frozen=True)
class AdamSettings(Settings):
    group: ClassVar[str] = "optimizer"
    open: ClassVar[bool] = True  # more of the constructor's arguments (checked by mnist_pairs.config.targets)
    _target_: str = "torch.optim.Adam"
    _partial_: bool = True
    lr: float = key(
        MISSING,
        "learning rate: the lr group's preset (the model's own) or a number",
        Rule(
            lambda v: is_number(v) and v > 0,
            "a finite number > 0 (or a preset: lr=fcnn|fc_dropout|conv|resnet_siamese)",
            "float",
        ),
    )
    weight_decay: float = key(0.0, "L2 penalty added to the gradient (0: the report)", number(0.0, 1.0))


@dataclass(frozen=True)
class SgdSettings(AdamSettings):
    _target_: str = "torch.optim.SGD"
    momentum: float = key(
        0.0, "SGD's momentum", Rule(lambda v: is_number(v) and v >= 0, "a finite number >= 0", "float")
    )


TRACKING_BACKEND = one_of("none", "mlflow", hint=" (or the group: tracking=mlflow)")


@dataclass(frozen=True)
class TrackingSettings(Settings):
    group: ClassVar[str] = "tracking"
    identity: ClassVar[bool] = False
    backend: str = key("none", "none, or mlflow: each finished run logged to MLflow", TRACKING_BACKEND)


@dataclass(frozen=True)
class MlflowSettings(TrackingSettings):
    backend: str = key("mlflow", "none, or mlflow: each finished run logged to MLflow", TRACKING_BACKEND)
    uri: str | None = key(
        None,
        "null: sqlite:///<output_root>/mlflow.db; a server's http(s)://host[:port]; or sqlite:///<path>",
        Rule(
            lambda v: (
                v is None
                or (isinstance(v, str) and len(v) <= 1000 and bool(TRACKING_URI.fullmatch(v)) and ".." not in v)
            ),
            "null (the embedded SQLite store under output_root), a server's http(s)://host[:port] or sqlite:///<path>",
            "str | null",
        ),
    )
    experiment: str = key(
        "${experiment_name}",
        "the MLflow experiment (it names the folder of its artifacts)",
        names("it names the folder of the experiment's artifacts"),
    )


# group option -> its settings class: what ConfigStore holds, and what the key table lists
STORED: dict[tuple[str, str], type[Settings]] = {
    ("data", "mnist"): DataSettings,
    ("train", "default"): TrainSettings,
    ("device", "auto"): DeviceSettings,
    ("augment", "none"): AugmentSettings,
    ("optimizer", "adam"): AdamSettings,
    ("optimizer", "sgd"): SgdSettings,
    ("tracking", "none"): TrackingSettings,
    ("tracking", "mlflow"): MlflowSettings,
}


def register() -> None:
    """The schema's nodes in Hydra's ConfigStore (idempotent: storing again replaces). Each is a
    dataclass of the class's keys and defaults typed Any: struct mode fixes the keys, values stay
    as written."""
    store = ConfigStore.instance()
    for (group, name), cls in STORED.items():
        fields = [(f.name, Any, field(default=f.default)) for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        store.store(
            group=group, name=name, node=dataclasses.make_dataclass(cls.__name__, fields), provider="mnist_pairs"
        )
    store.store(name="run_keys", node={f.name: f.default for f in documented(RunSettings)}, provider="mnist_pairs")


def key_table() -> list[dict[str, Any]]:
    """Every key of the schema once: key, type, default, allowed, doc, identity."""
    rows: dict[str, dict[str, Any]] = {}
    for cls in (RunSettings, *STORED.values()):
        for f in documented(cls):
            rule, identity = f.metadata["rule"], f.metadata["identity"] and cls.identity
            row = {"key": cls.dotted(f.name), "type": rule.kind, "default": f.default, "allowed": rule.allowed}
            rows.setdefault(row["key"], row | {"doc": f.metadata["doc"], "identity": identity})
    return list(rows.values())


def non_identity_keys() -> tuple[str, ...]:
    """Keys that never change a run's results (left out of its identity hash): each key so
    declared, by the group's name when every key of its group is."""
    rows = key_table()
    mixed = {r["key"].partition(".")[0] for r in rows if r["identity"]}  # groups with an identity key
    keys = [r["key"] for r in rows if not r["identity"]]
    return tuple(dict.fromkeys(k if k.partition(".")[0] in mixed else k.partition(".")[0] for k in keys))


def folder_exclude_keys() -> list[str]:
    """The keys Hydra leaves out of a run folder's name (``hydra.job.config.override_dirname``):
    those already in its path, the execution groups, and every key outside a run's identity,
    each key of a non-identity group by name too (``device.threads=1`` names itself)."""
    groups = non_identity_keys()
    keys = [r["key"] for r in key_table() if not r["identity"]]
    named = [n for k in keys for n in (k.partition(".")[0], k) if n == k or n in groups]
    return list(dict.fromkeys([*IN_FOLDER_PATH, *named, *EXECUTION_GROUPS]))


def run_subdir(model: str, activation: str, seed: Any, variant: str = "") -> str:
    """A run's directory below its experiment: model/activation[/variant]/seed=N. ``model`` is the
    model group's choice, one folder (``authors/cnn3`` -> ``authors-cnn3``); ``variant`` is
    Hydra's override_dirname of the keys that are not already in the path."""
    return "/".join(p for p in (str(model).replace("/", "-"), activation, variant, f"seed={seed}") if p)


def register_resolvers() -> None:
    """The resolvers conf/config.yaml reads: a run's folder and the keys its name leaves out."""
    OmegaConf.register_new_resolver("run_subdir", run_subdir, replace=True)
    OmegaConf.register_new_resolver("folder_exclude_keys", folder_exclude_keys, replace=True)
