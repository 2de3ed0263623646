"""The progress line of a whole sweep: done / total, failures, elapsed, ETA.

The sweeper writes ``<sweep_dir>/.progress/session.json`` (total number of jobs, start time) before
launching; every job, in whichever worker process it ran, appends its outcome to the session's log
(one short O_APPEND write, atomic on POSIX) and prints the line computed from that log."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

PROGRESS_DIR = ".progress"
OUTCOMES = ("ok", "failed", "diverged", "skipped")


def start_session(sweep_dir: Path, total: int) -> str:
    """Record a new sweep session; returns its id."""
    folder = sweep_dir / PROGRESS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    session = {"id": uuid.uuid4().hex[:12], "total": total, "started": time.time()}
    tmp = folder / "session.json.tmp"
    tmp.write_text(json.dumps(session))
    os.replace(tmp, folder / "session.json")
    return session["id"]


def _fmt(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def record_outcome(sweep_dir: Path, outcome: str) -> str | None:
    """Append one job's outcome to the current session and return the progress line, or None when
    no session was started (a plain single run)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome={outcome!r}: allowed are {OUTCOMES}")
    folder = sweep_dir / PROGRESS_DIR
    try:
        session = json.loads((folder / "session.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    log_path = folder / f"{session['id']}.log"
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{outcome}\n".encode())
    finally:
        os.close(fd)
    outcomes = log_path.read_text().split()
    counts = {o: outcomes.count(o) for o in OUTCOMES}
    done, total = len(outcomes), session["total"]
    trained = done - counts["skipped"]
    elapsed = time.time() - session["started"]
    eta = _fmt(elapsed / trained * (total - done)) if trained else "?"
    return (
        f"sweep {done}/{total} ({counts['ok']} ok, {counts['failed']} failed, {counts['diverged']} diverged, "
        f"{counts['skipped']} already done) elapsed {_fmt(elapsed)} ETA {eta}"
    )
