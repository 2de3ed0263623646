"""Building blocks shared by the families: the activation factory type and the
"weights -> [BN] -> activation -> [BN] -> [dropout]" unit whose order the authors' code varied."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

ActivationFactory = Callable[[], nn.Module]
"""A zero-argument callable returning a fresh activation module (e.g. ``torch.nn.ReLU`` or a
``functools.partial`` of it, as Hydra builds from ``_partial_: true``)."""


def check_at_least(low: float, **values: float | Sequence[float]) -> None:
    """ValueError naming the first argument (or an item of a list argument) below ``low``: a width,
    a channel or class count, a kernel below 1 builds a model that trains on nothing."""
    for name, value in values.items():
        if any(v < low for v in (value if isinstance(value, Sequence) else [value])):
            raise ValueError(f"{name}={value!r}: allowed are numbers >= {low}")


def check_probability(**values: float) -> None:
    """ValueError naming the first dropout probability outside [0, 1)."""
    for name, value in values.items():
        if not 0 <= value < 1:
            raise ValueError(f"{name}={value!r}: allowed is a probability from 0 to 1 (excluded)")


def check_layer_indices(n_layers: int, **values: Sequence[int] | None) -> None:
    """ValueError naming the first list of layer indices with one outside 0..n_layers - 1 (such an
    index would silently select nothing)."""
    for name, value in values.items():
        if value is not None and any(not 0 <= i < n_layers for i in value):
            raise ValueError(
                f"{name}={list(value)!r}: allowed are indices of the {n_layers} hidden layers, 0 to {n_layers - 1}"
            )


def selected(layer_index: int, layers: Sequence[int] | None) -> bool:
    """True when ``layer_index`` is chosen by ``layers`` (``None`` means every layer)."""
    return layers is None or layer_index in layers


def hidden_unit(
    weights: nn.Module,
    activation: ActivationFactory,
    norm: nn.Module | None = None,
    norm_after_activation: bool = False,
    dropout: float = 0.0,
) -> nn.Sequential:
    """One hidden layer: weights, optional norm before or after the activation, optional dropout."""
    parts: list[nn.Module] = [weights]
    if norm is not None and not norm_after_activation:
        parts.append(norm)
    parts.append(activation())
    if norm is not None and norm_after_activation:
        parts.append(norm)
    if dropout > 0:
        parts.append(nn.Dropout(dropout))
    return nn.Sequential(*parts)


def output_unit(weights: nn.Module, activation: ActivationFactory, activation_on_logits: bool) -> nn.Module:
    """The last layer; the authors' CNNs applied the activation to the logits too."""
    return nn.Sequential(weights, activation()) if activation_on_logits else weights
