"""Vectorised seeds (``device.vectorize=K``): K runs of one config, which differ only in their seed,
trained as one. Their parameters and buffers are stacked on a leading seed axis
(``torch.func.stack_module_state``) and every step is one ``vmap``-ed call, so a GPU runs K seeds
per kernel launch instead of one.

Each seed keeps its own pairs, shuffling, augmentation and initialisation (the same streams as a
run alone), its own BatchNorm statistics (stacked buffers) and its own dropout masks
(``randomness="different"``). One Adam (or SGD) over the stacked parameters is exactly K optimizers:
their updates are elementwise. The loss minimised is the sum of the K losses, whose gradient with
respect to seed k's parameters is seed k's own gradient.

Against a run alone: equal within fp32 rounding for models that draw no random numbers in training;
with dropout the masks come from one generator for all seeds, so they differ from the run alone
(independent per seed all the same). Not supported (refused by mnist_pairs.config.validate):
early stopping, the authors' alternating auxiliary schedule and train-mode monitoring."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from mnist_pairs.config.schema import TrainSettings
from mnist_pairs.training.data import Pairs
from mnist_pairs.training.engine import (
    Augmenter,
    FitResult,
    append_epoch,
    autocast,
    aux_weight,
    batch_order,
    evaluate,
    lr_scheduler,
    objective,
    step,
    synchronize,
    test_due,
)


class StackedModels:
    """K models of one architecture as one set of stacked parameters and buffers."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        self.models = list(models)
        self.params, self.buffers = stack_module_state(self.models)
        self.base = copy.deepcopy(self.models[0]).to("meta")  # the architecture, without storage
        self.aux_weight = aux_weight(self.models[0])

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params.values())

    def train(self, mode: bool = True) -> None:
        self.base.train(mode)

    def losses(
        self, x: torch.Tensor, target: torch.Tensor, digits: torch.Tensor, label_smoothing: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per seed: (loss to minimise [K], main cross-entropy [K], logits [K, B, 2]): engine.objective,
        seed by seed."""

        def one(params, buffers, x, target, digits):
            return objective(_Bound(self.base, params, buffers, self.aux_weight), x, target, digits, label_smoothing)

        return vmap(one, randomness="different")(self.params, self.buffers, x, target, digits)

    @torch.no_grad()
    def unstack(self, k: int) -> nn.Module:
        """Seed k's model, its parameters and buffers copied out of the stack (for evaluation)."""
        model = self.models[k]
        for name, value in self.params.items():
            model.get_parameter(name).copy_(value[k])
        for name, value in self.buffers.items():
            model.get_buffer(name).copy_(value[k])
        return model


@dataclass
class _Bound:
    """The stack's architecture called with one seed's parameters and buffers, as engine.objective
    calls a model (``aux_weight`` included)."""

    base: nn.Module
    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    aux_weight: float

    def __call__(self, x: torch.Tensor, return_digits: bool = False):
        kwargs = {"return_digits": True} if return_digits else {}
        return functional_call(self.base, (self.params, self.buffers), (x,), kwargs)


def fit_stacked(
    stacked: StackedModels,
    optimizer: torch.optim.Optimizer,
    trains: Sequence[Pairs],
    tests: Sequence[Pairs],
    settings: TrainSettings,
    generators: Sequence[torch.Generator],
    on_epoch: Callable[[int, int, dict[str, float]], None] | None = None,
    vals: Sequence[Pairs | None] | None = None,
    augment: Sequence[Augmenter | None] | None = None,
) -> list[FitResult]:
    """engine.fit for K seeds at once. Each seed's training time is the whole time divided by K
    (what one run costs when K run together); per-epoch evaluation is paused out of it. A seed
    whose loss becomes NaN stops training with its ``diverged`` message, the others go on."""
    k_seeds = len(trains)
    device = trains[0].x.device
    vals = list(vals) if vals is not None else [None] * k_seeds
    augment = list(augment) if augment is not None else [None] * k_seeds
    results = [FitResult(train_time_s=0.0) for _ in range(k_seeds)]
    for r, val in zip(results, vals):
        if val is not None:
            r.history["val_acc"] = []
    scheduler = lr_scheduler(optimizer, settings, settings.epochs * math.ceil(len(trains[0]) / settings.batch_size))
    # the seeds' training pairs on a seed axis (the seeds share one config, so one size): one gather
    # per tensor builds a step's [K, B, ...] mini-batch (3 kernels instead of 3K + 3 on a GPU)
    xs, ys, ds = (torch.stack([getattr(p, name) for p in trains]) for name in ("x", "target", "digits"))
    seeds = torch.arange(k_seeds, device=xs.device)[:, None]
    stacked.train()
    synchronize(device)
    started, paused = time.perf_counter(), 0.0
    for epoch in range(settings.epochs):
        loss_sum = torch.zeros(k_seeds, device=device)
        correct = torch.zeros(k_seeds, device=device, dtype=torch.long)
        seen = 0
        orders = [batch_order(len(t), settings, g, device) for t, g in zip(trains, generators)]
        for batch in zip(*orders):
            idx = torch.stack(list(batch))
            x, y, d = xs[seeds, idx], ys[seeds, idx], ds[seeds, idx]
            if any(aug is not None for aug in augment):  # each seed augments its own slice, from its own stream
                parts = [aug(x[k], d[k]) if aug is not None else (x[k], y[k], d[k]) for k, aug in enumerate(augment)]
                x, y, d = (torch.stack(part) for part in zip(*parts))
            with autocast(device, settings):
                loss, main, logits = stacked.losses(x, y, d, settings.label_smoothing)
            step(optimizer, loss.sum(), settings.zero_grad)
            if scheduler is not None:
                scheduler.step()
            loss_sum += main.detach() * y.shape[1]
            correct += (logits.detach().argmax(-1) == y).sum(1)
            seen += y.shape[1]
        for k, r in enumerate(results):
            if r.diverged:
                continue
            train_loss = loss_sum[k].item() / seen
            if not math.isfinite(train_loss):
                r.diverged = f"training loss is {train_loss} at epoch {epoch + 1}"
                continue
            row = {"train_loss": train_loss, "train_acc": correct[k].item() / seen}
            due = test_due(settings, epoch + 1)
            if vals[k] is not None or due:
                model = stacked.unstack(k)
                if vals[k] is not None:
                    row["val_acc"], _ = evaluate(model, vals[k])  # part of training, as in engine.fit
                    if row["val_acc"] > max(r.history["val_acc"], default=-1.0):
                        r.best_epoch = epoch + 1
                if due:
                    synchronize(device)
                    pause = time.perf_counter()
                    row["test_acc"], _ = evaluate(model, tests[k])
                    synchronize(device)
                    paused += time.perf_counter() - pause
            append_epoch(r.history, row, due)
            if on_epoch is not None:
                on_epoch(k, epoch + 1, row)
    synchronize(device)
    per_seed = (time.perf_counter() - started - paused) / k_seeds
    for k, r in enumerate(results):
        r.train_time_s = per_seed
        stacked.unstack(k)
    return results
