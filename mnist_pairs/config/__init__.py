"""Configuration: the schema of every key, composing conf/, and the checks a config passes
before anything runs. Importing this package imports neither torch nor the checks."""

from mnist_pairs.config.compose import CONF_DIR, compose_config

__all__ = ["CONF_DIR", "compose_config"]
