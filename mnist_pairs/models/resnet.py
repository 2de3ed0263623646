"""The report's residual net, usable alone (2 input channels, 2 classes) or as a Siamese branch
(1 input channel, 10 digit classes)."""

from __future__ import annotations

import torch
from torch import nn

from mnist_pairs.models.layers import ActivationFactory, check_at_least


class ResidualBlock(nn.Module):
    """conv -> [BN] -> activation -> conv -> [BN] -> + input -> activation; 'same' padding."""

    def __init__(self, channels: int, kernel: int, activation: ActivationFactory, batchnorm: bool) -> None:
        super().__init__()

        def conv_bn() -> list[nn.Module]:
            conv = nn.Conv2d(channels, channels, kernel, padding=kernel // 2)
            return [conv, nn.BatchNorm2d(channels)] if batchnorm else [conv]

        self.body = nn.Sequential(*conv_bn(), activation(), *conv_bn())
        self.out = activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x) + x)


class ResNet(nn.Module):
    """1x1 stem conv to ``channels``, ``blocks`` residual blocks, pooling, activation, Linear.

    ``pool='channels'`` averages over the channel dimension (the report's text: input_size**2
    features); ``pool='spatial'`` averages each channel over the image (the authors' code:
    ``channels`` features)."""

    prefers_channels_last = True  # about 1.45x faster training on CPU

    def __init__(
        self,
        activation: ActivationFactory,
        in_channels: int = 2,
        input_size: int = 14,
        channels: int = 12,
        kernel: int = 5,
        blocks: int = 6,
        n_classes: int = 2,
        batchnorm: bool = False,
        pool: str = "channels",
    ) -> None:
        super().__init__()
        check_at_least(
            1, in_channels=in_channels, input_size=input_size, channels=channels, kernel=kernel, n_classes=n_classes
        )
        check_at_least(0, blocks=blocks)
        if kernel % 2 == 0:
            raise ValueError(f"kernel={kernel}: must be odd to keep the image size")
        if pool not in ("channels", "spatial"):
            raise ValueError(f"pool={pool!r}: allowed are 'channels' and 'spatial'")
        self.pool = pool
        self.stem = nn.Conv2d(in_channels, channels, 1)
        self.blocks = nn.Sequential(*(ResidualBlock(channels, kernel, activation, batchnorm) for _ in range(blocks)))
        self.act = activation()
        features = input_size * input_size if pool == "channels" else channels
        self.fc = nn.Linear(features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.stem(x))
        pooled = h.mean(dim=1).flatten(1) if self.pool == "channels" else h.mean(dim=(2, 3))
        return self.fc(self.act(pooled))
