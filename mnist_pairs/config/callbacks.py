"""Where the validation pipeline meets Hydra's command line, before Hydra builds or makes anything.

Hydra configures its logging while it composes, instantiates the callbacks, the launcher and the
sweeper right after, and makes a run's folder (``.hydra/``, ``train.log``) before it calls the
task function, so checks inside the task come too late to leave nothing behind:

- ``check_command_line`` (called by ``python -m mnist_pairs.train`` before Hydra starts) passes
  the ``hydra`` node of the command line's composition through the allowlist;
- ``CheckBeforeRun`` (conf/config.yaml, ``hydra.callbacks``) runs the whole pipeline on a single
  run once it is composed and before its folder exists (the grid sweeper does it for every job of
  a sweep before launching any). Both exit with one line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from mnist_pairs.config.checks import STAGES, validate
from mnist_pairs.config.schema import ConfigError, shown
from mnist_pairs.training.data import DataError


def check_run(config: DictConfig) -> Path:
    """The whole pipeline for a single run from its config with Hydra's node, the folder of
    ``hydra.run.dir`` included. Returns the run folder; sets Hydra's global config to
    ``config``, as Hydra's run_job does next (the folder's name reads it)."""
    HydraConfig.instance().set_config(config)
    checked = validate(config, STAGES[:4], folder_key="hydra.run.dir")
    assert checked is not None and checked.run_dir is not None
    return checked.run_dir


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
    (targets.check_hydra_node), before Hydra composes it for the run. Composes once more
    (~0.1 s) with Hydra's own loader and search path; exits with one line."""
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
            args.config_name or config_name, args.overrides, RunMode.MULTIRUN, validate_sweep_overrides=False
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
