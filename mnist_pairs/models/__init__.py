"""Model families. Each family is one class whose options are plain constructor arguments, so a
variant is a YAML file under conf/model/ with `_target_: mnist_pairs.models.<Family>`."""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from mnist_pairs.models.cnn import CNN
from mnist_pairs.models.fcnn import FCNN
from mnist_pairs.models.resnet import ResNet
from mnist_pairs.models.siamese import ConvBranch, Siamese

__all__ = ["CNN", "FCNN", "ConvBranch", "ResNet", "Siamese", "build_model"]


def build_model(model_cfg: DictConfig | dict[str, Any]) -> nn.Module:
    """Instantiate the model group's ``_target_`` (its ``name`` is a label, not an argument)."""
    spec = OmegaConf.to_container(model_cfg, resolve=True) if isinstance(model_cfg, DictConfig) else dict(model_cfg)
    spec.pop("name", None)
    return instantiate(spec)
