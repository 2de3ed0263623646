"""Failure paths: a diverging run (its record, resume, the count), one vectorised seed diverging
while its batch goes on, a batch in which some seeds are already finished, a killed vectorised
batch, bf16, a run that crashes (recorded; the sweep names it and exits non-zero), force=true over
another config's record, and torch's thread count after a run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from mnist_pairs.config.schema import ConfigError
from mnist_pairs.results import records
from mnist_pairs.training.batch import run_seed_batch, seed_config
from mnist_pairs.training.run import run
from tests.conftest import run_cli, start_cli, training_crashes

SMALL = ("data.n_train=100", "data.n_test=50", "train.batch_size=50", "device.threads=1")
# On the synthetic data, seeds 0 and 1 of this config diverge (NaN loss) at epoch 3, seed 2 does not.
DIVERGES = ("model=fcnn", "optimizer=sgd", "optimizer.lr=10", "train.epochs=3")


def small(compose_cfg, synthetic_root: Path, *overrides: str):
    return compose_cfg(f"data.root={synthetic_root}", "data.download=false", *SMALL, *overrides)


def sweep(out: Path, synthetic_root: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli("-m", f"data.root={synthetic_root}", "data.download=false", f"output_root={out}", *SMALL, *args)


def by_seed(out: Path) -> dict[int, records.RunRecord]:
    return {r["seed"]: r for r in (records.read_record(p) for p in out.rglob(records.RECORD_FILE) if p.is_file())}


def test_a_diverging_run_is_a_finished_result_counted_as_diverged(tmp_path, synthetic_root):
    done = sweep(tmp_path, synthetic_root, *DIVERGES, "seed=1,2")
    assert done.returncode == 0, done.stderr  # a NaN loss is a result, not a failure
    assert "sweep 2/2 (1 ok, 0 failed, 1 diverged, 0 already done)" in done.stdout
    recs = by_seed(tmp_path)
    assert (
        recs[1]["status"] == "diverged"
        and recs[1]["error"] == "training loss is nan at epoch 3"
        and recs[1]["metrics"] is None
    )
    assert recs[2]["status"] == "ok"
    assert Counter(r["status"] for r in recs.values()) == {
        "ok": 1,
        "diverged": 1,
    }  # what aggregation's n_diverged counts
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob(records.RECORD_FILE)}
    again = sweep(tmp_path, synthetic_root, *DIVERGES, "seed=1,2")
    assert (
        again.returncode == 0 and "2 already done" in again.stdout
    )  # resume: the diverged run is finished, not redone
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob(records.RECORD_FILE)} == stamps


def test_one_vectorised_seed_diverging_leaves_its_batch_training(compose_cfg, synthetic_root, tmp_path):
    batch = run_seed_batch(
        small(compose_cfg, synthetic_root, *DIVERGES, "device.vectorize=2"), {s: tmp_path / f"seed={s}" for s in (1, 2)}
    )
    assert [r["status"] for r in batch] == ["diverged", "ok"]
    assert batch[0]["error"] == "training loss is nan at epoch 3" and batch[0]["metrics"] is None
    alone = run(seed_config(small(compose_cfg, synthetic_root, *DIVERGES), 2), tmp_path / "alone" / "seed=2")
    assert len(batch[1]["history"]["train_loss"]) == 3
    assert batch[1]["history"]["train_loss"] == pytest.approx(
        alone["history"]["train_loss"], rel=1e-4
    )  # untouched by its neighbour's NaN
    assert batch[1]["metrics"]["test_acc"] == pytest.approx(alone["metrics"]["test_acc"], abs=0.021)


def test_a_batch_with_finished_seeds_trains_only_the_others(compose_cfg, synthetic_root, tmp_path):
    dirs = {s: tmp_path / f"seed={s}" for s in (3, 4, 5)}
    first = run(seed_config(small(compose_cfg, synthetic_root, "model=cnn3", "train.epochs=2"), 3), dirs[3])
    stamp = (dirs[3] / records.RECORD_FILE).stat().st_mtime_ns
    batch_cfg = small(compose_cfg, synthetic_root, "model=cnn3", "train.epochs=2", "device.vectorize=3")
    batch = run_seed_batch(batch_cfg, dirs)
    assert batch[0] == first and (dirs[3] / records.RECORD_FILE).stat().st_mtime_ns == stamp  # skipped, untouched
    assert [r["status"] for r in batch] == ["ok"] * 3 and [r["seed"] for r in batch] == [3, 4, 5]
    started = {s: json.loads((d / records.STARTED_FILE).read_text())["seeds"] for s, d in dirs.items()}
    assert started == {3: [3], 4: [4, 5], 5: [4, 5]}  # 4 and 5 trained at once, 3 alone before
    (dirs[5] / records.RECORD_FILE).unlink()  # two of three finished: the one left runs alone
    again = run_seed_batch(batch_cfg, dirs)
    assert again[:2] == batch[:2] and json.loads((dirs[5] / records.STARTED_FILE).read_text())["seeds"] == [5]
    assert again[2]["history"]["train_loss"] == pytest.approx(batch[2]["history"]["train_loss"], abs=1e-4)


def test_a_killed_vectorised_batch_leaves_every_seed_folder_marked_as_started(tmp_path, synthetic_root):
    """Hydra's .hydra/ is in the first seed's folder only; started.json is in each, so a killed
    batch's seeds are all seen as started and unfinished (and redone on resume)."""
    args = [
        "-m",
        f"data.root={synthetic_root}",
        "data.download=false",
        f"output_root={tmp_path}",
        *SMALL,
        "model=fcnn",
        "seed=0,1,2",
        "device.vectorize=3",
        "train.epochs=20000",
    ]
    proc = start_cli(*args, output=subprocess.DEVNULL, errors=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list(tmp_path.rglob(records.STARTED_FILE))) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    folders = sorted(p.parent for p in tmp_path.rglob(records.STARTED_FILE))
    assert [f.name for f in folders] == ["seed=0", "seed=1", "seed=2"]
    assert [(f / ".hydra").is_dir() for f in folders] == [True, False, False]
    for folder in folders:
        assert json.loads((folder / records.STARTED_FILE).read_text())["seeds"] == [0, 1, 2]
        assert records.finished_record(folder) is None


@pytest.mark.parametrize("vectorize", [1, 2])
def test_bf16_trains_to_a_record_close_to_fp32(compose_cfg, synthetic_root, tmp_path, vectorize):
    def runs(precision: str) -> list[records.RunRecord]:
        cfg = small(
            compose_cfg,
            synthetic_root,
            "model=cnn3_bn",
            "train.epochs=3",
            f"train.precision={precision}",
            f"device.vectorize={vectorize}",
        )
        return run_seed_batch(cfg, {s: tmp_path / precision / f"seed={s}" for s in (0, 1)})

    bf16, fp32 = runs("bf16"), runs("fp32")
    for low, full in zip(bf16, fp32):
        assert low["status"] == "ok" and low["config"]["train"]["precision"] == "bf16"
        assert low["history"]["train_loss"] != full["history"]["train_loss"]  # autocast did change the arithmetic
        assert low["history"]["train_loss"] == pytest.approx(full["history"]["train_loss"], rel=0.05)
        assert abs(low["metrics"]["test_acc"] - full["metrics"]["test_acc"]) <= 0.1


def test_a_training_error_is_recorded_as_failed_and_raised(compose_cfg, synthetic_root, tmp_path):
    """A crash the checks before a run cannot foresee (here torch's optimizer step fails): the run
    writes a ``failed`` record with the error and traceback, then re-raises."""
    with training_crashes("boom in the optimizer"), pytest.raises(RuntimeError, match="boom in the optimizer"):
        run(small(compose_cfg, synthetic_root, "model=cnn3", "train.epochs=1"), tmp_path)
    record = records.read_record(tmp_path / records.RECORD_FILE)
    assert record["status"] == "failed" and record["error"] == "RuntimeError: boom in the optimizer"
    assert "Traceback" in record["traceback"] and record["n_params"] == 10_298


def test_a_model_that_cannot_be_built_is_refused_before_any_record(compose_cfg, synthetic_root, tmp_path):
    with pytest.raises(ConfigError, match="^model.head='dense' is not allowed: allowed are 'linear' and 'conv'$"):
        run(small(compose_cfg, synthetic_root, "model=cnn3", "model.head=dense"), tmp_path / "seed=0")
    assert not tmp_path.joinpath("seed=0").exists()


def test_a_sweep_with_a_failed_run_finishes_the_others_names_it_and_exits_non_zero(tmp_path, synthetic_root):
    """One run of three cannot write its record (a folder where its record.json must go): the
    other two finish, the sweep names the failed run and exits non-zero, and the same command
    then redoes only that run."""
    variant = ",".join(sorted([o for o in SMALL if not o.startswith("device.")] + ["train.epochs=1"]))
    blocked = tmp_path / "runs" / "cnn3" / "relu" / variant / "seed=1" / records.RECORD_FILE
    blocked.mkdir(parents=True)
    done = sweep(tmp_path, synthetic_root, "model=cnn3", "train.epochs=1", "seed=0,1,2")
    assert done.returncode == 1
    assert f"run failed: {blocked.parent}: no record of this config" in done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: 1 of 3 runs of this sweep failed")
    assert "Traceback" not in done.stderr
    assert sorted(by_seed(tmp_path)) == [0, 2]
    blocked.rmdir()
    again = sweep(tmp_path, synthetic_root, "model=cnn3", "train.epochs=1", "seed=0,1,2")
    assert again.returncode == 0, again.stderr
    assert "2 of 3 runs already done" in again.stdout and sorted(by_seed(tmp_path)) == [0, 1, 2]


def test_a_model_that_cannot_be_built_stops_the_sweep_before_launch(tmp_path, synthetic_root):
    """The issue's case: four runs of a model config that cannot be built. Refused with one line
    while the sweep is validated (the model is built once, on the meta device), nothing written."""
    done = sweep(tmp_path, synthetic_root, "model=cnn3", "model.kernels=[3,5,9]", "seed=range(0,4)")
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("error: model.kernels=[3, 5, 9] is not allowed: conv layer 2 (kernel 9)")
    )
    assert "Launching" not in done.stdout and not list(tmp_path.rglob(records.RECORD_FILE))


def test_force_on_a_folder_of_another_config_sets_its_record_aside(compose_cfg, synthetic_root, tmp_path):
    first = run(small(compose_cfg, synthetic_root, "model=cnn3", "train.epochs=1"), tmp_path)
    before = (tmp_path / records.RECORD_FILE).read_bytes()
    second = run(
        small(compose_cfg, synthetic_root, "model=cnn3", "train.epochs=1", "model.padding=1", "force=true"), tmp_path
    )
    (kept,) = tmp_path.glob("record.superseded-*.json")
    assert kept.name == f"record.superseded-{first['config_hash']}.json" and kept.read_bytes() == before
    assert (
        records.read_record(tmp_path / records.RECORD_FILE)["config_hash"]
        == second["config_hash"]
        != first["config_hash"]
    )
    run(small(compose_cfg, synthetic_root, "model=cnn3", "train.epochs=1", "model.padding=1", "force=true"), tmp_path)
    assert len(list(tmp_path.glob("record.superseded-*.json"))) == 1  # force redoes its own config's run in place


@pytest.mark.parametrize("vectorize", [1, 2])
def test_a_run_gives_torch_its_thread_count_back(compose_cfg, synthetic_root, tmp_path, vectorize):
    before = torch.get_num_threads()
    threads = 1 if before != 1 else 2
    cfg = small(
        compose_cfg,
        synthetic_root,
        "model=cnn3",
        "train.epochs=1",
        f"device.threads={threads}",
        f"device.vectorize={vectorize}",
    )
    run_seed_batch(cfg, {s: tmp_path / f"seed={s}" for s in (0, 1)})
    assert torch.get_num_threads() == before
