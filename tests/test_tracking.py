"""tracking=mlflow (mnist_pairs.results.track): every finished run in MLflow exactly once, with its params,
tags, per-epoch metrics and artifacts, nested under one parent run per cell that holds the
report's per-cell summary, checked through MLflow's client: 2-worker joblib sweeps killed and
resumed, against a real `mlflow server` and the embedded SQLite store; the export of a folder,
twice; a cell growing by a seed; parallel processes on a fresh SQLite store; a tracker that is
down."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mnist_pairs.config.checks import validate
from mnist_pairs.config.schema import ConfigError
from mnist_pairs.results import records, track
from mnist_pairs.training.batch import seed_config
from mnist_pairs.training.run import run
from tests.conftest import ROOT, free_port, run_cli, start_cli

mlflow = pytest.importorskip("mlflow")  # the dev extra installs it (make venv)

GRID = 'hydra.sweeper.grids=[{model:"cnn3,fcnn_bn",seed:"0,1,2"}]'


def sweep_args(out: Path, synthetic_root: Path, *extra: str) -> list[str]:
    return [
        "-m",
        GRID,
        f"data.root={synthetic_root}",
        "data.download=false",
        f"output_root={out}",
        "experiment_name=grid",
        "data.n_train=100",
        "data.n_test=50",
        "train.epochs=2",
        "launcher=joblib",
        "tracking=mlflow",
        *extra,
    ]


def finished(results: Path) -> dict[str, records.RunRecord]:
    """Identity hash -> finished record, of every run under ``results``."""
    return {r["config_hash"]: r for r in track.finished_runs(results).values()}


def tracked(uri: str, experiment: str, kind: str = "seed") -> list:
    """The active seed runs (or, with ``kind="cell"``, the cells' parent runs) of ``experiment``."""
    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    runs = [] if found is None else client.search_runs([found.experiment_id], max_results=1000)
    return [r for r in runs if ("config_hash" in r.data.tags) == (kind == "seed")]


def parents(uri: str, experiment: str) -> dict[str, object]:
    """Cell hash -> the cell's parent run; one per cell (found as the docs say: a tag search)."""
    client = mlflow.MlflowClient(uri)
    found = client.search_runs([client.get_experiment_by_name(experiment).experiment_id], "tags.kind = 'cell'")
    cells = Counter(r.data.tags["cell_hash"] for r in found)
    assert all(n == 1 for n in cells.values()), cells
    assert len(found) == len(tracked(uri, experiment, kind="cell")), "every run is a seed run or a cell"
    return {r.data.tags["cell_hash"]: r for r in found}


def assert_tracked_once(uri: str, experiment: str, results: Path, tmp_path: Path) -> None:
    """Every finished run of ``results`` is in the experiment exactly once, and holds its record:
    params, identity tags, final and per-epoch metrics, record.json as an artifact."""
    client = mlflow.MlflowClient(uri)
    expected = finished(results)
    runs = tracked(uri, experiment)
    counts = Counter(r.data.tags["config_hash"] for r in runs)
    assert counts == Counter(expected.keys()), "each finished run exactly once, and nothing else"
    cells = parents(uri, experiment)
    assert set(cells) == {records.cell_hash(r["config"]) for r in expected.values()}, "one parent run per cell"
    for tracked_run in runs:
        assert tracked_run.data.tags["mlflow.parentRunId"] == cells[tracked_run.data.tags["cell_hash"]].info.run_id
    for tracked_run in runs:
        record = expected[tracked_run.data.tags["config_hash"]]
        assert tracked_run.info.status == "FINISHED" and tracked_run.info.run_name == track.run_name(record)
        tags = tracked_run.data.tags
        assert (tags["model"], tags["activation"], tags["seed"], tags["experiment"]) == (
            record["model"],
            record["activation"],
            str(record["seed"]),
            "grid",
        )
        assert tags["record_finished_at"] == record["finished_at"] and tags["cell_hash"] == records.cell_hash(
            record["config"]
        )
        assert tracked_run.data.params == track.flat_params(record["config"])
        assert (
            tracked_run.data.params["train.epochs"] == str(record["config"]["train"]["epochs"])
            and tracked_run.data.params["model.name"] == record["model"]
        )
        for key, value in record["metrics"].items():
            assert tracked_run.data.metrics[key] == pytest.approx(value), key
        for key, values in record["history"].items():
            history = sorted(client.get_metric_history(tracked_run.info.run_id, f"history/{key}"), key=lambda m: m.step)
            assert [(m.step, m.value) for m in history] == [
                (e, pytest.approx(v)) for e, v in enumerate(values, 1) if v is not None
            ], key
        assert {a.path for a in client.list_artifacts(tracked_run.info.run_id)} == {
            records.RECORD_FILE,
            *([record["weights"]] if "weights" in record else []),
        }
        copy = mlflow.artifacts.download_artifacts(
            run_id=tracked_run.info.run_id,
            artifact_path=records.RECORD_FILE,
            dst_path=str(tmp_path / tracked_run.info.run_id),
            tracking_uri=uri,
        )
        assert json.loads(Path(copy).read_text()) == json.loads(json.dumps(record))


def kill_midway(args: list[str], results: Path, uri: str) -> int:
    """Start the sweep, SIGKILL its process group once it has finished some runs and a job has
    logged one of them; returns how many runs were finished then."""
    sweep = start_cli(*args, output=subprocess.DEVNULL, errors=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and sweep.poll() is None:
            if len(finished(results)) >= 2 and tracked(uri, "grid"):
                break
            time.sleep(0.2)
    finally:
        os.killpg(sweep.pid, signal.SIGKILL)
        sweep.wait()
    done = len(finished(results))
    assert 2 <= done < 6, f"the sweep was not killed midway ({done} runs finished)"
    return done


def kill_and_resume(out: Path, synthetic_root: Path, uri: str, tmp_path: Path, *extra: str) -> None:
    results = out / "grid"
    before = kill_midway(sweep_args(out, synthetic_root, *extra), results, uri)
    assert tracked(uri, "grid"), "the jobs log their runs as they finish (the killed sweep never exported)"
    resumed = run_cli(*sweep_args(out, synthetic_root, *extra))
    assert resumed.returncode == 0, resumed.stderr
    assert f"{before} already done" in resumed.stdout + resumed.stderr
    assert (
        "tracking: " in resumed.stdout + resumed.stderr
        and "6 finished runs in experiment 'grid'" in resumed.stdout + resumed.stderr
    )
    assert_tracked_once(uri, "grid", results, tmp_path)
    again = run_cli(str(results), "--uri", uri, module="mnist_pairs.results.track")
    assert again.returncode == 0, again.stderr
    assert "0 logged, 0 replaced, 6 already there, 0 failed" in again.stdout
    assert_tracked_once(uri, "grid", results, tmp_path)


@pytest.mark.slow
def test_a_killed_and_resumed_sweep_logs_each_run_once_into_a_server(tmp_path, synthetic_root, mlflow_server):
    kill_and_resume(
        tmp_path / "out",
        synthetic_root,
        mlflow_server,
        tmp_path,
        f"tracking.uri={mlflow_server}",
        "train.save_model=true",
    )
    assert all(
        "weights" in r for r in finished(tmp_path / "out" / "grid").values()
    )  # and each saved model is an artifact


@pytest.mark.slow
def test_a_killed_and_resumed_sweep_logs_each_run_once_into_the_embedded_store(tmp_path, synthetic_root):
    out = tmp_path / "out"
    kill_and_resume(out, synthetic_root, track.default_uri(out), tmp_path)
    assert (out / "mlflow.db").is_file() and (
        out / track.ARTIFACTS_DIR / "grid"
    ).is_dir()  # under the output root, no server


def tiny_cfg(compose_cfg, synthetic_root: Path, results: Path, *extra: str):
    return compose_cfg(
        "model=fcnn",
        "model.hidden=[16]",
        f"data.root={synthetic_root}",
        "data.download=false",
        "data.n_train=100",
        "data.n_test=50",
        "train.epochs=2",
        f"output_root={results.parent}",
        f"experiment_name={results.name}",
        *extra,
    )


def tiny_runs(compose_cfg, synthetic_root: Path, results: Path, seeds=(0, 1, 2)) -> dict[int, Path]:
    """Finished runs of a tiny config, trained in this process; seed -> run folder."""
    cfg = tiny_cfg(compose_cfg, synthetic_root, results)
    dirs = {seed: results / "fcnn" / "relu" / f"seed={seed}" for seed in seeds}
    for seed, run_dir in dirs.items():
        assert run(seed_config(cfg, seed), run_dir)["status"] == "ok"
    return dirs


def test_exporting_a_folder_twice_logs_each_run_once(compose_cfg, synthetic_root, tmp_path):
    results = tmp_path / "out" / "grid"
    dirs = tiny_runs(compose_cfg, synthetic_root, results)
    uri = track.default_uri(results.parent)
    for outcome in ("3 logged, 0 replaced, 0 already there", "0 logged, 0 replaced, 3 already there"):
        done = run_cli(str(results), module="mnist_pairs.results.track")
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == [
            f"{results}: 3 finished runs in experiment 'grid' of {uri}: {outcome}, 0 failed",
            f"browse: mlflow ui --backend-store-uri {uri}",
        ]
    assert_tracked_once(uri, "grid", results, tmp_path)

    # seed 1 redone (force=true: a new record of the same identity): its MLflow run is replaced
    run(tiny_cfg(compose_cfg, synthetic_root, results, "seed=1", "force=true"), dirs[1])
    # seed 2's MLflow run as a process killed while logging leaves it (RUNNING): replaced too
    client = mlflow.MlflowClient(uri)
    half = records.read_record(dirs[2] / records.RECORD_FILE)
    held = {r.data.tags["config_hash"]: r for r in tracked(uri, "grid")}
    client.delete_run(held[half["config_hash"]].info.run_id)
    client.create_run(
        held[half["config_hash"]].info.experiment_id,
        tags={"config_hash": half["config_hash"], "record_finished_at": half["finished_at"]},
    )
    assert track.export(results, track.Target(uri, "grid")) == Counter(present=1, replaced=2)
    assert_tracked_once(uri, "grid", results, tmp_path)

    empty = run_cli(str(tmp_path / "nothing"), module="mnist_pairs.results.track")
    assert empty.returncode != 0 and "holds no finished run record" in empty.stderr and "Traceback" not in empty.stderr


def test_each_cell_is_a_parent_run_holding_the_reports_summary_with_its_seeds_nested(
    compose_cfg, synthetic_root, tmp_path
):
    results = tmp_path / "out" / "grid"
    dirs = tiny_runs(compose_cfg, synthetic_root, results, seeds=(0, 1))
    where = track.Target(track.default_uri(results.parent), "grid")
    # seed 0 as a store filled before cells existed holds it: complete, but under no parent
    old = records.read_record(dirs[0] / records.RECORD_FILE)
    with track.session(where) as (client, experiment_id):
        old_id = track.create_run(client, experiment_id, old, dirs[0], "fcnn/relu/seed=0", parent_id="none")
    client.delete_tag(old_id, "mlflow.parentRunId")
    assert "mlflow.parentRunId" not in client.get_run(old_id).data.tags

    def check(seeds: tuple[int, ...]) -> None:
        """One parent run for the cell, holding the report's n, mean, SD and CI of the seeds'
        records; every seed run nested under it."""
        assert_tracked_once(where.uri, "grid", results, tmp_path)
        (cell,) = parents(where.uri, "grid").values()
        accuracies = [records.read_record(dirs[s] / records.RECORD_FILE)["metrics"]["test_acc"] for s in seeds]
        metrics = cell.data.metrics
        assert metrics["n"] == metrics["n_ok"] == len(seeds) and metrics["n_failed"] == 0
        assert metrics["test_acc_mean"] == pytest.approx(statistics.mean(accuracies))
        assert metrics["test_acc_sd"] == pytest.approx(statistics.stdev(accuracies))
        assert metrics["test_acc_ci_low"] <= metrics["test_acc_mean"] <= metrics["test_acc_ci_high"]
        assert cell.data.tags["cell_hash"] == records.cell_hash(old["config"]) and cell.info.run_name == "fcnn/relu"
        assert cell.data.tags["seeds"] == f"0-{max(seeds)}" and "seed" not in cell.data.params
        assert cell.data.params["model.name"] == "fcnn" and cell.info.status == "FINISHED"

    assert track.export(results, where) == Counter(present=1, nested=1, logged=1)
    check((0, 1))
    cell_id = parents(where.uri, "grid")[records.cell_hash(old["config"])].info.run_id
    assert client.get_run(old_id).data.tags["mlflow.parentRunId"] == cell_id, "the old seed run nested"
    assert track.export(results, where) == Counter(present=2), "a second export changes nothing"
    check((0, 1))

    # a third seed trained with tracking=mlflow: logged as it finishes, and the cell updated
    dirs[2] = results / "fcnn" / "relu" / "seed=2"
    assert run(tiny_cfg(compose_cfg, synthetic_root, results, "seed=2", "tracking=mlflow"), dirs[2])["status"] == "ok"
    check((0, 1, 2))
    steps = client.get_metric_history(parents(where.uri, "grid")[records.cell_hash(old["config"])].info.run_id, "n")
    assert sorted((m.step, m.value) for m in steps) == [(2, 2.0), (3, 3.0)], "n by number of records"
    assert track.export(results, where) == Counter(present=3)
    check((0, 1, 2))


LOG_WHEN_RELEASED = """
import sys, time
from pathlib import Path
from omegaconf import OmegaConf
from mnist_pairs.results import records, track
cfg, run_dir, release = OmegaConf.load(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
while not release.exists():
    time.sleep(0.01)
track.log_run(cfg, run_dir, records.read_record(run_dir / records.RECORD_FILE))
"""


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite", "server"])
def test_parallel_processes_log_each_run_once_into_a_fresh_store(compose_cfg, synthetic_root, tmp_path, request, store):
    """The hazards of MLflow under parallel jobs: four processes released at once into a new
    SQLite store (its schema migration, 'database is locked'), or into a new experiment of a
    server (created by all four at once). Without the lock of mnist_pairs.results.track.session each SQLite one
    fails in MLflow's migration ("duplicate column name: step", "table ... already exists",
    alembic's "Online migration expected to match one row")."""
    results = tmp_path / "out" / "grid"
    dirs = tiny_runs(compose_cfg, synthetic_root, results, seeds=(0, 1, 2, 3))
    uri = request.getfixturevalue("mlflow_server") if store == "server" else track.default_uri(results.parent)
    experiment = f"grid-{tmp_path.name}"  # new on the server too
    cfg = compose_cfg(
        "tracking=mlflow",
        f"tracking.uri={uri}",
        f"tracking.experiment={experiment}",
        f"output_root={results.parent}",
        "experiment_name=grid",
    )
    OmegaConf.save(cfg, tmp_path / "cfg.yaml", resolve=True)
    release = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", LOG_WHEN_RELEASED, str(tmp_path / "cfg.yaml"), str(d), str(release)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for d in dirs.values()
    ]
    time.sleep(2)  # imported and waiting (a late one still logs, only less at once)
    release.touch()
    outputs = [w.communicate(timeout=180)[0] for w in workers]
    assert [w.returncode for w in workers] == [0] * 4, outputs
    assert not any("not logged" in out for out in outputs), outputs
    assert_tracked_once(uri, experiment, results, tmp_path)


def test_a_tracker_that_is_down_fails_no_run_and_the_next_sweep_exports_them(tmp_path, synthetic_root):
    args = [
        "-m",
        "model=cnn3",
        "seed=0,1",
        f"data.root={synthetic_root}",
        "data.download=false",
        f"output_root={tmp_path}",
        "experiment_name=grid",
        "data.n_train=100",
        "data.n_test=50",
        "train.epochs=1",
        "tracking=mlflow",
        "device.vectorize=2",
    ]  # both seeds in one job, trained at once, each logged on its own
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    done = run_cli(*args, f"tracking.uri={down}", env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"})  # refused at once
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert "sweep 2/2 (2 ok" in output and "2 runs in 1 jobs" in output
    assert output.count(f"not logged to {down}") == 2 and "its record is written" in output
    assert "the sweep was not exported" in output
    assert len(finished(tmp_path / "grid")) == 2
    # the next sweep (here into the embedded store) launches nothing and exports both runs
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    assert "2 already done" in again.stdout + again.stderr and "Launching" not in again.stdout
    assert (
        "2 finished runs in experiment 'grid'" in again.stdout + again.stderr
        and "2 logged" in again.stdout + again.stderr
    )
    assert len(tracked(track.default_uri(tmp_path), "grid")) == 2


def test_tracking_and_save_model_stay_out_of_a_runs_identity(compose_cfg):
    base = compose_cfg("model=cnn3", hydra=True)
    other = compose_cfg(
        "model=cnn3", "tracking=mlflow", "tracking.uri=http://example.invalid:5000", "train.save_model=true", hydra=True
    )
    identity = [
        records.config_hash({k: v for k, v in OmegaConf.to_container(c, resolve=False).items() if k != "hydra"})
        for c in (base, other)
    ]
    assert identity[0] == identity[1]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("train.save_model=sometimes",), "train.save_model='sometimes' is not allowed: true or false"),
        (("tracking=mlflow", "tracking.uri=''"), "tracking.uri='' is not allowed: null (the embedded SQLite store"),
        (("tracking=mlflow", "tracking.experiment=''"), "tracking.experiment='' is not allowed: plain names"),
        (
            ("tracking=mlflow", "tracking.experiment=../../etc"),
            "tracking.experiment='../../etc' is not allowed: plain names",
        ),  # its artifacts' folder
        (
            ("tracking=mlflow", "tracking.uri=/any/path"),
            "tracking.uri='/any/path' is not allowed: null (the embedded SQLite store",
        ),
        (("tracking.backend=mlfow",), "tracking.backend='mlfow' is not allowed: one of none, mlflow"),
    ],
)
def test_bad_tracking_values_are_refused_before_any_work(compose_cfg, overrides, message):
    with pytest.raises(ConfigError) as info:
        validate(compose_cfg(*overrides))
    assert str(info.value).startswith(message)


def test_tracking_mlflow_without_mlflow_installed_says_how_to_install_it(compose_cfg, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else find_spec(name, *a))
    with pytest.raises(
        ConfigError, match=r"tracking='mlflow' is not allowed: MLflow is not installed: pip install -e '\.\[tracking\]'"
    ):
        validate(compose_cfg("tracking=mlflow"))
    validate(compose_cfg())  # tracking=none needs no MLflow
