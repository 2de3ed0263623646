"""Runs in MLflow, fed from their records (the single source of truth: nothing reads MLflow back).

    python -m mnist_pairs.train -m experiment=smoke tracking=mlflow     # logged as they finish
    python -m mnist_pairs.results.track outputs/benchmark               # any results folder, any time
    mlflow ui --backend-store-uri sqlite:///outputs/mlflow.db           # browse them

One MLflow experiment per results folder; in it one parent run per **cell** (``records.cell_hash``,
tag ``kind=cell``) holding the report's per-cell summary (``analysis.summary.summarize``) as
metrics, and under it (tag ``mlflow.parentRunId``) one seed run per finished record (ok or
diverged) holding the whole record. docs/tracking.md lists what each holds.

A job logs each run right after writing its record (``log_run``) and brings its cell up to date
from the records beside the run's folder; the grid sweeper ends by exporting its folder
(``export_sweep``), which fills in what a job could not log (a tracker that was down, a job killed
while logging, SLURM jobs with the SQLite store) and nests seed runs logged without a parent. Both
are idempotent: a parent is found by a tag search on its cell hash, a seed run by its record's
identity (tag ``config_hash``); a complete run of the same record (same ``record_finished_at``,
terminated) is kept, a half-logged one (still RUNNING) or one of an older record (``force=true``)
is replaced. A tracker failure never fails a run: the record is written first, ``log_run`` warns.
Parallel writers (docs/tracking.md, with measurements): a SQLite store is used under a lock file
beside it; on a server, each of several processes creating one experiment, run or parent reads
back and keeps the first."""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import math
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from mnist_pairs.results import records

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

log = logging.getLogger("mnist_pairs.results.track")

DB_FILE = "mlflow.db"  # the embedded store, in the output root
ARTIFACTS_DIR = "mlartifacts"  # beside a SQLite store: <its folder>/mlartifacts/<experiment>/<run id>/artifacts
IDENTITY_TAG, CELL_TAG, KIND_TAG = "config_hash", "cell_hash", "kind"  # kind: "cell" (parent) or "seed"
PARENT_TAG = "mlflow.parentRunId"  # what nests a run under another in MLflow's UI
RECORD_TAG = "record_finished_at"  # which record of that identity the MLflow run holds
CELL_TAGS = ("model", "activation", "variant", "experiment", "seeds")  # summary columns kept as tags
TRACKED = {"ok": "FINISHED", "diverged": "FAILED"}  # record status -> MLflow run status
# A job must not wait minutes for a tracker that is down (MLflow's defaults retry for long), print
# a link per run, nor send MLflow's telemetry from compute nodes; the user's MLFLOW_* variables win.
CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}
MAX_BATCH = 100  # params per log_batch call (MLflow's limit; 1000 metrics)
ATTEMPTS = 3  # a server's SQLite answers writers racing for one new row (a cell's params) with IntegrityError


@dataclass(frozen=True)
class Target:
    """Where a results folder's runs go: a tracking URI and the folder's experiment."""

    uri: str
    experiment: str

    @property
    def sqlite_file(self) -> Path | None:
        """The database file of a ``sqlite:///`` URI (relative or, with four slashes, absolute)."""
        prefix = "sqlite:///"
        return Path(self.uri[len(prefix) :]) if self.uri.startswith(prefix) and ":memory:" not in self.uri else None


def default_uri(output_root: str | Path) -> str:
    """The embedded store of an output root: a SQLite file, no server."""
    return f"sqlite:///{(Path(output_root) / DB_FILE).resolve()}"


def target_of(cfg: DictConfig) -> Target:
    """The tracking target of a run's (or a sweep's) config."""
    uri = OmegaConf.select(cfg, "tracking.uri", default=None) or default_uri(cfg.output_root)
    return Target(uri, str(OmegaConf.select(cfg, "tracking.experiment", default=cfg.experiment_name)))


def tracking_on(cfg: DictConfig) -> bool:
    return OmegaConf.select(cfg, "tracking.backend", default="none") == "mlflow"


@contextmanager
def session(where: Target) -> Iterator[tuple[MlflowClient, str]]:
    """A client of the target and its experiment's id (created, or restored from MLflow's trash,
    when needed). A SQLite store is used by one process of this machine at a time (an exclusive
    lock on a file beside it): a fresh store's schema migration run by two processes at once
    leaves it unusable; a server serialises its writers itself."""
    for key, value in CLIENT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    db = where.sqlite_file
    artifacts = None  # a new experiment's artifacts: beside a SQLite file; a server's own choice
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
        artifacts = (db.parent / ARTIFACTS_DIR / where.experiment).resolve().as_uri()
    with open(f"{db}.lock", "a") if db is not None else nullcontext() as lock:
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        client = MlflowClient(where.uri)
        if client.get_experiment_by_name(where.experiment) is None:
            try:
                client.create_experiment(where.experiment, artifact_location=artifacts)
            except MlflowException as error:  # another process created it meanwhile
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
        found = client.get_experiment_by_name(where.experiment)
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        yield client, found.experiment_id


def search(client: MlflowClient, experiment_id: str, query: str = "") -> list[Run]:
    """Active MLflow runs of the experiment matching ``query``, first created first."""
    from mlflow.entities import ViewType

    found, token = [], None
    while token != "":
        page = client.search_runs([experiment_id], query, ViewType.ACTIVE_ONLY, max_results=1000, page_token=token)
        found, token = found + list(page), page.token or ""
    return sorted(found, key=lambda r: (r.info.start_time or 0, r.info.run_id))


def is_complete(run: Run, record: records.RunRecord) -> bool:
    """The MLflow run holds all of this record: logged to the end (terminated) from this record."""
    return run.info.status != "RUNNING" and run.data.tags.get(RECORD_TAG) == record["finished_at"]


def first_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"


def millis(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp).timestamp() * 1000)


def cell_name(record: records.RunRecord) -> str:
    """``model/activation[/variant]``, as the cell's folder reads."""
    return "/".join(p for p in (record["model"], record["activation"], record["variant"]) if p)


def run_name(record: records.RunRecord) -> str:
    return f"{cell_name(record)} seed={record['seed']}"


def flat_params(config: dict[str, Any]) -> dict[str, str]:
    """The config as params: dotted keys, values as in a command-line override (JSON)."""
    return {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in records.flatten(config).items()
    }


def log_batch(client: MlflowClient, run_id: str, config: dict[str, Any] | None = None, metrics: list = ()) -> None:
    """The flattened ``config`` as params and ``metrics``, in pieces within MLflow's limit per call."""
    from mlflow.entities import Param

    params = [Param(k, v) for k, v in flat_params(config or {}).items()]
    for i in range(0, max(len(params), len(metrics)), MAX_BATCH):
        client.log_batch(run_id, metrics=metrics[i : i + MAX_BATCH], params=params[i : i + MAX_BATCH])


def cell_summaries(folder: Path, cell: str | None = None) -> dict[str, dict[str, Any]]:
    """Cell hash -> the report's per-cell summary row (``analysis.summary.summarize`` over
    ``analysis.collect``) of the records under ``folder`` (only ``cell``'s when given). A config's
    seeds written by two mnist_pairs versions are one cell here; the report splits them."""
    from mnist_pairs.analysis.collect import collect
    from mnist_pairs.analysis.summary import summarize

    found = collect(folder)
    runs = found.runs if cell is None else found.runs[found.runs["cell_hash"] == cell]
    configs = {h: found.configs[label] for label, h in zip(runs["cell"], runs["cell_hash"])}
    return {row["cell"]: row for row in summarize(runs.assign(cell=runs["cell_hash"]), configs).to_dict("records")}


def sync_cell(
    client: MlflowClient, experiment_id: str, record: records.RunRecord, summary: dict, held: list | None = None
) -> str:
    """Make the experiment hold one parent run for ``record``'s cell (``held``: its parent runs, when
    known), with ``summary``'s numbers (logged where they changed; the number of records as step,
    so that of two jobs of one cell the later summary stays the latest value whatever their
    order). Returns its run id."""
    from mlflow.entities import Metric

    cell = records.cell_hash(record["config"])
    query = f"tags.{CELL_TAG} = '{cell}' and tags.{KIND_TAG} = 'cell'"
    tags = {CELL_TAG: cell, KIND_TAG: "cell", **{k: str(summary[k] or "-") for k in CELL_TAGS}}
    held = search(client, experiment_id, query) if held is None else held
    if not held:
        client.create_run(experiment_id, tags=tags, run_name=cell_name(record))
        held = search(client, experiment_id, query)  # a process beside this one may have made one too
    parent, *twins = held
    for run in twins:
        client.delete_run(run.info.run_id)
    run_id, data = parent.info.run_id, parent.data
    if data.tags.get("seeds") != tags["seeds"]:
        client.set_tag(run_id, "seeds", tags["seeds"])
    stamp, step = int(time.time() * 1000), int(summary["n_runs"])
    numbers = {k: float(v) for k, v in summary.items() if isinstance(v, int | float) and math.isfinite(v)}
    changed = [Metric(k, v, stamp, step) for k, v in numbers.items() if data.metrics.get(k) != v]  # NaN: left out
    log_batch(client, run_id, metrics=changed)
    if parent.info.status == "RUNNING":  # new, or left by a process killed while making it
        log_batch(client, run_id, {k: v for k, v in record["config"].items() if k != "seed"})
        client.set_terminated(run_id, "FINISHED")
    return run_id


def nest(client: MlflowClient, run: Run, parent_id: str) -> bool:
    """Put a seed run under its cell's parent; False when it is there already."""
    if run.data.tags.get(PARENT_TAG) == parent_id:
        return False
    client.set_tag(run.info.run_id, PARENT_TAG, parent_id)
    client.set_tag(run.info.run_id, KIND_TAG, "seed")
    return True


def create_run(
    client: MlflowClient, experiment_id: str, record: records.RunRecord, run_dir: Path, rel_dir: str, parent_id: str
) -> str:
    """One MLflow run holding the whole record, under its cell's parent; terminated last, so a
    run still RUNNING is one whose logging was cut short."""
    from mlflow.entities import Metric

    tags = {
        IDENTITY_TAG: record["config_hash"],
        RECORD_TAG: record["finished_at"],
        KIND_TAG: "seed",
        PARENT_TAG: parent_id,
        "model": record["model"],
        "activation": record["activation"],
        "variant": record["variant"] or "-",
        "seed": str(record["seed"]),
        "experiment": str(record["config"].get("experiment_name", "")),
        CELL_TAG: records.cell_hash(record["config"]),  # the seeds of one cell share it: group by it
        "status": record["status"],
        "run_dir": rel_dir,
        "device": record["device_name"],
        "host": record.get("host", ""),
    }
    optional = {"slurm_job": record.get("slurm_job"), "error": (record["error"] or "")[:5000]}
    tags.update({k: v for k, v in optional.items() if v})
    run_id = client.create_run(
        experiment_id, start_time=millis(record["started_at"]), tags=tags, run_name=run_name(record)
    ).info.run_id
    # the per-epoch history (step = epoch, from 1) and the final numbers, stamped with the record's
    # end (deterministic: a run logged twice logs the same values)
    stamp = millis(record["finished_at"])
    metrics = [
        Metric(f"history/{key}", float(value), stamp, epoch)
        for key, values in (record["history"] or {}).items()
        for epoch, value in enumerate(values, 1)
        if value is not None
    ]
    final = {**(record["metrics"] or {}), "n_params": record["n_params"]}
    final.update({k: record[k] for k in ("train_time_s", "best_epoch") if record.get(k) is not None})
    metrics += [Metric(key, float(value), stamp, 0) for key, value in final.items()]
    log_batch(client, run_id, record["config"], metrics)
    client.log_artifact(run_id, str(run_dir / records.RECORD_FILE))
    if "weights" in record:
        client.log_artifact(run_id, str(run_dir / record["weights"]))
    client.set_terminated(run_id, TRACKED[record["status"]], end_time=stamp)
    return run_id


def log_record(
    client: MlflowClient, experiment_id: str, record: records.RunRecord, run_dir: Path, rel_dir: str, parent_id: str
) -> str:
    """Make the experiment hold this finished record exactly once, under ``parent_id``. Returns
    what was done: ``present`` (already there; nested if it was not), ``logged`` or ``replaced``
    (a half-logged run, or one of an older record of the same identity, was deleted first)."""
    query = f"tags.{IDENTITY_TAG} = '{record['config_hash']}'"
    existing = search(client, experiment_id, query)
    keep = [r for r in existing if is_complete(r, record)][:1]
    for run in existing:
        if run not in keep:
            client.delete_run(run.info.run_id)
    if keep:
        nest(client, keep[0], parent_id)
        return "present"
    create_run(client, experiment_id, record, run_dir, rel_dir, parent_id)
    # another process (against a server: no lock) may have logged the same record meanwhile
    for run in [r for r in search(client, experiment_id, query) if is_complete(r, record)][1:]:
        client.delete_run(run.info.run_id)
    return "replaced" if existing else "logged"


def log_run(cfg: DictConfig, run_dir: Path, record: records.RunRecord) -> None:
    """After a run's record is written: log the run, and its cell from the records of the run
    folder's parent, to the tracker of ``cfg.tracking``, if any. Never raises: a failure is a
    warning, and the sweep's export (or the CLI) logs it later."""
    if not tracking_on(cfg) or record["status"] not in TRACKED:
        return
    where, results_dir = target_of(cfg), Path(cfg.output_root) / cfg.experiment_name
    if where.sqlite_file is not None and records.slurm_job():
        log.info("tracking: %s left to the export: SLURM jobs do not write a SQLite store", run_dir)
        return
    try:
        (cell,) = cell_summaries(run_dir.parent, records.cell_hash(record["config"])).values()
        for attempt in range(1, ATTEMPTS + 1):  # idempotent: a retry finds what the last try wrote
            try:
                with session(where) as (client, experiment_id):
                    parent_id = sync_cell(client, experiment_id, record, cell)
                    rel_dir = os.path.relpath(run_dir, results_dir)
                    done = log_record(client, experiment_id, record, run_dir, rel_dir, parent_id)
                break
            except Exception as error:
                lost_race = "IntegrityError" in str(error) or "database is locked" in str(error)
                if attempt == ATTEMPTS or not lost_race:  # a write that lost a race with another process
                    raise
                time.sleep(random.uniform(0.2, 1.0) * attempt)
        log.info("tracking: %s %s in experiment %r of %s", run_name(record), done, where.experiment, where.uri)
    except Exception as error:
        log.warning(
            "tracking: %s not logged to %s (%s); its record is written, and the sweep's export or "
            "`python -m mnist_pairs.results.track %s` logs it later",
            run_name(record),
            where.uri,
            first_line(error),
            results_dir,
        )


def finished_runs(results_dir: Path) -> dict[Path, records.RunRecord]:
    """Run folder -> finished record (ok or diverged) of every run under ``results_dir``."""
    found = {path.parent: records.finished_record(path.parent) for path in results_dir.rglob(records.RECORD_FILE)}
    return {run_dir: found[run_dir] for run_dir in sorted(found) if found[run_dir] is not None}


def export(results_dir: Path, where: Target, found: dict[Path, records.RunRecord] | None = None) -> Counter:
    """Log every cell and every finished run of ``results_dir`` (or those ``found`` there) that the
    target's experiment does not hold yet (one query lists the cells and seed runs it holds), in
    one session: a job logging into the store meanwhile waits. Returns the count of each outcome
    of ``log_record``, ``nested`` for runs put under their cell, and ``failed`` for runs not
    logged (each warned about; the others go on)."""
    found = finished_runs(results_dir) if found is None else found
    summaries, counts, parents = cell_summaries(results_dir), Counter(), {}
    with session(where) as (client, experiment_id):
        held, cells = {}, {}  # seed runs by identity, cells' parent runs by cell hash
        for run in search(client, experiment_id):
            tags = run.data.tags
            if tags.get(KIND_TAG) == "cell":
                cells.setdefault(tags[CELL_TAG], []).append(run)
            elif IDENTITY_TAG in tags:
                held.setdefault(tags[IDENTITY_TAG], []).append(run)
        for run_dir, record in found.items():
            cell, runs = records.cell_hash(record["config"]), held.get(record["config_hash"], [])
            try:
                if cell not in parents:
                    parents[cell] = sync_cell(client, experiment_id, record, summaries[cell], cells.get(cell, []))
                if len(runs) == 1 and is_complete(runs[0], record):
                    counts["present"] += 1
                    counts["nested"] += nest(client, runs[0], parents[cell])
                else:
                    rel_dir = os.path.relpath(run_dir, results_dir)
                    counts[log_record(client, experiment_id, record, run_dir, rel_dir, parents[cell])] += 1
            except Exception as error:
                counts["failed"] += 1
                log.warning("tracking: %s not logged (%s)", run_dir, first_line(error))
    return +counts


def summary(results_dir: Path, where: Target, counts: Counter) -> str:
    n = sum(counts[k] for k in ("logged", "replaced", "present", "failed"))
    return (
        f"{results_dir}: {n} finished runs in experiment {where.experiment!r} of {where.uri}: {counts['logged']} "
        f"logged, {counts['replaced']} replaced, {counts['present']} already there, {counts['failed']} failed"
    )


def export_sweep(cfg: DictConfig, sweep_dir: Path) -> None:
    """The grid sweeper's last step with ``tracking=mlflow``: export the sweep's folder (what its
    jobs could not log). Never raises: the records are the results."""
    if not tracking_on(cfg):
        return
    where = target_of(cfg)
    try:
        log.info("tracking: %s", summary(sweep_dir, where, export(sweep_dir, where)))
    except Exception as error:
        log.warning(
            "tracking: the sweep was not exported to %s (%s); `python -m mnist_pairs.results.track %s` does it later",
            where.uri,
            first_line(error),
            sweep_dir,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results_dir", type=Path, help="a folder of run records (e.g. outputs/benchmark)")
    parser.add_argument(
        "--uri", help="an MLflow tracking URI (default: sqlite:///<results_dir>/../mlflow.db, as tracking=mlflow)"
    )
    parser.add_argument("--experiment", help="the MLflow experiment (default: the folder's name)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    results_dir: Path = args.results_dir
    found = finished_runs(results_dir) if results_dir.is_dir() else {}
    if not found:
        sys.exit(
            f"error: {results_dir} holds no finished run record (a results folder such as outputs/benchmark, with "
            "<model>/<activation>/.../seed=<n>/record.json)"
        )
    where = Target(args.uri or default_uri(results_dir.resolve().parent), args.experiment or results_dir.resolve().name)
    try:
        counts = export(results_dir, where, found)
    except Exception as error:
        sys.exit(f"error: cannot use the tracker at {where.uri} ({first_line(error)})")
    print(summary(results_dir, where, counts))
    if where.sqlite_file is not None:
        print(f"browse: mlflow ui --backend-store-uri {where.uri}")
    if counts["failed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
