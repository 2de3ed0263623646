"""launcher=slurm on a real one-node SLURM cluster (scripts/slurm_cluster.sh; `make test-slurm`).

The same small grid runs locally and through SLURM: sacct must know every job, the aggregated
metrics must be equal, and a job killed with scancel must be named by the sweep and redone, alone,
by the same command."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from mnist_pairs.analysis.collect import collect
from mnist_pairs.results import records, track
from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.slurm

GRID = 'hydra.sweeper.grids=[{model:"cnn3,fcnn_bn",seed:"0,1,2"}]'
METRICS = ["test_acc", "train_acc", "test_loss", "train_loss"]
CLUSTER_SCRIPT = ROOT / "scripts" / "slurm_cluster.sh"


@pytest.fixture(scope="module")
def slurm_cluster():
    """The one-node cluster, started by this module when it is not up (and stopped again after)."""
    up = shutil.which("sinfo") and subprocess.run(
        ["sinfo", "-h", "-o", "%t"], capture_output=True, text=True
    ).stdout.strip() in {"idle", "mix", "alloc"}
    if not up and os.geteuid() != 0 and not os.environ.get("CI"):
        pytest.skip("no SLURM cluster, and starting one needs root (scripts/slurm_cluster.sh)")
    if not up:
        subprocess.run([str(CLUSTER_SCRIPT), "start"], check=True, timeout=600)
    yield
    if not up:
        subprocess.run([str(CLUSTER_SCRIPT), "stop"], check=False, timeout=120)


def grid_args(out: Path, synthetic_root: Path, *extra: str) -> list[str]:
    return [
        "-m",
        GRID,
        f"data.root={synthetic_root}",
        "data.download=false",
        f"output_root={out}",
        "experiment_name=grid",
        "data.n_train=100",
        "data.n_test=50",
        "train.epochs=3",
        *extra,
    ]


def metrics_table(results: Path) -> pd.DataFrame:
    runs = collect(results).runs
    return runs.sort_values(["model", "activation", "seed"]).reset_index(drop=True)[
        ["model", "activation", "seed", *METRICS]
    ]


def sacct_states(job_id: str) -> dict[str, tuple[str, str]]:
    """Array task id -> (state, node list) as SLURM's accounting has them."""
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "JobID,State,NodeList"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {jid: (state.split()[0], node) for jid, state, node in (line.split("|") for line in out.splitlines())}


def final_states(job_id: str, timeout: float = 60) -> dict[str, tuple[str, str]]:
    """``sacct_states`` once every task has ended: the accounting may still say RUNNING for a
    moment after the sweep has collected the task's result."""
    deadline = time.monotonic() + timeout
    while True:
        states = sacct_states(job_id)
        if (
            all(s not in ("PENDING", "RUNNING", "COMPLETING") for s, _ in states.values())
            or time.monotonic() > deadline
        ):
            return states
        time.sleep(0.2)


def wait_for_running(task: str, sweep: subprocess.Popen, timeout: float = 120) -> None:
    """Wait until SLURM reports array task ``task`` (``<job>_<i>``) as running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert sweep.poll() is None, "the sweep ended before the task ran"
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i %t"], capture_output=True, text=True).stdout
        if f"{task} R" in out.splitlines():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{task} never ran")


def test_grid_on_slurm_equals_local_and_a_cancelled_job_is_redone_alone(tmp_path, synthetic_root, slurm_cluster):
    # the same grid, locally: two joblib workers with one torch thread each, as SLURM's tasks have
    local = run_cli(*grid_args(tmp_path / "local", synthetic_root, "launcher=joblib"))
    assert local.returncode == 0, local.stderr

    # on SLURM, one run per job, one job at a time; task 3 is cancelled while it runs
    cmd = [
        sys.executable,
        "-m",
        "mnist_pairs.train",
        *grid_args(
            tmp_path / "slurm",
            synthetic_root,
            "launcher=slurm",
            "hydra.launcher.runs_per_job=1",
            "hydra.launcher.array_parallelism=1",
        ),
    ]
    sweep = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (job := _submitted_job(tmp_path / "slurm")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert job, "no SLURM job submitted"
        wait_for_running(f"{job}_3", sweep)
        subprocess.run(["scancel", f"{job}_3"], check=True)
        output, _ = sweep.communicate(timeout=300)
    finally:
        sweep.kill()
    assert sweep.returncode != 0, "a sweep with a cancelled job must not report success"
    assert f"job {job}_3 (CANCELLED" in output, output
    assert "1 of 6 jobs ended without results" in output, output

    # SLURM's accounting: six tasks of one array ran on this cluster's node, one cancelled
    states = final_states(job)
    node = subprocess.run(["hostname", "-s"], capture_output=True, text=True).stdout.strip()
    assert {t: s for t, (s, _) in states.items()} == {
        f"{job}_{i}": "CANCELLED" if i == 3 else "COMPLETED" for i in range(6)
    }
    assert all(nodes == node for t, (_, nodes) in states.items() if t != f"{job}_3")

    results = tmp_path / "slurm" / "grid"
    before = {p: p.read_bytes() for p in results.rglob(records.RECORD_FILE)}
    assert len(before) == 5
    assert {records.read_record(p)["slurm_job"].split("_")[0] for p in before} == {job}

    # resume: the same command redoes exactly the cancelled run, in a new array
    again = run_cli(*cmd[3:])
    assert again.returncode == 0, again.stdout + again.stderr
    after = {p: p.read_bytes() for p in results.rglob(records.RECORD_FILE)}
    assert len(after) == 6
    redone = [p for p in after if p not in before]
    assert len(redone) == 1 and all(after[p] == before[p] for p in before)
    second = records.read_record(redone[0])["slurm_job"].split("_")[0]
    assert second != job
    assert [s for s, _ in final_states(second).values()] == [
        "COMPLETED"
    ]  # the five finished runs were not even submitted

    # the same aggregated metrics as the local run (same seeds, same CPU, one thread each)
    pd.testing.assert_frame_equal(metrics_table(results), metrics_table(tmp_path / "local" / "grid"))


def test_tracking_from_slurm_jobs(tmp_path, synthetic_root, slurm_cluster, mlflow_server):
    """tracking=mlflow under launcher=slurm: with a tracking server the jobs log their runs
    themselves; with the embedded SQLite store they leave it to the sweep's export, which the
    submitting process runs. Either way every run is in MLflow once, whole."""
    pytest.importorskip("mlflow")
    from tests.test_tracking import assert_tracked_once

    for name, extra, uri in [
        ("server", [f"tracking.uri={mlflow_server}"], mlflow_server),
        ("sqlite", [], track.default_uri(tmp_path / "sqlite")),
    ]:
        done = run_cli(
            *grid_args(
                tmp_path / name,
                synthetic_root,
                "launcher=slurm",
                "hydra.launcher.runs_per_job=3",
                "tracking=mlflow",
                *extra,
            )
        )
        assert done.returncode == 0, done.stdout + done.stderr
        results = tmp_path / name / "grid"
        assert {records.read_record(p)["slurm_job"].split("_")[0] for p in results.rglob(records.RECORD_FILE)} != {""}
        assert_tracked_once(uri, "grid", results, tmp_path / name / "artifacts")
        job_logs = "".join(p.read_text() for p in results.rglob("train.log"))
        if name == "server":  # logged by the jobs; the sweep's export found them all
            assert job_logs.count("logged in experiment 'grid'") == 6
            assert "0 logged, 0 replaced, 6 already there" in done.stdout + done.stderr
        else:  # left by the jobs to the sweep's export
            assert job_logs.count("left to the export") == 6
            assert "6 logged, 0 replaced, 0 already there" in done.stdout + done.stderr


def _submitted_job(out: Path) -> str | None:
    """The SLURM array job of a sweep, from submitit's folder (``.submitit/<job>_<task>/``)."""
    folder = out / "grid" / ".submitit"
    tasks = [p.name for p in folder.iterdir() if re.fullmatch(r"\d+_\d+", p.name)] if folder.is_dir() else []
    return tasks[0].split("_")[0] if tasks else None
