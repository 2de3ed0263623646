"""Vectorised seeds (device.vectorize=K): K seeds of one config trained at once match the same
seeds trained alone, stay independent, and write the same records (issue 5)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mnist_pairs.config.checks import validate
from mnist_pairs.config.schema import ConfigError
from mnist_pairs.models import build_model
from mnist_pairs.results import records
from mnist_pairs.training.batch import run_seed_batch, seed_config
from mnist_pairs.training.run import run
from mnist_pairs.training.vectorize import StackedModels
from tests.conftest import run_cli

SEEDS = [3, 4, 5]


def small(compose_cfg, synthetic_root: Path, model: str, *extra: str):
    return compose_cfg(
        f"model={model}",
        f"data.root={synthetic_root}",
        "data.download=false",
        "data.n_train=200",
        "data.n_test=100",
        "train.epochs=3",
        "train.batch_size=50",
        "device.threads=1",
        *extra,
    )


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        ("fcnn", ()),
        ("cnn3_bn", ("train.lr_schedule=cosine",)),
        ("siamese_cnn_aux", ("augment=affine_swap", "data.n_val=40")),
    ],
)
def test_seed_k_in_a_batch_matches_seed_k_alone(compose_cfg, synthetic_root, tmp_path, model, extra):
    cfg = small(compose_cfg, synthetic_root, model, "device.vectorize=3", *extra)
    batch = run_seed_batch(cfg, {s: tmp_path / "batch" / f"seed={s}" for s in SEEDS})
    for seed, together in zip(SEEDS, batch):
        alone = run(
            seed_config(small(compose_cfg, synthetic_root, model, *extra), seed), tmp_path / "alone" / f"seed={seed}"
        )
        assert together["status"] == alone["status"] == "ok"
        assert together["config_hash"] == alone["config_hash"]  # the same run: resume works across modes
        assert set(together) == set(alone) and together["seed"] == seed
        for rec in (together, alone):  # with validation pairs: the epoch of the best validation accuracy
            if "val_acc" in rec["history"]:
                val = rec["history"]["val_acc"]
                assert rec["best_epoch"] == val.index(max(val)) + 1
        for key, values in alone["history"].items():
            assert together["history"][key] == pytest.approx(values, abs=1e-4 if "loss" in key else 0.011), key
        for key in ("train_loss", "test_loss", "val_loss"):
            if key in alone["metrics"]:
                assert together["metrics"][key] == pytest.approx(alone["metrics"][key], abs=1e-4), key
        for key in ("train_acc", "test_acc", "val_acc"):
            if key in alone["metrics"]:  # eval mode: BatchNorm's running statistics, seed by seed
                assert abs(together["metrics"][key] - alone["metrics"][key]) <= 0.011, (
                    key
                )  # at most one borderline pair
        assert together["test_pairs"]["digits"] == alone["test_pairs"]["digits"]  # the same test pairs
        differing = sum(a != b for a, b in zip(together["test_pairs"]["predicted"], alone["test_pairs"]["predicted"]))
        assert differing <= 1  # at most the one borderline pair
    assert len({r["metrics"]["test_loss"] for r in batch}) == 3  # three different seeds, not one


def test_each_seed_draws_its_own_dropout_masks(compose_cfg):
    cfg = compose_cfg("model=fcnn_dropout")
    torch.manual_seed(0)
    twin = build_model(cfg.model)
    x = (torch.rand(1, 32, 2, 14, 14) * 255).expand(2, -1, -1, -1, -1)
    y, d = torch.zeros(2, 32, dtype=torch.long), torch.zeros(2, 32, 2, dtype=torch.long)
    dropped = StackedModels([twin, twin])  # identical weights and data: only the masks can differ
    loss, _, _ = dropped.losses(x, y, d, 0.0)
    assert loss[0] != loss[1]
    dropped.train(False)
    loss, _, _ = dropped.losses(x, y, d, 0.0)
    assert loss[0].item() == pytest.approx(loss[1].item())


@pytest.mark.parametrize(
    "override",
    ["train.early_stop_patience=3", "train.aux_schedule=alternating_full_batch", "train.monitor=train_mode_forward"],
)
def test_what_vectorize_does_not_support_is_refused(compose_cfg, override):
    with pytest.raises(ConfigError, match="device.vectorize > 1"):
        validate(compose_cfg("model=siamese_cnn_aux", "device.vectorize=2", "data.n_val=100", override))
    with pytest.raises(ConfigError, match="device.vectorize=0"):
        validate(compose_cfg("device.vectorize=0"))


def test_the_sweeper_packs_seeds_and_a_plain_sweep_then_skips_them(tmp_path, synthetic_root):
    args = [
        "-m",
        "model=cnn3",
        "seed=0,1,2,3,4",
        f"data.root={synthetic_root}",
        "data.download=false",
        f"output_root={tmp_path}",
        "data.n_train=100",
        "data.n_test=50",
        "train.epochs=2",
    ]
    packed = run_cli(*args, "device.vectorize=2")
    assert packed.returncode == 0, packed.stderr
    assert "5 runs in 3 jobs" in packed.stdout and "sweep 5/5 (5 ok" in packed.stdout
    found = sorted(tmp_path.rglob(records.RECORD_FILE))
    assert [p.parent.name for p in found] == [f"seed={s}" for s in range(5)]
    plain = run_cli(*args)
    assert plain.returncode == 0, plain.stderr
    assert "5 already done" in plain.stdout


def test_seeds_per_job_runs_seeds_in_turn_with_the_results_of_one_job_each(tmp_path, synthetic_root):
    """device.seeds_per_job=K (vectorize 1): K seeds one after another in one job, one config
    composition for all; the records equal those of one job per seed, and resume across modes.
    Early stopping, refused when seeds train at once, works here."""
    args = [
        "-m",
        "model=cnn3",
        "seed=0,1,2,3,4",
        f"data.root={synthetic_root}",
        "data.download=false",
        "data.n_train=100",
        "data.n_test=50",
        "train.epochs=3",
        "data.n_val=20",
        "train.early_stop_patience=1",
    ]
    packed = run_cli(*args, f"output_root={tmp_path / 'packed'}", "device.seeds_per_job=2")
    assert packed.returncode == 0, packed.stderr
    assert "5 runs in 3 jobs" in packed.stdout and "sweep 5/5 (5 ok" in packed.stdout
    alone = run_cli(*args, f"output_root={tmp_path / 'alone'}")
    assert alone.returncode == 0, alone.stderr

    def results(root: Path) -> dict[str, tuple]:
        recs = {p.parent.name: records.read_record(p) for p in root.rglob(records.RECORD_FILE)}
        return {seed: (r["config_hash"], r["metrics"], r["history"], r["best_epoch"]) for seed, r in recs.items()}

    assert sorted(results(tmp_path / "packed")) == [f"seed={s}" for s in range(5)]
    assert results(tmp_path / "packed") == results(tmp_path / "alone")
    again = run_cli(*args, f"output_root={tmp_path / 'packed'}")
    assert again.returncode == 0, again.stderr
    assert "5 already done" in again.stdout
