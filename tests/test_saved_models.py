"""train.save_model and mnist_pairs.results.runs / mnist_pairs.evaluate: the weights beside the record
rebuild the model that made the record's predictions (the best epoch's with early stopping), a
vectorised batch saves each seed's own weights, and the evaluate CLI scores them on any pairs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mnist_pairs.evaluate import main as evaluate_main
from mnist_pairs.results import records
from mnist_pairs.results.runs import WEIGHTS_FILE, RunLoadError, load_run
from mnist_pairs.training.batch import run_seed_batch, seed_config
from mnist_pairs.training.engine import evaluate, score
from mnist_pairs.training.run import load_pairs, run
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
        "train.save_model=true",
        *extra,
    )


def predictions(loaded, seed: int | None = None) -> str:
    """The loaded model's predicted class of each test pair of ``seed`` (default: the run's), as
    the record encodes them."""
    cfg = loaded.config.copy()
    if seed is not None:
        cfg.seed = seed
    *_, test = load_pairs(cfg, torch.device("cpu"))
    return "".join(map(str, score(loaded.model, loaded.input(test), per_pair=True).predicted.tolist()))


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        ("siamese_cnn_aux", ()),  # channels_last (auto), aux digit branch
        ("cnn3_bn", ("data.n_val=40", "train.epochs=8", "train.early_stop_patience=2", "optimizer.lr=0.01", "seed=3")),
    ],  # early stopping
)
def test_the_saved_weights_make_the_records_predictions(compose_cfg, synthetic_root, tmp_path, model, extra):
    record = run(small(compose_cfg, synthetic_root, model, *extra), tmp_path)
    assert record["weights"] == WEIGHTS_FILE and (tmp_path / WEIGHTS_FILE).is_file()
    assert records.read_record(tmp_path / records.RECORD_FILE)["weights"] == WEIGHTS_FILE
    assert not list(tmp_path.glob(".model-*"))  # written atomically, nothing left behind
    loaded = load_run(tmp_path)
    assert not loaded.model.training
    assert predictions(loaded) == record["test_pairs"]["predicted"]
    if "val_acc" in record["history"]:  # early stopping kept (and saved) the best epoch, not the last
        val_history = record["history"]["val_acc"]
        assert record["best_epoch"] < len(val_history), "this seed should stop after a worse epoch"
        _, val, _ = load_pairs(loaded.config, torch.device("cpu"))
        assert (
            evaluate(loaded.model, loaded.input(val))[0]
            == record["metrics"]["val_acc"]
            == val_history[record["best_epoch"] - 1]
        )


def test_without_save_model_no_weights_and_the_loader_says_why(compose_cfg, synthetic_root, tmp_path):
    saved = run(small(compose_cfg, synthetic_root, "cnn3"), tmp_path / "saved")
    plain = run(small(compose_cfg, synthetic_root, "cnn3", "train.save_model=false"), tmp_path / "plain")
    assert saved["config_hash"] == plain["config_hash"]  # keeping the weights is no part of a run's identity
    assert "weights" not in plain and not (tmp_path / "plain" / WEIGHTS_FILE).exists()
    with pytest.raises(RunLoadError, match="saved no weights"):
        load_run(tmp_path / "plain")
    # the weights file of another run (the folder's run redone with another config) is refused
    other = run(small(compose_cfg, synthetic_root, "cnn3", "seed=9"), tmp_path / "other")
    records.write_record(tmp_path / "other", {**other, "weights": "../saved/model.pt"})
    with pytest.raises(RunLoadError, match="weights of another run"):
        load_run(tmp_path / "other")
    with pytest.raises(RunLoadError, match="no record.json"):
        load_run(tmp_path / "nowhere")


def test_a_weights_file_naming_a_hostile_target_is_refused_before_anything_is_built(
    compose_cfg, synthetic_root, tmp_path
):
    run(small(compose_cfg, synthetic_root, "cnn3"), tmp_path)
    payload = torch.load(tmp_path / WEIGHTS_FILE, weights_only=True)
    target = tmp_path / "written-by-the-weights-file"
    payload["model"] = {"_target_": "torch.nn.functional.torch.save", "_args_": [{"a": 1}, str(target)]}
    torch.save(payload, tmp_path / WEIGHTS_FILE)
    with pytest.raises(RunLoadError, match="torch.nn.functional.torch.save"):
        load_run(tmp_path)
    # an interpolation that Hydra's instantiate would resolve into a hostile target
    payload["model"] = {
        "_target_": "mnist_pairs.models.FCNN",
        "activation": {"_target_": "torch.nn.ReLU", "_partial_": True},
        "hidden": ["${oc.create:{_target_: torch.save, _args_: [1, '" + str(target) + "']}}"],
    }
    torch.save(payload, tmp_path / WEIGHTS_FILE)
    with pytest.raises(RunLoadError, match="a value without"):
        load_run(tmp_path)
    assert not target.exists()


@pytest.mark.parametrize("model", ["cnn3", "cnn3_bn"])
def test_a_vectorised_batch_saves_each_seeds_weights_as_a_run_alone(compose_cfg, synthetic_root, tmp_path, model):
    """Seed k's weights from a batch trained at once predict what its record says, and what seed
    k's weights trained alone predict, within the tolerance of tests/test_vectorize.py (test loss
    1e-4, at most one borderline pair). The weights themselves agree within fp32 rounding carried
    through the steps (5e-5; the largest difference is 9e-6 on an AMD EPYC CPU, where vmap's
    kernels round otherwise than the plain ones) where every parameter has a gradient (cnn3); a
    bias followed by BatchNorm has none but rounding noise, which Adam scales to full steps, so it
    drifts (up to 4e-3 here) without changing outputs."""
    batch = run_seed_batch(
        small(compose_cfg, synthetic_root, model, "device.vectorize=3"),
        {s: tmp_path / "batch" / f"seed={s}" for s in SEEDS},
    )
    assert [r["status"] for r in batch] == ["ok"] * 3
    first_layers = []
    for seed, together in zip(SEEDS, batch):
        alone = run(seed_config(small(compose_cfg, synthetic_root, model), seed), tmp_path / "alone" / f"seed={seed}")
        a, b = load_run(tmp_path / "batch" / f"seed={seed}"), load_run(tmp_path / "alone" / f"seed={seed}")
        assert together["config_hash"] == alone["config_hash"]
        assert (
            predictions(a) == together["test_pairs"]["predicted"] and predictions(b) == alone["test_pairs"]["predicted"]
        )
        *_, test = load_pairs(a.config, torch.device("cpu"))
        assert score(a.model, a.input(test)).loss == pytest.approx(alone["metrics"]["test_loss"], abs=1e-4)
        assert sum(x != y for x, y in zip(predictions(a), alone["test_pairs"]["predicted"])) <= 1
        sa, sb = a.model.state_dict(), b.model.state_dict()
        assert sa.keys() == sb.keys()
        if model == "cnn3":
            for key in sa:
                torch.testing.assert_close(
                    sa[key], sb[key], atol=5e-5, rtol=0, msg=lambda detail, key=key: f"{key}: {detail}"
                )
        first_layers.append(sa["net.0.0.weight"])
    assert not torch.equal(first_layers[0], first_layers[1])  # each seed its own weights


def test_evaluate_scores_a_saved_run_on_its_own_and_on_fresh_pairs(compose_cfg, synthetic_root, tmp_path, capsys):
    record = run(small(compose_cfg, synthetic_root, "siamese_cnn_aux"), tmp_path)
    data = f"data.root={synthetic_root}"
    own = run_cli(str(tmp_path), data, module="mnist_pairs.evaluate")
    assert own.returncode == 0, own.stderr
    digits = [int(d) for d in record["test_pairs"]["digits"]]
    target = [int(digits[2 * i] <= digits[2 * i + 1]) for i in range(100)]
    predicted = [int(c) for c in record["test_pairs"]["predicted"]]
    counts = [[sum(t == i and p == j for t, p in zip(target, predicted)) for j in (0, 1)] for i in (0, 1)]
    acc = record["metrics"]["test_acc"]
    assert own.stdout.splitlines() == [
        f"siamese_cnn_aux/relu seed=0 ({tmp_path}): record test_acc {acc:.4f} on its 100 test pairs",
        f"100 test pairs of seed 0 (the run's own): accuracy {acc:.4f} ({counts[0][0] + counts[1][1]}/100)",
        "confusion (rows: true class, columns: predicted 0, 1; class 1: first digit <= second)",
        f"  true 0: {counts[0][0]:6d} {counts[0][1]:6d}",
        f"  true 1: {counts[1][0]:6d} {counts[1][1]:6d}",
    ]
    evaluate_main([str(tmp_path), data, "seed=7", "data.n_test=120"])  # the same command, in this process
    fresh = capsys.readouterr().out.splitlines()
    loaded = load_run(tmp_path)
    cfg = loaded.config.copy()
    cfg.seed, cfg.data.n_test = 7, 120
    *_, test = load_pairs(cfg, torch.device("cpu"))
    expected = score(loaded.model, loaded.input(test)).acc
    assert fresh[1] == f"120 test pairs of seed 7: accuracy {expected:.4f} ({round(expected * 120)}/120)"

    for bad, message in [
        (("optimizer.lr=0.1",), "optimizer.lr='0.1' is not allowed: an override key=value of one of seed, data.n_test"),
        (("data.n_test=0",), "data.n_test=0 is not allowed"),
        (("seed=-2",), "seed=-2 is not allowed"),
    ]:
        with pytest.raises(SystemExit) as refused:
            evaluate_main([str(tmp_path), data, *bad])
        assert str(refused.value.code).startswith(f"error: {message}")
    with pytest.raises(SystemExit, match="no record.json"):
        evaluate_main([str(tmp_path / "nowhere")])


def test_a_run_of_another_config_sets_the_old_weights_aside_with_their_record(compose_cfg, synthetic_root, tmp_path):
    old = run(small(compose_cfg, synthetic_root, "cnn3"), tmp_path)
    saved = (tmp_path / WEIGHTS_FILE).read_bytes()
    run(small(compose_cfg, synthetic_root, "cnn3", "train.epochs=2"), tmp_path)  # another config, same folder
    aside = records.read_record(tmp_path / f"record.superseded-{old['config_hash']}.json")
    assert aside["weights"] == f"model.superseded-{old['config_hash']}.pt"
    assert (tmp_path / aside["weights"]).read_bytes() == saved  # not overwritten by the new run's weights
    assert load_run(tmp_path).record["config_hash"] != old["config_hash"]
