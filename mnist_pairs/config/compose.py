"""conf/ composed outside the CLI (scripts, tests, aggregation) as the CLI composes it. Kept apart
from mnist_pairs.config, which imports torch: aggregation composes model presets without it."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def compose_config(*overrides: str, hydra: bool = False) -> DictConfig:
    """conf/ composed with Hydra's compose API, as the CLI composes a run's config; ``hydra`` keeps
    the ``hydra`` node (launcher, sweeper, run folders)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)
