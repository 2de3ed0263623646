"""The progress line of a whole sweep: done / total, failures, elapsed, ETA.

The sweep's session (mnist_pairs.results.session) writes ``<sweep_dir>/.progress/session.json``
before launching: every run (its folder, cell, model and work), the launched jobs in launch order,
the number of parallel workers, measured seconds of earlier runs of the same cells, the start
time. Every job, in whichever worker process it ran, appends one line per run, ``outcome seconds
end job-overhead folder``, to the session's log (one short O_APPEND write, atomic on POSIX) and prints the line
computed from that log; the ETA is mnist_pairs.results.eta's one number."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mnist_pairs.results import records
from mnist_pairs.results.eta import Costs, Finished, Run, remaining_seconds

PROGRESS_DIR = ".progress"
OUTCOMES = ("ok", "failed", "diverged", "skipped")


def start_session(
    sweep_dir: Path,
    runs: list[Run],
    jobs: list[list[str]],
    workers: int = 1,
    history: list[tuple[Run, float]] | None = None,
) -> dict[str, Any]:
    """Record a new sweep session of these ``runs``, launched as ``jobs`` (lists of run keys, in
    launch order) on ``workers`` workers; ``history``: measured seconds of earlier runs of this
    sweep's cells. Returns the session."""
    session = {
        "id": uuid.uuid4().hex[:12],
        "runs": {r.key: [r.cell, r.model, r.work] for r in runs},
        "jobs": jobs,
        "workers": max(1, workers),
        "history": [[r.cell, r.model, r.work, seconds] for r, seconds in history or []],
        "started": time.time(),
    }
    records.write_atomically(sweep_dir / PROGRESS_DIR / "session.json", lambda f: f.write(json.dumps(session).encode()))
    return session


def fmt_seconds(seconds: float) -> str:
    seconds = round(seconds)
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
    )


def read_session(sweep_dir: Path) -> dict[str, Any] | None:
    """The current session, or None when none was started (a plain single run) or it was written
    by another version."""
    try:
        session = json.loads((sweep_dir / PROGRESS_DIR / "session.json").read_text())
        session["id"], session["runs"], session["jobs"], session["workers"], session["history"], session["started"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return None
    return session


def session_eta(
    session: dict[str, Any], logged: list[tuple[str, float, float, float | None, str]], now: float
) -> float:
    """Seconds left for the session's launched jobs (mnist_pairs.results.eta)."""
    runs = {key: Run(key, cell, model, float(work)) for key, (cell, model, work) in session["runs"].items()}
    costs = Costs()
    for cell, model, work, seconds in session["history"]:
        costs.learn(Run("", cell, model, float(work)), float(seconds))
    finished: dict[str, Finished] = {}
    for outcome, seconds, end, overhead, key in logged:
        finished[key] = Finished(seconds, end)
        if outcome in ("ok", "diverged") and key in runs:
            costs.learn(runs[key], seconds)
        if overhead is not None:
            costs.learn_overhead(overhead)
    jobs = [[runs[key] for key in job if key in runs] for job in session["jobs"]]
    return remaining_seconds(jobs, finished, costs, session["workers"], session["started"], now)


_last_end: dict[str, float] = {}  # session id -> when this process last logged a job's end


def record_outcomes(sweep_dir: Path, outcomes: Sequence[tuple[str, Path | str]], seconds: float) -> str | None:
    """Append one job's runs (outcome, run folder) to the current session, the job having taken
    ``seconds`` (shared evenly among its runs), and return the progress line; None when no session
    was started (a plain single run). The job's overhead (its start after this process's previous
    job ended, less its own ``seconds``) goes with its first run."""
    for outcome, _ in outcomes:
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome={outcome!r}: allowed are {OUTCOMES}")
    session = read_session(sweep_dir)
    if session is None or not outcomes:
        return None
    now = time.time()
    previous = _last_end.get(session["id"])
    overhead = "-" if previous is None else f"{max(0.0, now - previous - seconds):.3f}"
    _last_end[session["id"]] = now
    share = seconds / len(outcomes)
    lines = [
        f"{outcome} {share:.3f} {now:.3f} {overhead if i == 0 else '-'} {run_key(sweep_dir, run_dir)}\n"
        for i, (outcome, run_dir) in enumerate(outcomes)
    ]
    path = sweep_dir / PROGRESS_DIR / f"{session['id']}.log"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, "".join(lines).encode())
    finally:
        os.close(fd)
    # (outcome, seconds, end, job overhead or None, run key) of every run logged so far, by any job
    entries = (line.split(" ", 4) for line in path.read_text().splitlines() if line)
    logged = [(o, float(s), float(e), None if h == "-" else float(h), key) for o, s, e, h, key in entries]
    counts = Counter(entry[0] for entry in logged)
    return (
        f"sweep {len(logged)}/{len(session['runs'])} ({counts['ok']} ok, {counts['failed']} failed, "
        f"{counts['diverged']} diverged, {counts['skipped']} already done) "
        f"elapsed {fmt_seconds(now - session['started'])} ETA {fmt_seconds(session_eta(session, logged, now))}"
    )


def run_key(sweep_dir: Path, run_dir: Path | str) -> str:
    """A run's folder relative to the sweep's (the folder itself when it lies elsewhere)."""
    path = Path(run_dir)
    try:
        return str(path.resolve().relative_to(Path(sweep_dir).resolve()))
    except ValueError:
        return str(path)
