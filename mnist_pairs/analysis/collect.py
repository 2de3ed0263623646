"""Records -> tables: one row per run, one row per run and epoch, and each run's per-pair test
outcomes. Runs are grouped into **cells** by their identity without the seed
(``records.cell_hash``) and the mnist_pairs version that wrote them: runs of one cell differ only in
their seed, and runs of two cells are never pooled, whatever their model, activation and variant
say (a parent folder holding a benchmark and a smoke grid, records of an old and a new default, or
runs of two code versions give separate cells with distinct labels). Interrupted runs (stopped by
a signal, resumed by the same command) are listed apart, neither results nor failures."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mnist_pairs.results import records
from mnist_pairs.results.records import setting

METRICS = ("test_acc", "train_acc", "test_loss", "train_loss", "val_acc", "digit_acc")
RUN_COLUMNS = [
    "cell",
    "model",
    "activation",
    "variant",
    "experiment",
    "seed",
    "status",
    "error",
    "n_params",
    "train_time_s",
    "device",
    "device_name",
    *METRICS,
    "collapsed",
    "has_pairs",
    "cell_hash",
    "version",
    "code",
    "data_root",
    "path",
]
LN2 = math.log(2)  # the cross-entropy of two equal logits: a dead-logit classifier
DEAD_LOGIT_TOLERANCE = 1e-5  # float32 logits that are exactly equal give ln 2 to ~1e-7


@dataclass(frozen=True)
class PairOutcomes:
    """One run's test pairs: ``digits`` [n, 2], ``predicted`` [n] classes, ``correct`` [n]; ``key``
    is the digits string, equal for two runs exactly when they saw the same test pairs."""

    digits: np.ndarray
    predicted: np.ndarray
    correct: np.ndarray
    key: str

    @classmethod
    def decode(cls, test_pairs: records.TestPairs) -> PairOutcomes:
        """From a record's ``test_pairs``; ValueError where the strings are not 2n digits and n classes."""
        digits, predicted = str(test_pairs.get("digits", "")), str(test_pairs.get("predicted", ""))
        if not (digits.isdigit() and len(digits) == 2 * len(predicted) and set(predicted) <= {"0", "1"}):
            raise ValueError(
                f"test_pairs must hold 2n digits and n classes 0/1 (got {len(digits)} and {len(predicted)} characters)"
            )
        digits = (np.frombuffer(digits.encode(), dtype=np.uint8) - ord("0")).reshape(-1, 2)
        predicted = np.frombuffer(predicted.encode(), dtype=np.uint8) - ord("0")
        target = (digits[:, 0] <= digits[:, 1]).astype(np.uint8)
        return cls(digits, predicted, predicted == target, test_pairs["digits"])


@dataclass
class Collected:
    """What a results folder holds. ``pairs`` maps (cell, seed) to the run's per-pair outcomes
    (records of schema 2); ``configs`` maps a cell to its resolved config (one run's, seed aside)."""

    runs: pd.DataFrame
    history: pd.DataFrame
    pairs: dict[tuple[str, int], PairOutcomes] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    corrupt: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)  # "<model>/<activation>[/<variant>]/seed=<n>: interrupted"

    @functools.cached_property
    def unfinished_seeds(self) -> dict[str, set[int]]:
        """Per cell, the seeds whose record did not finish (failed, diverged): derived once."""
        unfinished = self.runs[self.runs["status"] != "ok"]
        return {cell: set(group["seed"]) for cell, group in unfinished.groupby("cell")}


def collapsed(metrics: dict[str, float], outcomes: PairOutcomes | None) -> bool:
    """A finished run whose classifier collapsed: it predicts one class for every test pair (from
    the per-pair predictions), or, for older records without them, its test loss is ln 2 to float
    precision (equal logits, as dead ReLU logits give). A live run near chance is not collapsed."""
    if outcomes is not None and len(outcomes.predicted):
        return bool((outcomes.predicted == outcomes.predicted[0]).all())
    return abs(metrics.get("test_loss", math.nan) - LN2) < DEAD_LOGIT_TOLERANCE


def history_rows(rec: records.RunRecord, ident: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per epoch. The lists may differ in length (``test_acc`` is empty when it was not
    monitored): every epoch of the longest list gets a row, missing values are NaN."""
    history = rec["history"] or {}
    epochs = max((len(v) for v in history.values()), default=0)
    return [
        {
            **ident,
            "epoch": e + 1,
            **{k: (v[e] if e < len(v) and v[e] is not None else math.nan) for k, v in history.items()},
        }
        for e in range(epochs)
    ]


def code_label(rec: records.RunRecord) -> str:
    """The code that wrote a record, short: its commit's first 7 hex digits (``+dirty`` from a
    modified checkout), else ``mnist_pairs <version>`` (outside a git checkout, older records)."""
    code = rec.get("code") or {}
    if code.get("commit"):
        return str(code["commit"])[:7] + ("+dirty" if code.get("dirty") else "")
    return f"mnist_pairs {code.get('version') or rec['versions'].get('mnist_pairs', '?')}"


def folder_model(run_dir: Path, rec: records.RunRecord) -> str:
    """The model as the run's folder names it (``<model>/<activation>/[<variant>/]seed=<n>``: the
    model group's choice, ``authors-cnn3`` for ``model=authors/cnn3``), or the record's model name
    where the folder has another form (a ``hydra.run.dir`` of the user's)."""
    parts = list(run_dir.parts)[::-1]
    tail = [f"seed={rec['seed']}", *([rec["variant"]] if rec["variant"] else []), rec["activation"]]
    return parts[len(tail)] if len(parts) > len(tail) and parts[: len(tail)] == tail else rec["model"]


def unique_labels(cells: dict[str, dict[str, Any]]) -> dict[str, str]:
    """A readable, unique label per cell key (identity hash and code version):
    ``model/activation[ variant]``, with the model as the run folders name it (the preset,
    ``authors-cnn3``) where cells sharing that label differ in it; then the experiment name where
    cells sharing that differ in it, then the mnist_pairs version where they still share a label
    and differ in it, then a short hash."""

    def label(c: dict[str, Any], model: str) -> str:
        return f"{model}/{c['activation']}" + (f" {c['variant']}" if c["variant"] else "")

    named = {h: label(c, c["model"]) for h, c in cells.items()}
    base = {
        h: label(c, c["folder_model"])
        if len({cells[o]["folder_model"] for o, other in named.items() if other == named[h]}) > 1
        else named[h]
        for h, c in cells.items()
    }
    labels = {}
    for h, label in base.items():
        twins = [o for o, other in base.items() if other == label]
        for key, show in (("experiment", "{}"), ("version", "mnist_pairs {}")):
            if len({cells[o][key] for o in twins}) > 1:
                label += f" [{show.format(cells[h][key])}]"
                twins = [o for o in twins if cells[o][key] == cells[h][key]]
        if len(twins) > 1:
            label += f" #{h[:6]}"
        labels[h] = label
    return labels


STATUS_RANK = {"ok": 0, "diverged": 1, "failed": 2}  # which of two records of one cell and seed counts


def mixed_sources(rows: list[dict[str, Any]], labels: dict[str, str]) -> list[str]:
    """One config run by several code versions (kept apart as cells, named here), cells whose runs
    came from different commits (pooled: a commit need not change results, but the reader should
    know), and cells whose runs came from different data roots (a path: the same files may sit at
    two, so they pool; the pairing check compares the test pairs the runs drew)."""
    table = pd.DataFrame(rows)
    out = [
        f"one config run by {len(keys)} mnist_pairs versions, kept apart as cells: "
        + ", ".join(repr(labels[k]) for k in keys)
        for keys in table.groupby("cell_hash")["_key"].unique()
        if len(keys) > 1
    ]
    out += [
        f"{labels[key]}: runs of {len(v)} code commits pooled ({', '.join(sorted(v))})"
        for key, v in table.groupby("_key")["code"].unique().items()
        if len(v) > 1
    ]
    return out + [
        f"{labels[key]}: runs from {len(v)} data roots ({', '.join(map(str, v))})"
        for key, v in table.groupby("_key")["data_root"].unique().items()
        if len(v) > 1
    ]


def collect(results_dir: Path) -> Collected:
    """Read every record under ``results_dir``. Corrupt records, run folders without a record
    (killed or still running) and second records of one cell and seed (the finished, latest one
    counts) are listed, not fatal."""
    rows, history, corrupt, interrupted = [], {}, [], []
    cells: dict[str, dict[str, Any]] = {}
    outcomes: dict[int, PairOutcomes | None] = {}
    configs: dict[str, dict[str, Any]] = {}
    record_paths = sorted(results_dir.rglob(records.RECORD_FILE))
    for path in record_paths:
        try:
            rec = records.read_record(path)
            pairs = PairOutcomes.decode(rec["test_pairs"]) if rec.get("test_pairs") else None
        except (records.CorruptRecordError, ValueError) as error:
            corrupt.append(str(error) if isinstance(error, records.CorruptRecordError) else f"{path}: {error}")
            continue
        if rec["status"] == "interrupted":  # not a result and not a failure: the same command trains it
            variant = f"/{rec['variant']}" if rec["variant"] else ""
            interrupted.append(
                f"{folder_model(path.parent, rec)}/{rec['activation']}{variant}/seed={rec['seed']}: interrupted"
            )
            continue
        config = rec["config"]
        cell = records.cell_hash(config)
        version = str(rec["versions"].get("mnist_pairs", "?"))
        key = f"{cell}:{version}"  # one config run by two code versions: two cells
        ident = {k: rec[k] for k in ("model", "activation", "variant")}
        ident["experiment"] = str(config.get("experiment_name", ""))
        cell_info = cells.setdefault(key, {**ident, "folder_model": rec["model"], "version": version})
        if (named := folder_model(path.parent, rec)) != rec["model"]:  # a cell's runs in folders of both layouts
            cell_info["folder_model"] = named
        configs.setdefault(key, {k: v for k, v in config.items() if k != "seed"})
        metrics = rec["metrics"] or {}
        outcomes[len(rows)] = pairs
        history[len(rows)] = history_rows(rec, {**ident, "cell_hash": cell, "_key": key, "seed": rec["seed"]})
        rows.append(
            {
                **ident,
                "cell_hash": cell,
                "_key": key,
                "seed": rec["seed"],
                **{k: rec[k] for k in ("status", "error", "n_params", "train_time_s", "device", "device_name")},
                **{k: metrics.get(k, math.nan) for k in METRICS},
                "collapsed": rec["status"] == "ok" and collapsed(metrics, pairs),
                "has_pairs": pairs is not None,
                "path": str(path.parent.relative_to(results_dir)),
                "finished_at": rec["finished_at"],
                "version": version,
                "code": code_label(rec),
                "data_root": setting(config, "data.root", "?"),
            }
        )
    with_record = {p.parent for p in record_paths}
    started = {p.parent for name in (".hydra", records.STARTED_FILE) for p in results_dir.rglob(name)}
    # killed or running (every seed of a batch)
    incomplete = sorted(str(d.relative_to(results_dir)) for d in started - with_record)
    labels = unique_labels(cells)
    warnings = mixed_sources(rows, labels) if rows else []
    runs = pd.DataFrame(rows, columns=[*(c for c in RUN_COLUMNS if c != "cell"), "finished_at", "_key"])
    runs.insert(0, "cell", runs["_key"].map(labels))
    # of two records of one cell and seed, the finished (then latest) one counts
    order = runs.assign(rank=runs["status"].map(STATUS_RANK).fillna(3)).sort_values(
        ["rank", "finished_at"], ascending=[True, False], kind="stable"
    )
    first = ~order.duplicated(["_key", "seed"])
    kept = sorted(order.index[first])
    duplicates = [
        f"{r.path}: a second record of {r.cell} seed={r.seed} ({r.status}; not counted)"
        for r in order[~first].itertuples()
    ]
    history_table = pd.DataFrame([row for i in kept for row in history[i]])
    if not history_table.empty:
        history_table.insert(0, "cell", history_table.pop("_key").map(labels))
    return Collected(
        runs=runs.loc[kept].drop(columns=["finished_at", "_key"]).reset_index(drop=True),
        history=history_table,
        corrupt=corrupt,
        incomplete=incomplete,
        duplicates=duplicates,
        warnings=warnings,
        interrupted=interrupted,
        configs={labels[c]: v for c, v in configs.items()},
        pairs={(labels[rows[i]["_key"]], rows[i]["seed"]): outcomes[i] for i in kept if outcomes[i] is not None},
    )
