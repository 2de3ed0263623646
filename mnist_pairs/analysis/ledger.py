"""The aggregation ledger: one line per aggregation whose seeds per cell differ from the last one,
kept in the results folder (``aggregations.jsonl``), so that a report can say it was aggregated
again after seeds were added. Looking at p after every few seeds and stopping at the first
p < 0.05 inflates the false-positive rate (looks at 5, 10, 15 and 20 seeds: about 13 % instead of
5 %); the remedy is a number of seeds fixed in advance, or a sequential procedure built for it."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

LEDGER_FILE = "aggregations.jsonl"


def read_ledger(folder: Path) -> list[dict]:
    """The earlier aggregations of ``folder`` (oldest first); lines that do not parse are skipped."""
    path = folder / LEDGER_FILE
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("n"), dict):
            entries.append(entry)
    return entries


def grown(earlier: list[dict], now: dict[str, int]) -> dict[str, list[int]]:
    """Per cell whose finished seeds grew since an earlier aggregation: the n of each earlier look
    (distinct, in order) followed by today's."""
    out = {}
    for cell, n in now.items():
        looks = list(dict.fromkeys(e["n"][cell] for e in earlier if cell in e["n"]))
        if looks and min(looks) < n:
            out[cell] = [*looks, n] if looks[-1] != n else looks
    return out


def record_look(folder: Path, now: dict[str, int]) -> tuple[dict[str, list[int]], str]:
    """Compare ``now`` (finished seeds per cell) with the ledger, append it when it differs from the
    last entry, and return the cells that grew with their looks, and a warning where the folder
    cannot be written (the comparison then covers only what the ledger held)."""
    earlier = read_ledger(folder)
    looks = grown(earlier, now)
    if earlier and earlier[-1]["n"] == now:
        return looks, ""
    line = json.dumps({"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "n": now}, sort_keys=True)
    try:
        with (folder / LEDGER_FILE).open("a") as f:
            f.write(line + "\n")
    except OSError as error:
        return looks, f"the aggregation ledger {folder / LEDGER_FILE} could not be written ({error.strerror})"
    return looks, ""
