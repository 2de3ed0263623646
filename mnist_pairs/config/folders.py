"""The last stages of the validation pipeline (mnist_pairs.config.checks): the data a config
reads and the folders a run writes into, each checked before anything is made."""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mnist_pairs.config.schema import MAX_NAME, ConfigError, fail, first_line, shown


def unwritable(folder: Path) -> str | None:
    """Why ``folder`` cannot be made or written into, or None: a folder is made and removed in its
    nearest existing ancestor (what the run will do, with the user's rights; nothing is left)."""
    existing = folder.absolute()
    try:
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
    except OSError as error:
        return f"{existing} cannot be read ({error.strerror or first_line(error)})"
    return _probe(existing)


@functools.lru_cache(maxsize=64)  # once per folder and process: a sweep checks many runs in one folder
def _probe(existing: Path) -> str | None:
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".mnist_pairs-probe-", dir=existing))
    except OSError as error:
        return f"nothing can be made in {existing} ({error.strerror or first_line(error)})"
    return None


def seed_batch_dirs(
    cfg: DictConfig | dict[str, Any], run_dir: Path, folder_key: str = "hydra.run.dir"
) -> dict[int, Path]:
    """Run folder per seed of the job: ``run_dir`` for one seed (wherever Hydra puts it); for a
    ``device.seed_batch`` of several, ``run_dir`` for the first and its ``seed=<n>`` siblings for
    the others; ``folder_key`` is the key that chose ``run_dir``, for the error."""
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

    check_data_folder(root, download, cache_dir)
    return {split: prepare_split(root, split, download, cache_dir)[1] for split in ("train", "test")}


def check_data_folder(root: str, download: bool, cache_dir: str | None) -> None:
    """The folder MNIST is unpacked or downloaded into (``data.root``, or ``data.cache_dir`` for a
    read-only root) can be written, when there is something to unpack or download."""
    from mnist_pairs.training.data import ALL_FILES, idx_problem, resolve_root

    source = Path(root).expanduser()
    try:
        raw = resolve_root(source, cache_dir) / "MNIST" / "raw"
        if all(idx_problem(raw / name) is None for name in ALL_FILES):
            return
        gz = any((d / f"{n}.gz").is_file() for d in (raw, source / "MNIST" / "raw") for n in ALL_FILES)
    except OSError:
        return  # data.prepare_split names the folder it cannot read
    why = (download or gz) and unwritable(raw)
    if why:
        in_cache = raw.parents[1] != source.resolve()
        key, value = ("data.cache_dir", cache_dir) if in_cache else ("data.root", root)
        fail(key, value, f"MNIST is unpacked or downloaded into {raw}, and {why}")


def check_data(config: dict[str, Any]) -> None:
    """Both MNIST splits readable (data.prepare_split; once per process and data folder), and
    large enough for ``data.n_train`` and ``data.n_test`` pairs of distinct images."""
    data = config["data"]
    cache_dir = None if data.get("cache_dir") is None else str(data["cache_dir"])
    sizes = _split_sizes(str(data["root"]), bool(data["download"]), cache_dir)
    for split in ("train", "test"):
        n = data[f"n_{split}"]
        if 2 * n > sizes[split]:
            fail(
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
        raise ConfigError(f"{folder_key} cannot be resolved: {first_line(error)}") from None


def check_run_folder(config: dict[str, Any], run_dir: Path, folder_key: str, seeds_per_job: int = 1) -> None:
    """The folder can be made and written (no part longer than a file name may be, no file where a
    folder must go; output_root is named when the folder lies in it), and fits the job's seeds: a
    batch's (``device.seed_batch``), or the ``seeds_per_job`` the grid sweeper packs into the job."""
    long = next((part for part in run_dir.parts if len(part) > MAX_NAME), None)
    if long is not None:
        raise ConfigError(
            f"{folder_key}={shown(str(run_dir), 120)} is not allowed: its part {shown(long, 60)} has {len(long)} "
            f"characters and file systems allow {MAX_NAME} (a folder name made of many or long overridden values)"
        )
    why = unwritable(run_dir)
    if why:
        root = Path(str(config["output_root"])).expanduser().absolute()
        if run_dir.absolute().is_relative_to(root):
            fail("output_root", config["output_root"], f"a folder that can be made and written: {why}")
        raise ConfigError(
            f"{folder_key}={shown(str(run_dir), 120)} is not allowed: {why} (the folder is made of output_root, "
            "experiment_name, the model, activation, overridden values and seed)"
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
