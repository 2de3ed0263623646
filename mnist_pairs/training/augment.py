"""On-the-fly data augmentation of training pairs, drawn per mini-batch from the run's own
``augment`` random stream (so it is reproducible per seed and independent of the other streams).

Two kinds, combinable: small random affine moves of each image (rotation, translation), and
swapping the two images of a pair, whose target is then recomputed from the swapped digits
(``first <= second``: flipped, except that equal digits stay class 1)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mnist_pairs.config.schema import AugmentSettings


def affine(x: torch.Tensor, settings: AugmentSettings, generator: torch.Generator) -> torch.Tensor:
    """Every image of ``x`` [n, 2, h, w] moved by its own random rotation and translation.
    Pixels moved in from outside repeat the border (MNIST's border is background at any scaling)."""
    n, c, h, w = x.shape
    m = n * c
    angle = (torch.rand(m, generator=generator) * 2 - 1) * math.radians(settings.rotate_deg)
    shift = (torch.rand(m, 2, generator=generator) * 2 - 1) * settings.translate_px
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack(
        [
            torch.stack([cos, -sin, shift[:, 0] * 2 / w], dim=1),
            torch.stack([sin, cos, shift[:, 1] * 2 / h], dim=1),
        ],
        dim=1,
    ).to(x.device, x.dtype)
    images = x.reshape(m, 1, h, w)
    grid = F.affine_grid(theta, [m, 1, h, w], align_corners=False)
    return F.grid_sample(images, grid, padding_mode="border", align_corners=False).reshape(n, c, h, w)


def augment(
    x: torch.Tensor, digits: torch.Tensor, settings: AugmentSettings, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images, target, digits) of an augmented mini-batch."""
    memory_format = (
        torch.channels_last
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        else torch.contiguous_format
    )
    if settings.rotate_deg > 0 or settings.translate_px > 0:
        x = affine(x.contiguous(), settings, generator)
    if settings.swap:
        flip = (torch.rand(len(x), generator=generator) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(1), x)
        digits = torch.where(flip[:, None], digits.flip(1), digits)
    target = (digits[:, 0] <= digits[:, 1]).long()
    return x.contiguous(memory_format=memory_format), target, digits
