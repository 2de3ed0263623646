"""The training loop: plain PyTorch on tensors already on the device (no DataLoader: indexing a
1000-pair tensor costs far less than a DataLoader's per-epoch overhead)."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from mnist_pairs.config.schema import TrainSettings
from mnist_pairs.training.data import Pairs

EVAL_CHUNK = 2000


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


Augmenter = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
"""(images, digits) of a mini-batch -> augmented (images, target, digits); see mnist_pairs.training.augment."""


@dataclass
class FitResult:
    train_time_s: float
    history: dict[str, list[float]] = field(default_factory=lambda: {"train_loss": [], "train_acc": [], "test_acc": []})
    # with validation pairs: the epoch (1-based) of the best validation accuracy (kept by early stopping)
    best_epoch: int | None = None
    diverged: str | None = None  # fit_stacked: the DivergedError message of a seed whose loss became NaN


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that wall-clock times measure the work itself."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def aux_weight(model: nn.Module) -> float:
    """The model's auxiliary digit-loss weight (0 for models without digit outputs)."""
    return float(getattr(model, "aux_weight", 0.0))


def objective(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, digits: torch.Tensor, label_smoothing: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss to minimise, main cross-entropy, logits). The loss is
    ``CE(logits) + aux_weight * (CE(digit 1) + CE(digit 2))`` for models with digit outputs, each
    cross-entropy with ``label_smoothing``; the main cross-entropy returned for monitoring is plain."""
    w = aux_weight(model)
    smooth = {"label_smoothing": label_smoothing} if label_smoothing > 0 else {}
    if w > 0:
        logits, d1, d2 = model(x, return_digits=True)
        loss = F.cross_entropy(logits, target, **smooth)
        loss = loss + w * (F.cross_entropy(d1, digits[:, 0], **smooth) + F.cross_entropy(d2, digits[:, 1], **smooth))
    else:
        logits = model(x)
        loss = F.cross_entropy(logits, target, **smooth)
    main = F.cross_entropy(logits.detach(), target) if smooth else loss
    return loss, main, logits


@dataclass
class Scores:
    """What a final evaluation keeps: accuracy and mean cross-entropy over all pairs, and with
    ``per_pair`` the predicted class of every pair and, for models trained with the auxiliary
    digit loss, the accuracy of their digit branch on the pairs' 2n images."""

    acc: float
    loss: float
    predicted: torch.Tensor | None = None  # [n] int64, on the CPU
    digit_acc: float | None = None


@torch.no_grad()
def score(model: nn.Module, pairs: Pairs, train_mode: bool = False, per_pair: bool = False) -> Scores:
    """Scores of ``model`` on all ``pairs``, in eval mode unless ``train_mode``, in chunks of
    EVAL_CHUNK pairs."""
    was_training = model.training
    model.train(train_mode)
    digits = per_pair and aux_weight(model) > 0  # a branch trained to name the digits
    correct, loss_sum = 0, torch.zeros((), device=pairs.x.device)
    digits_right = torch.zeros((), device=pairs.x.device, dtype=torch.long)
    predicted = []
    for start in range(0, len(pairs), EVAL_CHUNK):
        x, y = pairs.x[start : start + EVAL_CHUNK], pairs.target[start : start + EVAL_CHUNK]
        if digits:
            logits, d1, d2 = model(x, return_digits=True)
            named = torch.stack([d1.argmax(1), d2.argmax(1)], dim=1)
            digits_right += (named == pairs.digits[start : start + EVAL_CHUNK]).sum()
        else:
            logits = model(x)
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        classes = logits.argmax(1)
        correct += int((classes == y).sum())
        if per_pair:
            predicted.append(classes.cpu())
    model.train(was_training)
    n = len(pairs)
    return Scores(
        acc=correct / n,
        loss=loss_sum.item() / n,
        predicted=torch.cat(predicted) if per_pair and n else (torch.zeros(0, dtype=torch.long) if per_pair else None),
        digit_acc=digits_right.item() / (2 * n) if digits and n else None,
    )


def evaluate(model: nn.Module, pairs: Pairs, train_mode: bool = False) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) over all pairs, in eval mode unless ``train_mode``."""
    scores = score(model, pairs, train_mode)
    return scores.acc, scores.loss


def step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, zero_grad: str) -> None:
    """One optimizer step. ``zero_grad='zero'`` keeps zero-filled gradients (the authors' code), so
    that Adam also moves parameters the loss does not reach, by their momentum; ``'none'`` sets
    them to None and Adam skips those parameters."""
    optimizer.zero_grad(set_to_none=zero_grad == "none")
    loss.backward()
    optimizer.step()


def batch_order(
    n: int, settings: TrainSettings, generator: torch.Generator, device: torch.device
) -> list[torch.Tensor]:
    """Index tensors of one epoch's mini-batches: a fresh permutation, or the fixed consecutive
    slices of the authors' ``input.split(batch_size)``."""
    order = torch.randperm(n, generator=generator) if settings.shuffle else torch.arange(n)
    return list(order.to(device).split(settings.batch_size))


def autocast(device: torch.device, settings: TrainSettings) -> torch.autocast:
    """bf16 autocast of the training forward passes with ``precision=bf16`` (weights, optimizer
    state and evaluation stay fp32), a no-op context otherwise."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=settings.precision == "bf16")


def test_due(settings: TrainSettings, epoch: int) -> bool | None:
    """Whether epoch ``epoch`` (1-based) ends with a test evaluation for the history: every
    ``eval_interval`` epochs and at the last; None when the history has no test accuracy at all."""
    if not settings.eval_every_epoch:
        return None
    return epoch % settings.eval_interval == 0 or epoch == settings.epochs


def append_epoch(history: dict[str, list], row: dict[str, float], test_was_due: bool | None) -> None:
    """One epoch's row into the history; None for the test accuracy of an epoch between
    ``eval_interval``s, so that the per-epoch lists stay aligned."""
    for key, value in row.items():
        history[key].append(value)
    if test_was_due is False:
        history["test_acc"].append(None)


def lr_scheduler(
    optimizer: torch.optim.Optimizer, settings: TrainSettings, steps: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """A per-step schedule over the whole run (``steps`` optimizer steps): ``cosine`` decays the
    learning rate to 0, ``onecycle`` warms up to it and anneals (its peak is ``optimizer.lr``)."""
    if settings.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    if settings.lr_schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=steps
        )
    return None


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: Pairs,
    test: Pairs,
    settings: TrainSettings,
    generator: torch.Generator,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    val: Pairs | None = None,
    augment: Augmenter | None = None,
) -> FitResult:
    """Train for ``settings.epochs``; returns the per-epoch history and the training wall time.

    The time runs from here (model and optimizer exist) to the end of the last epoch, with the
    per-epoch test evaluation paused out of it, as docs/protocol.md defines it. With ``val`` pairs,
    each epoch's validation accuracy is part of training (it is what early stopping reads):
    ``early_stop_patience`` > 0 stops after that many epochs without a better validation accuracy
    and restores the weights of the best epoch. The test pairs are never read for any decision."""
    device = train.x.device
    result = FitResult(train_time_s=0.0)
    alternating = settings.aux_schedule == "alternating_full_batch" and aux_weight(model) > 0
    scheduler = lr_scheduler(optimizer, settings, settings.epochs * math.ceil(len(train) / settings.batch_size))
    if val is not None:
        result.history["val_acc"] = []
    best_acc, best_state = -1.0, None
    model.train()
    synchronize(device)
    started = time.perf_counter()
    paused = 0.0
    for epoch in range(settings.epochs):
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        for idx in batch_order(len(train), settings, generator, device):
            if alternating:  # the authors' schedule: a digit-loss step, then a main-loss step, on the full set
                with autocast(device, settings):
                    d1, d2 = model.digit_scores(train.x)
                    digit_loss = F.cross_entropy(d1, train.digits[:, 0]) + F.cross_entropy(d2, train.digits[:, 1])
                    step(optimizer, aux_weight(model) * digit_loss, settings.zero_grad)
                    logits = model(train.x)
                    main = F.cross_entropy(logits, train.target)
                    step(optimizer, main, settings.zero_grad)
                y = train.target
            else:
                x, y, d = train.x[idx], train.target[idx], train.digits[idx]
                if augment is not None:
                    x, y, d = augment(x, d)
                with autocast(device, settings):
                    loss, main, logits = objective(model, x, y, d, settings.label_smoothing)
                step(optimizer, loss, settings.zero_grad)
            if scheduler is not None:
                scheduler.step()
            loss_sum += main.detach() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
        if settings.monitor == "train_mode_forward":
            train_acc, train_loss = evaluate(model, train, train_mode=True)
        else:
            train_acc, train_loss = correct.item() / seen, loss_sum.item() / seen
        if not math.isfinite(train_loss):
            raise DivergedError(f"training loss is {train_loss} at epoch {epoch + 1}")
        row = {"train_loss": train_loss, "train_acc": train_acc}
        if val is not None:
            row["val_acc"], _ = evaluate(model, val)
            if row["val_acc"] > best_acc:
                best_acc, result.best_epoch = row["val_acc"], epoch + 1
                if settings.early_stop_patience > 0:
                    best_state = copy.deepcopy(model.state_dict())
        due = test_due(settings, epoch + 1)
        if due:
            synchronize(device)
            pause = time.perf_counter()
            row["test_acc"], _ = evaluate(model, test)
            model.train()
            synchronize(device)
            paused += time.perf_counter() - pause
        append_epoch(result.history, row, due)
        if on_epoch is not None:
            on_epoch(epoch + 1, row)
        if settings.early_stop_patience > 0 and epoch + 1 - result.best_epoch >= settings.early_stop_patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    synchronize(device)
    result.train_time_s = time.perf_counter() - started - paused
    return result
