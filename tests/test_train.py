"""One run end to end: seeds, records, resume-skip, failures, bad input, and a model added as YAML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mnist_pairs.config.schema import TrainSettings
from mnist_pairs.models import FCNN
from mnist_pairs.results import records
from mnist_pairs.training.data import make_pairs
from mnist_pairs.training.engine import DivergedError, fit
from mnist_pairs.training.run import run
from mnist_pairs.training.seeding import generator
from tests.conftest import run_cli

SMALL = ("data.n_train=200", "data.n_test=100", "train.epochs=3", "train.batch_size=50")


def small_cfg(compose_cfg, synthetic_root, *overrides):
    return compose_cfg(f"data.root={synthetic_root}", "data.download=false", *SMALL, *overrides)


def test_a_run_writes_a_complete_record(compose_cfg, synthetic_root, tmp_path):
    record = run(small_cfg(compose_cfg, synthetic_root, "model=siamese_cnn_aux", "seed=0"), tmp_path)
    on_disk = records.read_record(tmp_path / records.RECORD_FILE)
    assert on_disk == json.loads(json.dumps(record))
    assert on_disk["status"] == "ok" and on_disk["seed"] == 0
    assert (on_disk["model"], on_disk["activation"]) == ("siamese_cnn_aux", "relu")
    assert on_disk["n_params"] == 45_568 and on_disk["config"]["model"]["aux_weight"] == 1.0
    assert all(len(v) == 3 for v in on_disk["history"].values())
    assert 0 <= on_disk["metrics"]["test_acc"] <= 1 and on_disk["train_time_s"] > 0
    assert on_disk["versions"]["torch"] == torch.__version__
    assert not list(tmp_path.glob(".record-*"))  # no temporary file left behind


def test_the_record_keeps_every_test_pair_and_its_prediction(compose_cfg, synthetic_root, tmp_path):
    cfg = small_cfg(compose_cfg, synthetic_root, "model=siamese_cnn_aux", "seed=4")
    record = run(cfg, tmp_path / "aux")
    _, test = make_pairs(str(synthetic_root), 200, 100, generator(4, "data"), download=False)
    pairs = record["test_pairs"]
    assert pairs["digits"] == "".join(str(d) for d in test.digits.reshape(-1).tolist())  # a function of the seed alone
    predicted = [int(c) for c in pairs["predicted"]]
    assert len(predicted) == 100 and set(predicted) <= {0, 1}
    assert sum(p == t for p, t in zip(predicted, test.target.tolist())) / 100 == record["metrics"]["test_acc"]
    assert 0 <= record["metrics"]["digit_acc"] <= 1  # the branch is trained on digits (aux loss)
    plain = run(small_cfg(compose_cfg, synthetic_root, "model=fcnn", "seed=4"), tmp_path / "fcnn")
    assert plain["test_pairs"]["digits"] == pairs["digits"] and "digit_acc" not in plain["metrics"]
    assert "test_pairs" not in run(
        small_cfg(compose_cfg, synthetic_root, "data.n_test=0", "train.eval_every_epoch=false"), tmp_path / "none"
    )


@pytest.mark.parametrize("model_name", ["fcnn_bn_dropout", "cnn4_bn", "siamese_resnet_aux"])
def test_the_same_seed_gives_the_same_numbers(compose_cfg, synthetic_root, tmp_path, model_name):
    cfg = small_cfg(compose_cfg, synthetic_root, f"model={model_name}", "seed=7", "train.epochs=2")
    a, b = run(cfg, tmp_path / "a"), run(cfg, tmp_path / "b")
    assert a["metrics"] == b["metrics"] and a["history"] == b["history"]
    other = run(
        small_cfg(compose_cfg, synthetic_root, f"model={model_name}", "seed=8", "train.epochs=2"), tmp_path / "c"
    )
    assert other["history"] != a["history"]


def test_training_learns_the_synthetic_task(compose_cfg, synthetic_root, tmp_path):
    record = run(
        small_cfg(compose_cfg, synthetic_root, "model=siamese_cnn_aux", "train.epochs=15", "data.scale=unit"), tmp_path
    )
    assert record["metrics"]["test_acc"] > 0.8, record["history"]


def test_fixed_slices_option_repeats_the_same_batches(synthetic_root):
    train, test = make_pairs(str(synthetic_root), 100, 20, generator(0, "data"), download=False)

    def losses(shuffle, shuffle_seed):
        torch.manual_seed(0)
        model = FCNN(torch.nn.ReLU, hidden=(16,))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        settings = TrainSettings(epochs=2, batch_size=25, shuffle=shuffle, eval_every_epoch=False)
        return fit(model, opt, train, test, settings, generator(shuffle_seed, "shuffle")).history["train_loss"]

    assert losses(False, 1) == losses(False, 2)  # the authors' fixed slices ignore the shuffle stream
    assert losses(True, 1) != losses(True, 2)


def test_divergence_raises(synthetic_root):
    train, test = make_pairs(str(synthetic_root), 100, 20, generator(0, "data"), download=False)
    torch.manual_seed(0)
    model = FCNN(torch.nn.ReLU, hidden=(16,))
    with torch.no_grad():
        model.net[1][0].weight.fill_(float("nan"))
    with pytest.raises(DivergedError, match="epoch 1"):
        fit(model, torch.optim.Adam(model.parameters()), train, test, TrainSettings(epochs=1), generator(0, "shuffle"))


def cli(tmp_path, synthetic_root, *args):
    flags = [a for a in args if a.startswith("-")]  # Hydra's flags go before the overrides
    overrides = [a for a in args if not a.startswith("-")]
    return run_cli(
        *flags, f"data.root={synthetic_root}", "data.download=false", f"output_root={tmp_path}", *SMALL, *overrides
    )


def test_cli_run_then_rerun_skips_and_force_redoes(tmp_path, synthetic_root):
    first = cli(tmp_path, synthetic_root, "model=cnn3", "activation=tanh", "seed=0")
    assert first.returncode == 0, first.stderr
    (record_path,) = (tmp_path / "runs" / "cnn3" / "tanh").glob(f"*/seed=0/{records.RECORD_FILE}")
    assert record_path.parts[-3] == ",".join(sorted(SMALL))  # the overridden keys name the variant
    assert records.read_record(record_path)["activation"] == "tanh"
    assert "epoch 3/3" in first.stdout and "done: test_acc" in first.stdout
    stamp = record_path.stat().st_mtime_ns
    again = cli(tmp_path, synthetic_root, "model=cnn3", "activation=tanh", "seed=0")
    assert "skip" in again.stdout and record_path.stat().st_mtime_ns == stamp
    forced = cli(tmp_path, synthetic_root, "model=cnn3", "activation=tanh", "seed=0", "force=true")
    assert "done: test_acc" in forced.stdout and record_path.stat().st_mtime_ns != stamp


def test_cli_multirun_and_a_model_added_as_yaml(tmp_path, synthetic_root):
    """A variant is a YAML file: a new model in a search-path config dir, no Python edit."""
    extra = tmp_path / "extra_conf" / "model"
    extra.mkdir(parents=True)
    (extra / "fcnn_tiny.yaml").write_text(
        "defaults:\n  - override /lr@_global_.lr: fcnn\nname: fcnn_tiny\n_target_: mnist_pairs.models.FCNN\n"
        "activation: ${activation.fn}\nhidden: [32, 16, 8]\ndropout: 0.1\nbatchnorm: true\n"
    )
    out = tmp_path / "out"
    done = cli(
        out,
        synthetic_root,
        "-m",
        f"hydra.searchpath=[file://{tmp_path / 'extra_conf'}]",
        "model=fcnn_tiny,cnn4",
        "activation=leakyrelu",
        "seed=0,1",
    )
    assert done.returncode == 0, done.stderr
    found = sorted(p.relative_to(out / "runs").parts for p in out.rglob(records.RECORD_FILE))
    variant = ",".join(sorted(SMALL))
    assert found == [
        (m, "leakyrelu", variant, f"seed={s}", "record.json") for m in ("cnn4", "fcnn_tiny") for s in (0, 1)
    ]
    tiny = records.read_record(out / "runs" / "fcnn_tiny" / "leakyrelu" / variant / "seed=1" / records.RECORD_FILE)
    assert tiny["status"] == "ok" and tiny["n_params"] == 392 * 32 + 32 + 32 * 16 + 16 + 16 * 8 + 8 + 8 * 2 + 2 + 2 * (
        32 + 16 + 8
    )


def test_overridden_keys_name_the_run_directory(tmp_path, synthetic_root):
    done = cli(tmp_path, synthetic_root, "model=cnn3", "optimizer.lr=0.002")
    assert done.returncode == 0, done.stderr
    variant = ",".join(sorted((*SMALL, "optimizer.lr=0.002")))
    record = records.read_record(tmp_path / "runs" / "cnn3" / "relu" / variant / "seed=0" / records.RECORD_FILE)
    assert record["variant"] == variant and record["config"]["optimizer"]["lr"] == 0.002


def test_a_model_whose_forward_fails_is_refused_before_any_run(tmp_path, synthetic_root):
    """A model YAML that builds but cannot take the pairs (100 inputs where 392 come in): the
    dry run on the meta device finds it while the sweep is validated; nothing is launched or
    written. (A crash during training is recorded: tests/test_failure_paths.py.)"""
    extra = tmp_path / "extra_conf" / "model"
    extra.mkdir(parents=True)
    (extra / "broken.yaml").write_text(
        "name: broken\n_target_: mnist_pairs.models.FCNN\nactivation: ${activation.fn}\nin_features: 100\n"
    )
    out = tmp_path / "out"
    for flags in (("-m",), ()):
        done = cli(
            out,
            synthetic_root,
            *flags,
            f"hydra.searchpath=[file://{tmp_path / 'extra_conf'}]",
            "model=broken,cnn3" if flags else "model=broken",
        )
        assert done.returncode == 1 and "Traceback" not in done.stderr
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith(
            "error: model=broken is not allowed with these model.* values: a training step fails (a and b must have "
            "same reduction dim"
        ), last
        assert not out.exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("train.epochs=0",), "error: train.epochs=0 is not allowed: an integer from 1 to 100000"),
        (("data.n_train=40000",), "error: data.n_train=40000 is not allowed: an integer from 1 to 30000"),
        (("device=cuda",), "error: device='cuda' is not allowed"),
        (("model=nope",), "Available options in 'model':"),
        (("activation=gelu",), "Available options in 'activation':"),
    ],
)
def test_bad_input_gets_one_clear_error_before_training(tmp_path, synthetic_root, args, expected):
    if args == ("device=cuda",) and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    done = cli(tmp_path, synthetic_root, *args)
    assert done.returncode != 0
    assert expected in done.stderr
    assert "Traceback" not in done.stderr and "epoch" not in done.stdout
    assert not list(Path(tmp_path).rglob(records.RECORD_FILE))


def test_missing_mnist_is_one_clear_error(tmp_path):
    done = run_cli(f"data.root={tmp_path / 'empty'}", "data.download=false", f"output_root={tmp_path}")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: MNIST not found")
    assert "MNIST_PAIRS_DATA" in done.stderr


def test_a_finished_run_of_another_config_is_kept_aside_and_redone(compose_cfg, synthetic_root, tmp_path):
    first = run(small_cfg(compose_cfg, synthetic_root, "model=cnn3"), tmp_path)
    before = (tmp_path / records.RECORD_FILE).read_bytes()
    second = run(small_cfg(compose_cfg, synthetic_root, "model=cnn3", "model.padding=1"), tmp_path)
    (kept,) = tmp_path.glob("record.superseded-*.json")
    assert kept.read_bytes() == before and kept.name == f"record.superseded-{first['config_hash']}.json"
    assert (
        records.read_record(tmp_path / records.RECORD_FILE)["config_hash"]
        == second["config_hash"]
        != first["config_hash"]
    )
