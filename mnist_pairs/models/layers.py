"""Building blocks shared by the families: the activation factory type and the
"weights -> [BN] -> activation -> [BN] -> [dropout]" unit whose order the authors' code varied."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

ActivationFactory = Callable[[], nn.Module]
"""A zero-argument callable returning a fresh activation module (e.g. ``torch.nn.ReLU`` or a
``functools.partial`` of it, as Hydra builds from ``_partial_: true``)."""


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
