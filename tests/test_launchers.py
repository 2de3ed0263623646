"""The launcher group: every choice composes, none changes a run's identity, and the submitit
launchers pack runs into jobs (launcher=slurm itself: tests/test_slurm.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mnist_pairs.config import compose_config
from mnist_pairs.results import records
from tests.conftest import CONF_DIR, run_cli, start_cli, stop_process_group

LAUNCHERS = {
    "basic": "hydra._internal.core_plugins.basic_launcher.BasicLauncher",
    "joblib": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
    "submitit_local": "hydra_plugins.mnist_pairs_launcher.packed_launcher.PackedLocalLauncher",
    "slurm": "hydra_plugins.mnist_pairs_launcher.packed_launcher.PackedSlurmLauncher",
}


def test_launcher_group_matches_the_hydra_launchers():
    assert {p.stem for p in (CONF_DIR / "launcher").glob("*.yaml")} == set(LAUNCHERS)


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_every_launcher_composes_and_leaves_the_run_identity_alone(launcher):
    cfg = compose_config("model=cnn3", "seed=4", f"launcher={launcher}", hydra=True)
    assert cfg.hydra.launcher._target_ == LAUNCHERS[launcher]
    task = OmegaConf.to_container(cfg, resolve=False)
    task.pop("hydra")
    base = compose_config("model=cnn3", "seed=4", hydra=True)
    base_task = OmegaConf.to_container(base, resolve=False)
    base_task.pop("hydra")
    assert records.config_hash(task) == records.config_hash(base_task)


def test_slurm_keys_and_the_command_line_beats_the_preset():
    cfg = compose_config("experiment=benchmark", "launcher=slurm", "device.threads=4", hydra=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == LAUNCHERS["slurm"]
    assert launcher.cpus_per_task == 4  # follows the torch threads of each run
    for key in (
        "partition",
        "timeout_min",
        "gpus_per_node",
        "array_parallelism",
        "runs_per_job",
        "additional_parameters",
    ):
        assert key in launcher
    assert compose_config("experiment=benchmark", hydra=True).hydra.launcher._target_ == LAUNCHERS["joblib"]


def test_submitit_local_packs_runs_into_jobs(tmp_path: Path, synthetic_root: Path):
    done = run_cli(
        "-m",
        "model=cnn3",
        "seed=0,1,2",
        "launcher=submitit_local",
        "hydra.launcher.jobs=null",
        "hydra.launcher.runs_per_job=2",
        f"data.root={synthetic_root}",
        "data.download=false",
        f"output_root={tmp_path}",
        "data.n_train=100",
        "data.n_test=50",
        "train.epochs=1",
    )
    assert done.returncode == 0, done.stderr
    assert "3 runs in 2 jobs" in done.stdout + done.stderr
    found = sorted(tmp_path.rglob(records.RECORD_FILE))
    assert [records.read_record(p)["status"] for p in found] == ["ok"] * 3
    assert all(records.read_record(p)["host"] for p in found)
    assert "launcher" not in str(found[0])  # the launcher is not part of the run's folder
    before = {p: p.read_bytes() for p in found}
    dealt = run_cli(
        "-m",
        "model=cnn3",
        "seed=range(0,7)",
        "launcher=submitit_local",
        f"data.root={synthetic_root}",
        "data.download=false",
        f"output_root={tmp_path}",
        "data.n_train=100",
        "data.n_test=50",
        "train.epochs=1",
    )
    assert dealt.returncode == 0, dealt.stderr
    assert (
        "3 of 7 runs already done" in dealt.stdout and "4 runs in 2 jobs" in dealt.stdout
    )  # not submitted; the preset: jobs=2
    after = {p: p.read_bytes() for p in tmp_path.rglob(records.RECORD_FILE)}
    assert len(after) == 7 and all(after[p] == before[p] for p in before)  # the 3 finished runs were left alone


def test_bad_runs_per_job_is_refused(tmp_path: Path, synthetic_root: Path):
    done = run_cli(
        "-m",
        "model=cnn3",
        "launcher=submitit_local",
        "hydra.launcher.runs_per_job=0",
        f"data.root={synthetic_root}",
        f"output_root={tmp_path}",
    )
    assert done.returncode != 0
    assert "hydra.launcher.runs_per_job must be a positive integer, got 0" in done.stderr
    assert not list(tmp_path.rglob(records.RECORD_FILE))


@pytest.mark.slow
def test_interrupting_a_submitit_sweep_cancels_its_jobs(tmp_path: Path, synthetic_root: Path):
    """SIGINT to the sweep's own process alone (as on a cluster, where the jobs run elsewhere):
    the launcher cancels its jobs, whose runs record themselves interrupted, instead of leaving
    them to train on unwatched while the same command starts them again."""
    args = ["-m", "model=fcnn", "seed=0,1", "launcher=submitit_local", f"data.root={synthetic_root}"]
    args += ["data.download=false", f"output_root={tmp_path}", "data.n_train=100", "data.n_test=50"]
    args += ["train.batch_size=50", "train.epochs=100000"]  # trains until stopped
    sweep = start_cli(*args, errors=subprocess.STDOUT)
    try:
        logs = tmp_path / "runs" / ".submitit"
        deadline = time.monotonic() + 180
        while len({p.name.split("_log")[0] for p in logs.rglob("*_log.*") if " epoch 1/" in p.read_text()}) < 2:
            assert sweep.poll() is None, sweep.communicate()[0]
            assert time.monotonic() < deadline, "the two jobs did not both start training"
            time.sleep(0.5)
        os.kill(sweep.pid, signal.SIGINT)
        output, _ = sweep.communicate(timeout=120)
        assert sweep.returncode == 130, output
        assert "cancelled 2 of 2 jobs that were queued or running" in output
        assert "sweep interrupted (SIGINT): 0 of 2 runs finished, 2 not; the same command resumes" in output
        deadline = time.monotonic() + 120
        while len(list(tmp_path.rglob(records.RECORD_FILE))) < 2:  # the cancelled runs record themselves
            assert time.monotonic() < deadline, "the cancelled jobs wrote no record"
            time.sleep(0.5)
        found = [records.read_record(p) for p in tmp_path.rglob(records.RECORD_FILE)]
        assert [r["status"] for r in found] == ["interrupted"] * 2
    finally:
        stop_process_group(sweep)
