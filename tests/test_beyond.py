"""Beyond the report: augmentation, the validation split, early stopping, schedules, and tuning that
cannot see the test pairs (issue 6)."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from mnist_pairs import tune
from mnist_pairs.config import compose_config
from mnist_pairs.config.schema import AugmentSettings, TrainSettings
from mnist_pairs.results import records
from mnist_pairs.training.augment import augment
from mnist_pairs.training.data import Pairs, split_validation
from mnist_pairs.training.engine import lr_scheduler
from mnist_pairs.training.run import run
from mnist_pairs.training.seeding import generator
from mnist_pairs.tune import tuning_objective
from tests.conftest import run_cli


def batch(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.zeros(n, 2, 14, 14)
    x[:, :, 5:9, 6:8] = 255.0  # a bar in the middle of every image
    digits = torch.randint(0, 10, (n, 2), generator=g)
    digits[:8, 1] = digits[:8, 0]  # some equal pairs
    return x, digits


def test_swap_flips_the_target_and_keeps_equal_digits_at_class_1():
    x, digits = batch()
    x = x * torch.arange(1, 3).view(1, 2, 1, 1)  # tell the two images apart
    out, target, new_digits = augment(x, digits, AugmentSettings(swap=True), generator(0, "augment"))
    swapped = out[:, 0].amax(dim=(1, 2)) == 510.0  # image 2 now first
    assert 0 < swapped.sum() < len(x)
    assert torch.equal(new_digits[swapped], digits[swapped].flip(1)) and torch.equal(
        new_digits[~swapped], digits[~swapped]
    )
    assert torch.equal(out[swapped], x[swapped].flip(1)) and torch.equal(out[~swapped], x[~swapped])
    assert torch.equal(target, (new_digits[:, 0] <= new_digits[:, 1]).long())
    equal = digits[:, 0] == digits[:, 1]
    assert (target[equal] == 1).all()


def test_affine_moves_each_image_reproducibly_per_seed():
    x, digits = batch()
    settings = AugmentSettings(rotate_deg=10, translate_px=1)
    a, ta, _ = augment(x, digits, settings, generator(0, "augment"))
    b, _, _ = augment(x, digits, settings, generator(0, "augment"))
    c, _, _ = augment(x, digits, settings, generator(1, "augment"))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a[:, 0], a[:, 1])  # each image its own move
    assert torch.equal(ta, (digits[:, 0] <= digits[:, 1]).long())
    assert (a - x).abs().max() > 0 and a.min() >= 0 and a.max() <= 255 + 1e-3
    still, _, _ = augment(x, digits, AugmentSettings(), generator(0, "augment"))
    assert torch.equal(still, x)


def test_the_validation_split_is_carved_out_of_the_training_pairs():
    x, digits = batch(100)
    pairs = Pairs(x, (digits[:, 0] <= digits[:, 1]).long(), digits)
    train, val = split_validation(pairs, 30)
    assert len(train) == 70 and len(val) == 30
    assert torch.equal(torch.cat([train.digits, val.digits]), pairs.digits)
    assert split_validation(pairs, 0) == (pairs, None)


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_lr_schedules_span_the_whole_run(schedule):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=0.01)
    scheduler = lr_scheduler(opt, TrainSettings(lr_schedule=schedule), steps=40)
    lrs = []
    for _ in range(40):
        opt.step()
        scheduler.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert max(lrs) <= 0.01 + 1e-12 and lrs[-1] < 1e-4
    assert lr_scheduler(opt, TrainSettings(), steps=40) is None


def tuned_cfg(compose_cfg, *extra: str):
    return compose_cfg(
        "model=siamese_cnn_aux",
        "data.n_train=200",
        "data.n_val=60",
        "train.epochs=20",
        "train.batch_size=50",
        "train.early_stop_patience=1",
        "train.label_smoothing=0.1",
        "train.lr_schedule=cosine",
        "augment=affine_swap",
        "optimizer.weight_decay=1e-4",
        "optimizer.lr=0.02",
        *extra,
    )


def test_the_test_pairs_cannot_reach_model_selection(compose_cfg, synthetic_root, tmp_path):
    """Early stopping and the tuning objective read validation pairs only: other test pairs (more
    of them, drawn after the training pairs) leave every choice and the objective unchanged."""
    common = (f"data.root={synthetic_root}", "data.download=false")
    a = run(tuned_cfg(compose_cfg, *common, "data.n_test=50"), tmp_path / "a")
    b = run(tuned_cfg(compose_cfg, *common, "data.n_test=150"), tmp_path / "b")
    assert a["status"] == b["status"] == "ok"
    assert a["history"]["val_acc"] == b["history"]["val_acc"] and a["best_epoch"] == b["best_epoch"]
    assert len(a["history"]["train_loss"]) < 20  # early stopping did stop
    assert tuning_objective(a) == tuning_objective(b) == a["metrics"]["val_acc"]
    assert a["history"]["test_acc"] != b["history"]["test_acc"]  # the test pairs did differ
    # the objective reads nothing but validation metrics
    tampered = {**a, "metrics": {**a["metrics"], "test_acc": 1.0, "test_loss": 0.0}, "history": None}
    assert tuning_objective(tampered) == tuning_objective(a)
    assert (
        tuning_objective({**a, "metrics": {k: v for k, v in a["metrics"].items() if not k.startswith("val")}}) is None
    )


def test_early_stopping_keeps_the_best_epoch(compose_cfg, synthetic_root, tmp_path):
    rec = run(tuned_cfg(compose_cfg, f"data.root={synthetic_root}", "data.download=false", "data.n_test=50"), tmp_path)
    history = rec["history"]
    best = rec["best_epoch"]
    assert history["val_acc"][best - 1] == max(history["val_acc"])
    assert len(history["val_acc"]) - best == 1  # stopped after 1 epoch without improvement
    assert rec["metrics"]["val_acc"] == pytest.approx(history["val_acc"][best - 1])  # the best weights were restored


def test_optuna_tunes_on_validation_and_the_tuned_yaml_reproduces_the_best_run(tmp_path, synthetic_root):
    done = run_cli(
        "-m",
        "experiment=tune",
        "model=siamese_lenet_mlp",
        f"data.root={synthetic_root}",
        "data.download=false",
        f"output_root={tmp_path}",
        "data.n_train=150",
        "data.n_val=50",
        "train.epochs=2",
        "hydra.sweeper.n_trials=3",
        "hydra.launcher.n_jobs=1",
    )
    assert done.returncode == 0, done.stderr
    sweep = tmp_path / "tune" / "siamese_lenet_mlp-none"
    found = [records.read_record(p) for p in sweep.rglob(records.RECORD_FILE)]
    assert len(found) == 9 and all("val_acc" in r["metrics"] for r in found)  # 3 trials x seeds 0-2
    assert not any(k.startswith("test") for r in found for k in r["metrics"])  # no test pair was even drawn
    assert "test_acc" not in done.stdout + done.stderr
    trials: dict[float, list[float]] = {}
    for r in found:
        trials.setdefault(r["config"]["optimizer"]["lr"], []).append(r["metrics"]["val_acc"])
    assert len(trials) == 3 and all(len(v) == 3 for v in trials.values())
    best_value = OmegaConf.load(sweep / "optimization_results.yaml").best_value
    assert best_value == pytest.approx(max(sum(v) / 3 for v in trials.values()))  # each trial: the mean over its seeds

    path = tune.export(sweep, "mine", out_dir=tmp_path / "conf" / "tuned")
    _, best, objective, n_seeds = tune.best_run(sweep)
    assert (objective, n_seeds) == (pytest.approx(best_value), 3)
    assert "mean over 3 seeds" in path.read_text()
    cfg = compose_config("model=siamese_lenet_mlp", "tuned=mine", f"hydra.searchpath=[file://{tmp_path / 'conf'}]")
    assert path.read_text().startswith("# @package _global_")
    assert (
        cfg.optimizer.lr == best["config"]["optimizer"]["lr"]
        and cfg.model.aux_weight == best["config"]["model"]["aux_weight"]
    )
    assert cfg.data.n_val == 0  # no early stopping: the tuned config trains on all training pairs
    # every key that decides the run is the best trial's, the validation split excepted
    ours = tune.flatten(OmegaConf.to_container(cfg, resolve=True))
    theirs = {**tune.flatten(best["config"]), "data.n_val": 0}
    assert {k: v for k, v in ours.items() if not tune.not_tuned(k)} == {
        k: v for k, v in theirs.items() if not tune.not_tuned(k)
    }
