"""The progress line of a whole sweep: done / total, failures, elapsed, ETA.

The sweeper writes ``<sweep_dir>/.progress/session.json`` (the model of every job, the number of
parallel workers, the start time) before launching; every job, in whichever worker process it ran,
appends ``outcome model seconds`` to the session's log (one short O_APPEND write, atomic on POSIX)
and prints the line computed from that log. The ETA weighs the remaining jobs by the mean time
of finished jobs of the same model, since models differ in cost by 100x; models not seen yet
make it a range."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from pathlib import Path

PROGRESS_DIR = ".progress"
OUTCOMES = ("ok", "failed", "diverged", "skipped")


def start_session(sweep_dir: Path, models: list[str], workers: int = 1) -> str:
    """Record a new sweep session of jobs with these ``models``; returns its id."""
    folder = sweep_dir / PROGRESS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    session = {"id": uuid.uuid4().hex[:12], "models": models, "workers": max(1, workers), "started": time.time()}
    tmp = folder / "session.json.tmp"
    tmp.write_text(json.dumps(session))
    os.replace(tmp, folder / "session.json")
    return session["id"]


def _fmt(seconds: float) -> str:
    seconds = round(seconds)
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
    )


def estimate_remaining(
    models: list[str], done: list[tuple[str, str, float]], workers: int
) -> tuple[float, float] | None:
    """Seconds left, as (low, high): each remaining job costs the mean time of the trained jobs of
    its model; a job of a model not trained yet costs between nothing and the dearest model seen so
    far (low == high once every model has been seen). Shared among ``workers``. None before any job
    trained."""
    per_model: dict[str, list[float]] = {}
    for outcome, m, seconds in done:
        if outcome != "skipped":
            per_model.setdefault(m, []).append(seconds)
    if not per_model:
        return None
    means = {m: sum(v) / len(v) for m, v in per_model.items()}
    remaining = Counter(models) - Counter(m for _, m, _ in done)
    known = sum(n * means[m] for m, n in remaining.items() if m in means)
    unknown = sum(n for m, n in remaining.items() if m not in means)
    return known / workers, (known + unknown * max(means.values())) / workers


def _eta(left: tuple[float, float] | None) -> str:
    if left is None:
        return "?"
    low, high = left
    return _fmt(low) if high - low < 1 else f"{_fmt(low)} to {_fmt(high)}"


def record_outcome(sweep_dir: Path, outcome: str, model: str, seconds: float) -> str | None:
    """Append one job's outcome to the current session and return the progress line, or None when
    no session was started (a plain single run)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome={outcome!r}: allowed are {OUTCOMES}")
    folder = sweep_dir / PROGRESS_DIR
    try:
        session = json.loads((folder / "session.json").read_text())
        session["id"], session["models"], session["workers"], session["started"]
    except (OSError, json.JSONDecodeError, KeyError):
        return None  # no session (a plain run) or one written by another version
    log_path = folder / f"{session['id']}.log"
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{outcome} {model} {seconds:.3f}\n".encode())
    finally:
        os.close(fd)
    done = [(o, m, float(s)) for o, m, s in (line.split() for line in log_path.read_text().splitlines() if line)]
    counts = Counter(o for o, _, _ in done)
    left = estimate_remaining(session["models"], done, session["workers"])
    return (
        f"sweep {len(done)}/{len(session['models'])} ({counts['ok']} ok, {counts['failed']} failed, "
        f"{counts['diverged']} diverged, {counts['skipped']} already done) "
        f"elapsed {_fmt(time.time() - session['started'])} ETA {_eta(left)}"
    )
