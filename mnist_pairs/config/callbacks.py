"""Where the validation pipeline meets Hydra, before Hydra builds or makes anything:
``check_command_line`` (the hydra node and the launcher's needs, before Hydra starts) and
``CheckBeforeRun`` (the whole pipeline on a single run, before its folder exists)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from mnist_pairs.config.checks import STAGES, validate
from mnist_pairs.config.schema import ConfigError, first_line
from mnist_pairs.training.data import DataError


def check_run(config: DictConfig) -> Path:
    """The whole pipeline for a single run, the folder of ``hydra.run.dir`` included; returns the
    folder. Sets Hydra's global config to ``config``, as Hydra's run_job does next."""
    HydraConfig.instance().set_config(config)
    checked = validate(config, STAGES[:4], folder_key="hydra.run.dir")
    assert checked is not None and checked.run_dir is not None
    return checked.run_dir


def one_line(error: BaseException) -> str:
    """An unexpected error in one line: its type and the first line of its message."""
    return f"{type(error).__name__}: {first_line(error)}"


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
    (targets.check_hydra_node), and a sweep's launcher (SLURM's submit with srun: it must be on
    PATH), before Hydra composes it for the run. Composes once more (~0.1 s) with Hydra's own
    loader and search path; exits with one line."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path, get_args_parser
    from hydra.types import RunMode

    from mnist_pairs.config.compose import CONF_DIR
    from mnist_pairs.config.targets import check_hydra_node

    args = get_args_parser().parse_args(argv)
    if args.help or args.hydra_help or args.shell_completion:
        return
    search_path = create_config_search_path(f"file://{Path(args.config_path or CONF_DIR).absolute()}")
    if args.config_dir is not None:
        search_path.append("command-line", f"file://{Path(args.config_dir).absolute()}")
    loader = ConfigLoaderImpl(config_search_path=search_path)
    try:
        cfg = loader.load_configuration(
            args.config_name or config_name, args.overrides, RunMode.MULTIRUN, validate_sweep_overrides=False
        )
    except Exception:
        return  # Hydra composes it next and reports the error itself, before it builds anything
    HydraConfig.instance().set_config(cfg)  # as Hydra does: ${hydra:...} resolves
    try:
        check_hydra_node(cfg.hydra)
        if args.multirun or OmegaConf.select(cfg, "hydra.mode") == RunMode.MULTIRUN:
            launcher = str(OmegaConf.select(cfg, "hydra.launcher._target_", default=""))
            if launcher.endswith("SlurmLauncher") and shutil.which("srun") is None:
                choice = OmegaConf.select(cfg, "hydra.runtime.choices.launcher", default=None) or "slurm"
                raise ConfigError(f"launcher={choice} needs SLURM's srun on PATH; none found here")
    except ConfigError as error:
        sys.exit(f"error: {error}")
    finally:
        HydraConfig.instance().cfg = None
