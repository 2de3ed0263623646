"""A config's model tried before any run: built on the meta device (shapes, no storage) and trained
one step at each mini-batch size the run will see, its optimizer built and stepped. A model that
cannot be built or trained (``model.kernels=[3,5,9]`` leaves no pixels; a last mini-batch of one
pair under BatchNorm; more parameters than the machine's memory) is a config error before any run
folder exists. Each distinct config is tried once per process (cached)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
from collections.abc import Iterator
from typing import Any

import torch
from hydra.utils import instantiate
from torch import nn

from mnist_pairs.config.schema import first_line
from mnist_pairs.config.targets import targets
from mnist_pairs.models import build_model
from mnist_pairs.training.engine import aux_weight, objective

N_DIGITS = 10
N_CLASSES = 2
STATE_COPIES = 4  # weights, gradients and Adam's two moments, fp32: the least a run holds
MAX_MODULES = 2_000  # layers a model may have (the largest of conf/model has 60): a bound on building time


@contextlib.contextmanager
def bounded_building(memory: int, seeds_at_once: int) -> Iterator[None]:
    """While a model is built: RuntimeError once it registers more than MAX_MODULES layers or more
    parameters than ``memory`` holds (with gradients and optimizer state); ``model.blocks=10**12``
    would otherwise build for ever, even on meta."""
    from torch.nn.modules import module as registry

    counts = {"modules": 0, "params": 0}

    def on_module(*_: Any) -> None:
        counts["modules"] += 1
        if counts["modules"] > MAX_MODULES:
            raise RuntimeError(f"it has more than {MAX_MODULES:,} layers (modules)")

    def on_parameter(_module: Any, _name: str, param: torch.Tensor | None) -> None:
        counts["params"] += 0 if param is None else param.numel()
        need = counts["params"] * 4 * STATE_COPIES * seeds_at_once
        if need > memory:
            at_once = f"device.vectorize={seeds_at_once} seeds at once" if seeds_at_once > 1 else "one seed"
            raise RuntimeError(
                f"its parameters need more than {need / 1e9:,.1f} GB with their gradients and the optimizer's state "
                f"({at_once}), and this machine has {memory / 1e9:,.1f} GB"
            )

    on_modules = registry.register_module_module_registration_hook(on_module)
    on_parameters = registry.register_module_parameter_registration_hook(on_parameter)
    try:
        yield
    finally:
        on_modules.remove()
        on_parameters.remove()


def problem(config: dict[str, Any]) -> str | None:
    """What keeps the resolved ``config``'s model from training (one line naming the key and the
    value), or None. Its targets must have passed mnist_pairs.config.targets already."""
    data, train = config["data"], config["train"]
    fit_pairs = data["n_train"] - data["n_val"]
    full_batch = train["aux_schedule"] == "alternating_full_batch"
    spec = {
        "model": config["model"],
        "optimizer": config["optimizer"],
        "batch": fit_pairs if full_batch else min(train["batch_size"], fit_pairs),
        "last": 0 if full_batch else fit_pairs % train["batch_size"],
        "label_smoothing": train["label_smoothing"],
        "seeds_at_once": config["device"]["vectorize"],
        # this machine's RAM bounds the parameters; a GPU's is not asked for: that would open a CUDA
        # context in a sweep's parent process (a model too large for the GPU fails in its runs)
        "memory": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "batch_keys": f"train.batch_size={train['batch_size']} with data.n_train={data['n_train']}, "
        f"data.n_val={data['n_val']}",
    }
    return _problem(json.dumps(spec, sort_keys=True, default=str))


def _blamed(model: dict[str, Any], reason: str) -> str | None:
    """A model family's own error, ``"<argument>=<value>: <what is allowed>"``, as one line
    naming the key of each argument it mentions (``model.branch.kernel=5``), or None when the
    error is not of that form or its first argument is not found in one place of the config."""
    match = re.match(r"(\w+)=(.*?): (.*)$", reason)
    if match is None:
        return None
    name = match.group(1)
    nodes = [(path, node) for path, node in targets(model, "model") if name in node]
    if len(nodes) != 1:
        return None
    path, node = nodes[0]
    keyed = re.sub(r"\b(\w+)=", lambda m: f"{path}.{m.group(1)}=" if m.group(1) in node else m.group(0), reason)
    key_value, allowed = keyed.split(": ", 1)
    return f"{key_value} is not allowed: {allowed}"


def _reason(error: BaseException) -> str:
    """The first line of the innermost cause (Hydra wraps a constructor's error in its own)."""
    while error.__cause__ is not None:
        error = error.__cause__
    return first_line(error)


@functools.lru_cache(maxsize=256)
def _problem(spec_json: str) -> str | None:
    spec = json.loads(spec_json)
    label = f"model={spec['model'].get('name')} is not allowed with these model.* values"
    try:
        with torch.device("meta"), bounded_building(spec["memory"], spec["seeds_at_once"]):
            model = build_model(spec["model"])
    except Exception as error:
        return _blamed(spec["model"], _reason(error)) or f"{label}: it cannot be built ({_reason(error)})"
    if not isinstance(model, nn.Module):
        return f"{label}: model._target_ builds a {type(model).__name__}, not a model"
    try:
        optimizer = instantiate(spec["optimizer"])(model.parameters())
    except Exception as error:
        target = spec["optimizer"].get("_target_")
        return f"optimizer._target_={target!r} is not allowed with these optimizer.* values: {_reason(error)}"
    last = (
        f"{spec['batch_keys']} is not allowed for model={spec['model'].get('name')}: the last mini-batch of each "
        f"epoch has {spec['last']} pair(s), and a training step on it fails"
    )
    for n in [spec["batch"]] + ([spec["last"]] if spec["last"] and spec["last"] != spec["batch"] else []):
        try:
            _step(model, optimizer, n, spec["label_smoothing"])
        except Exception as error:
            return f"{f'{label}: a training step fails' if n == spec['batch'] else last} ({_reason(error)})"
    return None


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, n: int, label_smoothing: float) -> None:
    """One training step on ``n`` pairs of meta tensors, checking the output shapes that the
    engine relies on: [n, 2] logits, and [n, 10] digit scores for the auxiliary loss."""
    model.train()
    x = torch.empty(n, 2, 14, 14, device="meta")
    target, digits = torch.empty(n, dtype=torch.long, device="meta"), torch.empty(n, 2, dtype=torch.long, device="meta")
    outputs = model(x, return_digits=True) if aux_weight(model) > 0 else (model(x),)
    expected = [(n, N_CLASSES)] + [(n, N_DIGITS)] * (len(outputs) - 1)
    shapes = [tuple(o.shape) for o in outputs]
    if shapes != expected:
        raise ValueError(f"its outputs are {shapes} for {n} pairs, the engine needs {expected}")
    loss, _, _ = objective(model, x, target, digits, label_smoothing)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
