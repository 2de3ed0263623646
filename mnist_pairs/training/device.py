"""The device a run trains on and the process-wide torch settings it needs."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

from mnist_pairs.config.schema import DeviceSettings


def resolve_device(kind: str) -> torch.device:
    """``auto`` picks CUDA when a GPU is visible, else the CPU."""
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(kind)


def use_channels_last(setting: str | bool, model: torch.nn.Module) -> bool:
    """``auto`` follows the model family's ``prefers_channels_last`` (plain CNNs are faster without)."""
    return bool(getattr(model, "prefers_channels_last", False)) if setting == "auto" else bool(setting)


def set_up_device(settings: DeviceSettings) -> torch.device:
    """The run's device, and its torch thread count (``device.threads``; 0 keeps torch's)."""
    if settings.threads:
        torch.set_num_threads(settings.threads)
    return resolve_device(settings.type)


def keeps_torch_threads(function: Callable[..., Any]) -> Callable[..., Any]:
    """``device.threads`` sets torch's thread count, process-wide: give the caller (a test
    process, a notebook, the next job of a worker) its own count back when ``function`` returns."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        before = torch.get_num_threads()
        try:
            return function(*args, **kwargs)
        finally:
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)

    return wrapper
