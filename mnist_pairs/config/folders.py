"""The last stages of the validation pipeline (mnist_pairs.config.checks): the data a config
reads and the folder its run writes into."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mnist_pairs.config.schema import MAX_NAME, ConfigError, SettingError, shown


def seed_batch_dirs(
    cfg: DictConfig | dict[str, Any], run_dir: Path, folder_key: str = "hydra.run.dir"
) -> dict[int, Path]:
    """Run folder per seed of the job. One seed: ``run_dir``, wherever Hydra puts it (a
    ``hydra.run.dir`` of the user's is honoured). Several (``device.seed_batch``, set by the grid
    sweeper for ``device.vectorize`` or ``device.seeds_per_job`` > 1, or by a tuning preset):
    ``run_dir`` for the first and its ``seed=<n>`` siblings for the others, so ``run_dir`` must
    end in ``seed=<first seed>``; ``folder_key`` is the key that chose it, for the error."""
    seed = cfg["seed"]
    seeds = list((cfg["device"].get("seed_batch") if "device" in cfg else None) or [seed])
    if seeds[0] != seed:
        raise ConfigError(f"device.seed_batch={seeds} is not allowed: it must start with the job's seed={seed}")
    if len(seeds) == 1:
        return {int(seed): run_dir}
    require_seed_folder(run_dir, seed, folder_key, f"device.seed_batch={seeds}")
    return {int(s): run_dir.parent / f"seed={s}" for s in seeds}


def require_seed_folder(run_dir: Path, seed: int, folder_key: str, why: str) -> None:
    """The rule of a job of several seeds: each seed gets its own sibling folder ``seed=<n>``."""
    if run_dir.name != f"seed={seed}":
        raise ConfigError(
            f"{folder_key}={run_dir} is not allowed with {why}: each seed of the batch gets its own "
            f"sibling folder seed=<n>, so the folder must end in seed={seed}; leave {folder_key} to its default "
            "and choose the place with output_root=... (and experiment_name=...)"
        )


@functools.lru_cache(maxsize=16)
def _split_sizes(root: str, download: bool, cache_dir: str | None) -> dict[str, int]:
    from mnist_pairs.training.data import prepare_split

    return {split: prepare_split(root, split, download, cache_dir)[1] for split in ("train", "test")}


def check_data(config: dict[str, Any]) -> None:
    """Both MNIST splits readable (checked, unpacked: data.prepare_split; once per process and
    data folder), and large enough for ``data.n_train`` and ``data.n_test`` pairs of distinct
    images. DataError, or SettingError naming the key."""
    data = config["data"]
    cache_dir = None if data.get("cache_dir") is None else str(data["cache_dir"])
    sizes = _split_sizes(str(data["root"]), bool(data["download"]), cache_dir)
    for split in ("train", "test"):
        n = data[f"n_{split}"]
        if 2 * n > sizes[split]:
            raise SettingError(
                f"data.n_{split}",
                n,
                f"{n} pairs need {2 * n} distinct images and the {split} split in {data['root']} has {sizes[split]}",
            )


def run_folder(cfg: DictConfig, folder_key: str) -> Path:
    """A job's run folder as Hydra's run_job makes it: ``hydra.run.dir`` for a single run,
    ``hydra.sweep.dir``/``hydra.sweep.subdir`` for a sweep's job (Hydra's global config set to
    ``cfg``: the folder's name reads ``${hydra:job.override_dirname}``)."""
    try:
        if folder_key == "hydra.sweep.subdir":
            return Path(str(OmegaConf.select(cfg, "hydra.sweep.dir")), str(OmegaConf.select(cfg, folder_key)))
        return Path(str(OmegaConf.select(cfg, folder_key))).absolute()
    except OmegaConfBaseException as error:
        raise ConfigError(f"{folder_key} cannot be resolved: {str(error).strip().splitlines()[0]}") from None


def check_run_folder(config: dict[str, Any], run_dir: Path, folder_key: str, seeds_per_job: int = 1) -> None:
    """The folder can be made (no part longer than a file name may be, no file where a folder
    must go), and fits the job's seeds: a batch's (``device.seed_batch``), or the ``seeds_per_job``
    the grid sweeper packs into the job."""
    for part in run_dir.parts:
        if len(part) > MAX_NAME:
            raise ConfigError(
                f"{folder_key}={shown(str(run_dir), 120)} is not allowed: its part {shown(part, 60)} has {len(part)} "
                f"characters and file systems allow {MAX_NAME} (a folder name made of many or long overridden values)"
            )
    existing = run_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"{folder_key}={shown(str(run_dir), 120)} is not allowed: {existing} is a file, not a folder "
            "(the folder is made of output_root, experiment_name, the model, activation, overridden values and seed)"
        )
    seed_batch_dirs(config, run_dir, folder_key)
    if seeds_per_job > 1:
        require_seed_folder(run_dir, config["seed"], folder_key, "device.vectorize or device.seeds_per_job > 1")


def model_choice() -> str | None:
    """The model group's choice of the job Hydra runs (``authors/cnn3``), None outside Hydra's
    run (a config composed with the compose API and run by hand)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return OmegaConf.select(HydraConfig.get(), "runtime.choices.model")


def legacy_run_folder(run_dir: Path, choice: str | None, name: str) -> Path | None:
    """The folder a run of model group ``choice`` had when run folders were named by the model's
    ``name`` (``.../cnn3/relu/seed=1`` for ``authors/cnn3``): ``run_dir`` with its last part equal
    to the choice's folder (``authors-cnn3``, conf/config.yaml's run_subdir) read as ``name``. None
    where the two names agree (the folder never moved) or ``run_dir`` has no such part (a
    ``hydra.run.dir`` of the user's)."""
    if choice is None:
        return None
    part = str(choice).replace("/", "-")
    if part == name or part not in run_dir.parts:
        return None
    parts = list(run_dir.parts)
    index = len(parts) - 1 - parts[::-1].index(part)
    return Path(*parts[:index], name, *parts[index + 1 :])
