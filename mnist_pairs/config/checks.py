"""The one validation pipeline: ``validate`` is its entry point wherever a config enters (the
Hydra callback, the grid sweeper for every job, ``run()``, ``evaluate``, ``runs.load_run``). Its
stages, in order (docs/architecture.md): schema, targets, dryrun, data, folder. Each raises
ConfigError (DataError for unreadable data) with one line naming the key, the value and what is
allowed."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mnist_pairs.config import folders
from mnist_pairs.config.schema import (
    PLAIN_NAME,
    AdamSettings,
    AugmentSettings,
    ConfigError,
    DataSettings,
    DeviceSettings,
    MlflowSettings,
    RunSettings,
    SgdSettings,
    TrackingSettings,
    TrainSettings,
    documented,
    fail,
    first_line,
    is_number,
    key_table,
)
from mnist_pairs.config.targets import check_hydra_node, check_targets, walk
from mnist_pairs.results.records import setting

STAGES = ("schema", "targets", "dryrun", "data", "folder")
NAMED_LABELS = ("model.name", "activation.name")  # labels of YAML groups that name run folders
ENVIRONMENT_READ = re.compile(r"\$\{\s*oc\.env\s*:")
MLFLOW_MISSING = "MLflow is not installed: pip install -e '.[tracking]' (make venv installs it), or tracking=none"


@dataclass(frozen=True)
class Checked:
    """A config that passed the pipeline: its resolved task config (what a record keeps and its
    identity hashes) and its typed settings (what the code reads)."""

    config: dict[str, Any]
    run: RunSettings
    data: DataSettings
    train: TrainSettings
    device: DeviceSettings
    augment: AugmentSettings
    tracking: TrackingSettings
    run_dir: Path | None = None  # with the folder stage: the run's folder


def validate(
    cfg: DictConfig | dict[str, Any],
    stages: Sequence[str] = STAGES[:4],
    folder_key: str | None = None,
    packs_seeds: bool = False,
) -> Checked | None:
    """Run ``cfg`` through ``stages`` (all but the folder by default). ``folder_key``
    (``hydra.run.dir``, or ``hydra.sweep.subdir`` for a sweep's job) adds the folder stage, with
    Hydra's global config set to ``cfg`` and the schema stage in ``stages``; ``packs_seeds``: the
    grid sweeper packs several seeds into the job. Returns the typed settings when the schema
    stage ran."""
    config = task_config(cfg) if isinstance(cfg, DictConfig) else cfg
    checked = settings(cfg, config) if "schema" in stages else None
    if "targets" in stages:
        check_targets(config)
        if isinstance(cfg, DictConfig) and "hydra" in cfg:
            check_hydra_node(cfg.hydra)
    if "dryrun" in stages:
        from mnist_pairs.config import dryrun  # imports the training engine: only when asked for

        problem = dryrun.problem(config)
        if problem is not None:
            raise ConfigError(problem)
    if "data" in stages:
        folders.check_data(config)
    if folder_key is not None:
        assert isinstance(cfg, DictConfig) and checked is not None
        run_dir = folders.run_folder(cfg, folder_key)
        folders.check_run_folder(config, run_dir, folder_key, seeds_per_job(checked.device) if packs_seeds else 1)
        checked = replace(checked, run_dir=run_dir)
    return checked


def seeds_per_job(device: DeviceSettings) -> int:
    """How many seeds of a config the grid sweeper packs into one job: ``device.vectorize`` when
    > 1 (trained at once), else ``device.seeds_per_job`` (one after another)."""
    return device.vectorize if device.vectorize > 1 else device.seeds_per_job


def settings(cfg: DictConfig | dict[str, Any], config: dict[str, Any]) -> Checked:
    """The schema stage: the typed settings of ``config`` (``cfg`` as written, for the
    environment rule), and the rules that read several keys at once (or the machine)."""
    if isinstance(cfg, DictConfig):
        check_environment_reads(cfg)
    for key in NAMED_LABELS:
        if not PLAIN_NAME.test(setting(config, key)):
            fail(key, setting(config, key), PLAIN_NAME.allowed)
    try:
        run = RunSettings.from_mapping({k: config[k] for k in ("seed", "force", "output_root", "experiment_name")})
        data, train = DataSettings.from_mapping(config["data"]), TrainSettings.from_mapping(config["train"])
        device = DeviceSettings.from_mapping(config.get("device", {}))  # groups younger than the oldest
        augment = AugmentSettings.from_mapping(config.get("augment", {}))  # records: their defaults
        sgd = isinstance(config["optimizer"], dict) and config["optimizer"].get("_target_") == "torch.optim.SGD"
        (SgdSettings if sgd else AdamSettings).from_mapping(config["optimizer"])
        tracking_values = config.get("tracking", {"backend": "none"})  # MLflow's keys only with backend mlflow
        if not (isinstance(tracking_values, dict) and tracking_values.get("backend") == "mlflow"):
            tracking = TrackingSettings.from_mapping(tracking_values)
        elif importlib.util.find_spec("mlflow") is None:
            fail("tracking", "mlflow", MLFLOW_MISSING)
        else:
            tracking = MlflowSettings.from_mapping(tracking_values, experiment=run.experiment_name)
    except KeyError as missing:
        fail(str(missing.args[0]), None, "a key every config has (conf/config.yaml composes it)")
    if data.n_test == 0 and train.eval_every_epoch:
        fail("train.eval_every_epoch", True, "false with data.n_test=0 (there are no test pairs to evaluate)")
    if train.early_stop_patience > 0 and data.n_val == 0:
        fail(
            "train.early_stop_patience",
            train.early_stop_patience,
            "early stopping reads validation pairs: set data.n_val > 0 too (never the test pairs)",
        )
    aux = setting(config, "model.aux_weight", 0.0)
    if not is_number(aux) or aux < 0:
        fail("model.aux_weight", aux, "a finite number >= 0")
    if device.type == "cuda" and not torch.cuda.is_available():
        fail("device", "cuda", "cuda needs a visible CUDA GPU and this machine has none; use device=cpu or device=auto")
    if device.vectorize > 1:
        for f in documented(TrainSettings):
            needed, value = f.metadata["vectorized"], getattr(train, f.name)
            if needed is not None and value != needed:
                fail(train.dotted(f.name), value, f"with device.vectorize > 1 only {needed!r} (seeds trained at once)")
    return Checked(config, run, data, train, device, augment, tracking)


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
            plain = isinstance(value, (DictConfig, ListConfig))
            out[str(key)] = OmegaConf.to_container(value, resolve=True) if plain else value
        except OmegaConfBaseException as error:
            where = getattr(error, "full_key", None) or str(key)
            written = dict(walk(OmegaConf.to_container(cfg, resolve=False))).get(where)
            fail(where, written, f"it cannot be resolved ({first_line(error)})")
    return out


def check_environment_reads(cfg: DictConfig) -> None:
    """``${oc.env:...}`` only in the keys the schema lets read the environment (as written,
    escaped or not): anywhere else a shared YAML would carry the environment into folder names and
    records. A value that resolves to an interpolation is refused by the targets stage."""
    allowed = [row["key"] for row in key_table() if row["type"].startswith("path")]  # the folders
    as_written = {k: v for k, v in OmegaConf.to_container(cfg, resolve=False).items() if k != "hydra"}
    for key, value in walk(as_written):
        if isinstance(value, str) and ENVIRONMENT_READ.search(value) and key not in allowed:
            fail(
                key,
                value,
                f"environment variables (oc.env) may only set {', '.join(allowed)}: "
                "elsewhere they would go into run folders and records",
            )
