"""Fully connected nets on the 392 flattened pixels of the two 14x14 images."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mnist_pairs.models.layers import (
    ActivationFactory,
    check_at_least,
    check_layer_indices,
    check_probability,
    hidden_unit,
    output_unit,
    selected,
)


class FCNN(nn.Module):
    """``in_features -> hidden[0] -> ... -> n_classes``; each hidden layer is
    Linear -> [BN] -> activation -> [dropout]. ``dropout_layers`` / ``batchnorm_layers`` pick which
    hidden layers (0-based) get dropout / BN; ``None`` means all of them."""

    def __init__(
        self,
        activation: ActivationFactory,
        in_features: int = 392,
        hidden: Sequence[int] = (1000, 1000),
        n_classes: int = 2,
        dropout: float = 0.0,
        dropout_layers: Sequence[int] | None = None,
        batchnorm: bool = False,
        batchnorm_layers: Sequence[int] | None = None,
        bn_after_activation: bool = False,
        activation_on_logits: bool = False,
    ) -> None:
        super().__init__()
        check_at_least(1, in_features=in_features, hidden=hidden, n_classes=n_classes)
        check_probability(dropout=dropout)
        check_layer_indices(len(hidden), dropout_layers=dropout_layers, batchnorm_layers=batchnorm_layers)
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for i, size in enumerate(hidden):
            norm = nn.BatchNorm1d(size) if batchnorm and selected(i, batchnorm_layers) else None
            layers.append(
                hidden_unit(
                    nn.Linear(width, size),
                    activation,
                    norm=norm,
                    norm_after_activation=bn_after_activation,
                    dropout=dropout if selected(i, dropout_layers) else 0.0,
                )
            )
            width = size
        layers.append(output_unit(nn.Linear(width, n_classes), activation, activation_on_logits))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
