"""Plain convolutional nets on the two images stacked as channels."""

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


def conv_output_size(size: int, kernel: int, padding: int) -> int:
    """Spatial size after a stride-1 convolution."""
    return size + 2 * padding - kernel + 1


class CNN(nn.Module):
    """Convolutions ``in_channels -> channels[0] -> ...`` (each conv -> [BN] -> activation, or BN
    after the activation), then a head: ``linear`` flattens and applies Linear(C*S*S, n_classes);
    ``conv`` applies a Conv2d(C, n_classes, kernel=S) covering the whole remaining S x S map."""

    def __init__(
        self,
        activation: ActivationFactory,
        in_channels: int = 2,
        input_size: int = 14,
        channels: Sequence[int] = (8, 16, 16),
        kernels: Sequence[int] = (3, 5, 5),
        padding: int = 0,
        head: str = "linear",
        n_classes: int = 2,
        batchnorm: bool = False,
        batchnorm_layers: Sequence[int] | None = None,
        bn_after_activation: bool = False,
        dropout: float = 0.0,
        activation_on_logits: bool = False,
    ) -> None:
        super().__init__()
        if len(channels) != len(kernels):
            raise ValueError(f"kernels={list(kernels)}: one per conv layer, as many as channels={list(channels)}")
        check_at_least(
            1, in_channels=in_channels, input_size=input_size, channels=channels, kernels=kernels, n_classes=n_classes
        )
        check_at_least(0, padding=padding)
        check_probability(dropout=dropout)
        check_layer_indices(len(channels), batchnorm_layers=batchnorm_layers)
        if head not in ("linear", "conv"):
            raise ValueError(f"head={head!r}: allowed are 'linear' and 'conv'")
        layers: list[nn.Module] = []
        width, size = in_channels, input_size
        for i, (out, kernel) in enumerate(zip(channels, kernels)):
            size = conv_output_size(size, kernel, padding)
            if size < 1:
                raise ValueError(
                    f"kernels={list(kernels)}: conv layer {i} (kernel {kernel}) with padding={padding} leaves no "
                    f"pixels of the input_size={input_size} input"
                )
            norm = nn.BatchNorm2d(out) if batchnorm and selected(i, batchnorm_layers) else None
            layers.append(
                hidden_unit(
                    nn.Conv2d(width, out, kernel, padding=padding),
                    activation,
                    norm=norm,
                    norm_after_activation=bn_after_activation,
                    dropout=dropout,
                )
            )
            width = out
        if head == "linear":
            last: nn.Module = nn.Sequential(nn.Flatten(), nn.Linear(width * size * size, n_classes))
        else:
            last = nn.Sequential(nn.Conv2d(width, n_classes, size), nn.Flatten())
        layers.append(output_unit(last, activation, activation_on_logits))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
