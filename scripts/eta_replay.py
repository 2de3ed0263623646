"""Replay a finished sweep's timings through the sweep's ETA: predicted against actual seconds
left when 10, 25, 50 and 75 % of its runs had finished.

    python scripts/eta_replay.py outputs/benchmark                  # a sweep's records folder
    python scripts/eta_replay.py tests/data/benchmark_timings.csv   # a frozen timings table
    python scripts/eta_replay.py outputs/benchmark --freeze tests/data/benchmark_timings.csv

A job is a config's seeds packed as the grid sweeper packs them (``device.seeds_per_job`` or
``device.vectorize`` seeds of one cell, in seed order); jobs are taken to have been launched in
the order they started. The table holds no machine paths: per run its job, model, activation,
seed, epochs, cell, work (``session.run_work``: seconds timed on this machine before launch),
start and end (seconds from the sweep's first start) and worker pid."""

from __future__ import annotations

import argparse
import csv
from datetime import datetime
from pathlib import Path

from mnist_pairs.results import records
from mnist_pairs.results.eta import Run, TimedRun, replay
from mnist_pairs.results.session import run_work

COLUMNS = ("job", "model", "activation", "seed", "epochs", "cell", "work", "start", "end", "pid")
FRACTIONS = (0.10, 0.25, 0.50, 0.75)


def rows_from_records(folder: Path) -> list[dict[str, str | int | float]]:
    """One row per finished record under ``folder``."""
    found = []
    for path in sorted(folder.rglob(records.RECORD_FILE)):
        record = records.finished_record(path.parent)
        if record is not None:
            found.append(record)
    if not found:
        raise SystemExit(f"error: {folder} holds no finished {records.RECORD_FILE}")
    t0 = min(datetime.fromisoformat(r["started_at"]).timestamp() for r in found)
    cells: dict[str, list[dict]] = {}
    for r in found:
        cells.setdefault(records.cell_hash(r["config"]), []).append(r)
    rows, job = [], 0
    for cell, members in cells.items():
        members.sort(key=lambda r: r["seed"])
        device = members[0]["config"].get("device", {})
        vectorize = int(device.get("vectorize") or 1)  # as config.checks.seeds_per_job packs them
        k = vectorize if vectorize > 1 else int(device.get("seeds_per_job") or 1)
        for i, r in enumerate(members):
            rows.append(
                {
                    "job": job + i // k,
                    "model": r["model"],
                    "activation": r["activation"],
                    "seed": r["seed"],
                    "epochs": records.setting(r["config"], "train.epochs"),
                    "cell": cell,
                    "work": f"{run_work(r['config']):.6g}",
                    "start": f"{datetime.fromisoformat(r['started_at']).timestamp() - t0:.3f}",
                    "end": f"{datetime.fromisoformat(r['finished_at']).timestamp() - t0:.3f}",
                    "pid": r.get("pid", ""),
                }
            )
        job += -(-len(members) // k)
    return rows


def read_table(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def timed_runs(rows: list[dict]) -> list[TimedRun]:
    return [
        TimedRun(
            int(r["job"]),
            Run(f"{r['cell']}/seed={r['seed']}", str(r["cell"]), str(r["model"]), float(r["work"])),
            float(r["start"]),
            float(r["end"]),
            str(r["pid"]),
        )
        for r in rows
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a sweep's records folder, or a timings table (.csv)")
    parser.add_argument("--workers", type=int, default=None, help="parallel workers (default: the distinct pids)")
    parser.add_argument("--freeze", type=Path, default=None, help="write the timings table to this .csv")
    args = parser.parse_args()
    rows = read_table(args.source) if args.source.suffix == ".csv" else rows_from_records(args.source)
    if args.freeze:
        with args.freeze.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    workers = args.workers or len({r["pid"] for r in rows})
    print(f"{len(rows)} runs, {workers} workers")
    print(f"{'done':>10s} {'predicted':>10s} {'actual':>10s} {'error':>7s}")
    for fraction, (n, predicted, actual) in zip(FRACTIONS, replay(timed_runs(rows), workers, FRACTIONS)):
        error = predicted / actual - 1 if actual > 0 else 0.0
        print(f"{fraction:4.0%} {n:5d} {predicted:9.0f}s {actual:9.0f}s {error:+7.0%}")


if __name__ == "__main__":
    main()
