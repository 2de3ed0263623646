"""Weight-sharing nets: one branch maps each 14x14 image to 10 digit scores, a combiner maps the
two score vectors to the 2 classes. The branch outputs feed the auxiliary digit loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mnist_pairs.models.cnn import conv_output_size
from mnist_pairs.models.layers import ActivationFactory, check_at_least, check_probability


class ConvBranch(nn.Module):
    """conv, maxpool 2, [BN], act, conv, maxpool 2, [BN], act, flatten, Linear(hidden), act,
    [dropout], Linear(n_digits). The report's branch has kernel 3 and no padding; LeNet-style
    branches use kernel 5 with padding 2 (14 -> 7 -> 3 pixels)."""

    def __init__(
        self,
        activation: ActivationFactory,
        channels: Sequence[int] = (32, 64),
        kernel: int = 3,
        padding: int = 0,
        hidden: int = 100,
        n_digits: int = 10,
        input_size: int = 14,
        in_channels: int = 1,
        batchnorm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_at_least(
            1,
            channels=channels,
            kernel=kernel,
            hidden=hidden,
            n_digits=n_digits,
            input_size=input_size,
            in_channels=in_channels,
        )
        check_at_least(0, padding=padding)
        check_probability(dropout=dropout)
        layers: list[nn.Module] = []
        width, size = in_channels, input_size
        for out in channels:
            layers += [nn.Conv2d(width, out, kernel, padding=padding), nn.MaxPool2d(2)]
            if batchnorm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(activation())
            width, size = out, conv_output_size(size, kernel, padding) // 2
        if size < 1:
            raise ValueError(
                f"channels={list(channels)}: {len(channels)} conv layers of kernel={kernel}, padding={padding} (each "
                f"with a max pool 2) leave no pixels of the input_size={input_size} image"
            )
        layers += [nn.Flatten(), nn.Linear(width * size * size, hidden), activation()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(hidden, n_digits))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Siamese(nn.Module):
    """Shared ``branch`` on image 1 and image 2; a combiner (Linear, or an MLP with
    ``combiner_hidden``) on the concatenated digit scores (or their softmax).

    ``aux_weight`` > 0 asks the training engine for the auxiliary digit loss;
    ``forward(x, return_digits=True)`` returns ``(logits, digits_1, digits_2)`` for it."""

    prefers_channels_last = True  # 1.5-1.9x faster training on CPU with conv or ResNet branches

    def __init__(
        self,
        branch: nn.Module,
        activation: ActivationFactory,
        n_digits: int = 10,
        n_classes: int = 2,
        combiner_hidden: Sequence[int] = (),
        combiner_input: str = "logits",
        combiner_dropout: float = 0.0,
        swap_order: bool = False,
        joint_branch_batch: bool = True,
        aux_weight: float = 0.0,
    ) -> None:
        super().__init__()
        check_at_least(1, n_digits=n_digits, n_classes=n_classes, combiner_hidden=combiner_hidden)
        check_at_least(0, aux_weight=aux_weight)
        check_probability(combiner_dropout=combiner_dropout)
        if combiner_input not in ("logits", "softmax"):
            raise ValueError(f"combiner_input={combiner_input!r}: allowed are 'logits' and 'softmax'")
        self.branch = branch
        self.combiner_input = combiner_input
        self.swap_order = swap_order
        self.joint_branch_batch = joint_branch_batch
        self.aux_weight = float(aux_weight)
        layers: list[nn.Module] = []
        width = 2 * n_digits
        for size in combiner_hidden:
            layers += [nn.Linear(width, size), activation()]
            if combiner_dropout > 0:
                layers.append(nn.Dropout(combiner_dropout))
            width = size
        layers.append(nn.Linear(width, n_classes))
        self.combiner = nn.Sequential(*layers)

    def digit_scores(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Branch outputs for image 1 and image 2 of each pair."""
        first, second = x[:, 0:1], x[:, 1:2]
        if self.joint_branch_batch:
            both = self.branch(torch.cat([first, second], dim=0))
            return both[: len(x)], both[len(x) :]
        return self.branch(first), self.branch(second)

    def forward(self, x: torch.Tensor, return_digits: bool = False):
        d1, d2 = self.digit_scores(x)
        pair = (d2, d1) if self.swap_order else (d1, d2)
        features = torch.cat(pair, dim=1)
        if self.combiner_input == "softmax":
            features = features.view(len(x), 2, -1).softmax(dim=-1).flatten(1)
        logits = self.combiner(features)
        return (logits, d1, d2) if return_digits else logits
