"""Sweeps: the union-of-grids sweeper, upfront validation, resume after a kill, progress."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnist_pairs.results import records
from tests.conftest import ROOT, run_cli, start_cli

GRIDS = (
    'hydra.sweeper.grids=[{model:"cnn3,fcnn_bn",activation:"relu,tanh",seed:"0,1"},{model:siamese_cnn,seed:"0,1,2"}]'
)


def sweep_args(out: Path, synthetic_root: Path, *extra: str) -> list[str]:
    return [
        "-m",
        GRIDS,
        f"data.root={synthetic_root}",
        "data.download=false",
        f"output_root={out}",
        "experiment_name=grid",
        "data.n_train=100",
        "data.n_test=50",
        "train.epochs=2",
        *extra,
    ]


def finished(out: Path) -> dict[str, dict]:
    """Run path -> record, for every record under the sweep."""
    return {str(p.parent.relative_to(out)): records.read_record(p) for p in sorted(out.rglob(records.RECORD_FILE))}


def test_grids_are_a_union_of_products_with_progress(tmp_path, synthetic_root):
    done = run_cli(*sweep_args(tmp_path, synthetic_root))
    assert done.returncode == 0, done.stderr
    runs = finished(tmp_path / "grid")
    assert len(runs) == 2 * 2 * 2 + 3
    assert {(r["model"], r["activation"]) for r in runs.values()} == {
        ("cnn3", "relu"),
        ("cnn3", "tanh"),
        ("fcnn_bn", "relu"),
        ("fcnn_bn", "tanh"),
        ("siamese_cnn", "relu"),
    }
    assert "sweep 11/11 (11 ok, 0 failed, 0 diverged, 0 already done)" in done.stdout + done.stderr
    repeated = run_cli(*sweep_args(tmp_path, synthetic_root))  # all finished: nothing to launch
    assert repeated.returncode == 0, repeated.stderr
    assert (
        "sweep 11/11 (0 ok, 0 failed, 0 diverged, 11 already done)" in repeated.stdout
        and "Launching" not in repeated.stdout
    )
    # the command line wins over the grids
    again = run_cli(*sweep_args(tmp_path / "seed5", synthetic_root, "seed=5"))
    assert again.returncode == 0, again.stderr
    assert {r["seed"] for r in finished(tmp_path / "seed5" / "grid").values()} == {5}


def test_a_bad_value_stops_the_sweep_before_any_training(tmp_path, synthetic_root):
    done = run_cli(*sweep_args(tmp_path, synthetic_root, "seed=0,-3"))
    assert done.returncode != 0
    assert "error: seed=-3 is not allowed: an integer >= 0" in done.stderr and "Traceback" not in done.stderr
    assert not finished(tmp_path)


def test_a_bad_value_stops_a_joblib_sweep_before_any_worker_trains(tmp_path, synthetic_root):
    done = run_cli(*sweep_args(tmp_path, synthetic_root, "seed=0,-3", "launcher=joblib"), timeout=120)
    assert done.returncode != 0
    assert "error: seed=-3 is not allowed: an integer >= 0" in done.stderr and "Traceback" not in done.stderr
    assert not finished(tmp_path)


def test_a_killed_sweep_resumes_with_only_the_missing_runs(tmp_path, synthetic_root):
    reference = tmp_path / "reference"
    assert run_cli(*sweep_args(reference, synthetic_root)).returncode == 0
    expected = finished(reference / "grid")

    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mnist_pairs.train", *sweep_args(out, synthetic_root)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while len(list(out.rglob(records.RECORD_FILE))) < 4 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {path: (out / "grid" / path / records.RECORD_FILE).stat().st_mtime_ns for path in finished(out / "grid")}
    assert 4 <= len(before) < len(expected), "the sweep was not killed midway"

    resumed = run_cli(*sweep_args(out, synthetic_root))
    assert resumed.returncode == 0, resumed.stderr
    after = finished(out / "grid")
    assert after.keys() == expected.keys()
    for path, stamp in before.items():  # finished runs were skipped, not redone
        assert (out / "grid" / path / records.RECORD_FILE).stat().st_mtime_ns == stamp
    assert f"{len(before)} already done" in resumed.stdout + resumed.stderr
    for path, record in after.items():  # same numbers as the uninterrupted sweep
        assert record["metrics"] == expected[path]["metrics"] and record["history"] == expected[path]["history"]


def test_resume_redoes_deleted_failed_and_corrupt_runs_only(tmp_path, synthetic_root):
    assert run_cli(*sweep_args(tmp_path, synthetic_root)).returncode == 0
    grid = tmp_path / "grid"
    runs = finished(grid)
    deleted, corrupt, failed, *kept = sorted(runs)
    (grid / deleted / records.RECORD_FILE).unlink()
    (grid / corrupt / records.RECORD_FILE).write_text('{"status": "ok", "trunc')
    records.write_record(grid / failed, {**runs[failed], "status": "failed", "error": "RuntimeError: boom"})
    stamps = {p: (grid / p / records.RECORD_FILE).stat().st_mtime_ns for p in kept}
    resumed = run_cli(*sweep_args(tmp_path, synthetic_root))
    assert resumed.returncode == 0, resumed.stderr
    assert "3 ok, 0 failed, 0 diverged, 8 already done" in resumed.stdout + resumed.stderr
    assert "8 of 11 runs already done (finished records of the same config): not launched" in resumed.stdout
    assert "Launching 3 jobs locally" in resumed.stdout  # the finished runs were not even launched
    assert {p: (grid / p / records.RECORD_FILE).stat().st_mtime_ns for p in kept} == stamps
    again = finished(grid)
    assert all(
        again[p]["status"] == "ok" and again[p]["metrics"] == runs[p]["metrics"] for p in (deleted, corrupt, failed)
    )


@pytest.mark.slow
def test_joblib_launcher_gives_the_same_numbers_as_sequential(tmp_path, synthetic_root):
    """...in two worker processes, each running several jobs."""
    parallel = run_cli(
        *sweep_args(
            tmp_path / "par", synthetic_root, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "device.threads=1"
        )
    )
    assert parallel.returncode == 0, parallel.stderr
    sequential = run_cli(*sweep_args(tmp_path / "seq", synthetic_root, "device.threads=1"))
    assert sequential.returncode == 0, sequential.stderr
    par, seq = finished(tmp_path / "par" / "grid"), finished(tmp_path / "seq" / "grid")
    assert par.keys() == seq.keys() and all(par[k]["metrics"] == seq[k]["metrics"] for k in par)
    pids = {r["pid"] for r in par.values()}
    assert 1 <= len(pids) <= 2 and len(par) > len(pids)  # worker processes reused across jobs


@pytest.mark.parametrize(
    ("launcher", "signum", "to_group"),
    [pytest.param(("launcher=joblib",), signal.SIGINT, True, marks=pytest.mark.slow), ((), signal.SIGTERM, False)],
    ids=["ctrl-c-joblib", "sigterm-basic"],
)
def test_an_interrupted_sweep_says_so_in_one_line_and_resumes(tmp_path, synthetic_root, launcher, signum, to_group):
    """Ctrl-C (SIGINT to the process group, the workers too) or SIGTERM (to the sweep alone): no
    traceback, one line, the shell's exit status; the same command finishes the rest."""
    args = sweep_args(tmp_path, synthetic_root, *launcher)
    proc = start_cli(*args)
    deadline = time.monotonic() + 180
    while not list(tmp_path.rglob(records.RECORD_FILE)) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    if to_group:
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("sweep interrupted")]
    name = signal.Signals(signum).name
    assert len(lines) == 1 and lines[0].startswith(f"sweep interrupted ({name}): "), stderr
    assert lines[0].endswith(" not; the same command resumes") and " of 11 runs finished, " in lines[0]
    assert "Traceback" not in stdout + stderr
    kept = {path: record["metrics"] for path, record in finished(tmp_path / "grid").items() if record["status"] == "ok"}
    assert kept and int(lines[0].split(": ")[1].split(" of ")[0]) == len(kept)

    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    after = finished(tmp_path / "grid")
    assert len(after) == 11 and all(r["status"] == "ok" for r in after.values())
    assert all(after[path]["metrics"] == metrics for path, metrics in kept.items())
