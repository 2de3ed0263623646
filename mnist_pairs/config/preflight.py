"""What is checked before Hydra makes any folder for a run: the config, the run folder and the data.

Hydra creates a run's folder (with ``.hydra/`` and ``train.log``) before it calls the task
function, so a check inside mnist_pairs.train comes too late to leave nothing behind.
``CheckBeforeRun`` is a Hydra callback (conf/config.yaml, ``hydra.callbacks``) whose
``on_run_start`` runs once the config is composed and before the folder exists; it exits with one
line. A sweep's jobs are checked the same way by the grid sweeper before it launches any."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mnist_pairs.config.checks import MAX_NAME, ConfigError, shown, validate
from mnist_pairs.training.data import DataError, prepare_split


def seed_batch_dirs(cfg: DictConfig, run_dir: Path, folder_key: str = "hydra.run.dir") -> dict[int, Path]:
    """Run folder per seed of the job. One seed: ``run_dir``, wherever Hydra puts it (a
    ``hydra.run.dir`` of the user's is honoured). Several (``device.seed_batch``, set by the grid
    sweeper for ``device.vectorize`` or ``device.seeds_per_job`` > 1, or by a tuning preset):
    ``run_dir`` for the first and its ``seed=<n>`` siblings for the others, so ``run_dir`` must
    end in ``seed=<first seed>``; ``folder_key`` is the key that chose it, for the error."""
    seeds = list(cfg.device.get("seed_batch") or [cfg.seed])
    if seeds[0] != cfg.seed:
        raise ConfigError(f"device.seed_batch={seeds} is not allowed: it must start with the job's seed={cfg.seed}")
    if len(seeds) == 1:
        return {int(cfg.seed): run_dir}
    if run_dir.name != f"seed={cfg.seed}":
        raise ConfigError(
            f"{folder_key}={run_dir} is not allowed with device.seed_batch={seeds}: each seed of the batch gets its own "
            f"sibling folder seed=<n>, so the folder must end in seed={cfg.seed}; leave {folder_key} to its default "
            "and choose the place with output_root=... (and experiment_name=...)"
        )
    return {int(s): run_dir.parent / f"seed={s}" for s in seeds}


@functools.lru_cache(maxsize=16)
def _split_sizes(root: str, download: bool, cache_dir: str | None) -> dict[str, int]:
    return {split: prepare_split(root, split, download, cache_dir)[1] for split in ("train", "test")}


def check_data(cfg: DictConfig) -> None:
    """Both MNIST splits readable (checked, unpacked: data.prepare_split; once per process and
    data folder), and large enough for ``data.n_train`` and ``data.n_test`` pairs of distinct
    images. DataError or ConfigError."""
    sizes = _split_sizes(
        str(cfg.data.root), bool(cfg.data.download), None if cfg.data.cache_dir is None else str(cfg.data.cache_dir)
    )
    for split, key in (("train", "data.n_train"), ("test", "data.n_test")):
        n = OmegaConf.select(cfg, key)
        if 2 * n > sizes[split]:
            raise ConfigError(
                f"{key}={n} is not allowed: {n} pairs need {2 * n} distinct images and the {split} split in {cfg.data.root} has {sizes[split]}"
            )


def check_folder(path: Path, key: str) -> None:
    """The folder ``path`` can be made: no part longer than a file name may be (a folder name
    made of many or long overridden values), no file where a folder must go."""
    for part in path.parts:
        if len(part) > MAX_NAME:
            raise ConfigError(
                f"{key}={shown(str(path), 120)} is not allowed: its part {shown(part, 60)} has {len(part)} characters and "
                f"file systems allow {MAX_NAME} (a folder name made of many or long overridden values)"
            )
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"{key}={shown(str(path), 120)} is not allowed: {existing} is a file, not a folder "
            "(the folder is made of output_root, experiment_name, the model, activation, overridden values and seed)"
        )


def check_folder_and_data(cfg: DictConfig, run_dir: Path, folder_key: str = "hydra.run.dir") -> None:
    """What is checked of a run whose config is valid, once its folder is known: the folder can be
    made (``folder_key`` chose it), the folders of a batch of seeds, and the data. ConfigError or
    DataError."""
    check_folder(run_dir, folder_key)
    seed_batch_dirs(cfg, run_dir, folder_key)
    check_data(cfg)


def check_run(config: DictConfig) -> Path:
    """All that stops a single run before Hydra makes its folder, from its config with Hydra's
    node: the config (mnist_pairs.config.validate, the model's dry run included; first, as the
    folder's name reads it), then ``check_folder_and_data`` for ``hydra.run.dir``. Returns the run
    folder; sets Hydra's global config to ``config``, as Hydra's run_job does next."""
    validate(config)
    HydraConfig.instance().set_config(config)  # for the ${hydra:job.override_dirname} of the folder's name
    try:
        run_dir = Path(str(OmegaConf.select(config, "hydra.run.dir"))).absolute()
    except OmegaConfBaseException as error:
        raise ConfigError(f"hydra.run.dir cannot be resolved: {str(error).strip().splitlines()[0]}") from None
    check_folder_and_data(config, run_dir)
    return run_dir


def one_line(error: BaseException) -> str:
    """An unexpected error in one line: its type and the first line of its message."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


class CheckBeforeRun(Callback):
    """``check_run`` for a single run, before Hydra makes its folder; exits with one line."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_run(config)
        except (ConfigError, DataError) as error:
            sys.exit(f"error: {error}")
        except Exception as error:  # Hydra would turn it into a warning and make the folder anyway
            sys.exit(f"error: {one_line(error)} (while checking the config, before any run folder)")


def check_command_line(argv: list[str], config_name: str = "config") -> None:
    """The ``hydra`` node of the command line's composition through the allowlist
    (targets.check_hydra_node), before Hydra composes it for the run: Hydra configures its logging
    while it composes and instantiates the callbacks, the launcher and the sweeper right after,
    before any callback of ours can look. Composes once more (~0.1 s), as Hydra's own loader does,
    from the same search path; exits with one line."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path, get_args_parser
    from hydra.types import RunMode

    from mnist_pairs.config.compose import CONF_DIR
    from mnist_pairs.config.targets import TargetError, check_hydra_node

    args = get_args_parser().parse_args(argv)
    if args.help or args.hydra_help or args.shell_completion:
        return
    search_path = create_config_search_path(f"file://{Path(args.config_path or CONF_DIR).absolute()}")
    if args.config_dir is not None:
        search_path.append("command-line", f"file://{Path(args.config_dir).absolute()}")
    loader = ConfigLoaderImpl(config_search_path=search_path)
    try:
        cfg = loader.load_configuration(
            args.config_name or config_name,
            args.overrides,
            RunMode.MULTIRUN,
            from_shell=True,
            validate_sweep_overrides=False,
        )
    except Exception:
        return  # Hydra composes it next and reports the error itself, before it builds anything
    HydraConfig.instance().set_config(cfg)  # as Hydra does: ${hydra:...} resolves
    try:
        check_hydra_node(cfg.hydra)
    except TargetError as error:
        sys.exit(f"error: {error.key}={shown(error.value)} is not allowed: {error.allowed}")
    finally:
        HydraConfig.instance().cfg = None
