"""The sequential decisions of a results folder (``python -m mnist_pairs.decide`` writes them to
``decisions/<name>.json``), as one table and a report section."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

COLUMNS = ["question", "a", "b", "verdict", "n", "diff_pts", "ci_low", "ci_high", "margin_pts", "alpha", "max_seeds"]


def read_decisions(results_dir: Path) -> pd.DataFrame:
    """One row per question: its cells, verdict and last look (a decision file that cannot be read
    is a row with verdict ``unreadable``)."""
    rows = []
    for path in sorted((results_dir / "decisions").glob("*.json")):
        try:
            d = json.loads(path.read_text())
            last = d["looks"][-1] if d["looks"] else {}
            plan = d["plan"]
            rows.append(
                {
                    "question": d["question"],
                    "a": d["a"]["label"],
                    "b": d["b"]["label"],
                    "verdict": d["verdict"],
                    "n": last.get("n", 0),
                    "diff_pts": last.get("mean"),
                    "ci_low": last.get("ci_low"),
                    "ci_high": last.get("ci_high"),
                    "margin_pts": plan.get("margin"),
                    "alpha": plan["alpha"],
                    "max_seeds": plan["max_seeds"],
                }
            )
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            rows.append({"question": path.stem, "verdict": "unreadable"})
    return pd.DataFrame(rows, columns=COLUMNS)


def section(table: pd.DataFrame) -> list[str]:
    """report.md's lines on the folder's decisions (none when there are none)."""
    if table.empty:
        return []
    lines = [
        "## Sequential decisions",
        "",
        "Questions decided by `python -m mnist_pairs.decide` (docs/decide.md): seeds were added in steps and "
        "each question stopped when its group-sequential test decided, the chance of any wrong decision held "
        "at alpha over all looks (alpha here is each question's share). The CI is the repeated CI of the "
        "last look. `open` questions were stopped before a decision; the same command continues them.",
        "",
        "| question | a | b | verdict | seeds | diff (pts) | repeated CI | margin | alpha |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        if r.verdict == "unreadable":
            lines.append(f"| {r.question} | | | unreadable decision file | | | | | |")
            continue
        ci = f"{r.ci_low:+.2f} to {r.ci_high:+.2f}" if pd.notna(r.ci_low) else ""
        diff = f"{r.diff_pts:+.2f}" if pd.notna(r.diff_pts) else ""
        margin = f"±{r.margin_pts:g}" if pd.notna(r.margin_pts) else "none"
        lines.append(
            f"| {r.question} | {r.a} | {r.b} | {r.verdict} | {int(r.n)} of {int(r.max_seeds)} | {diff} | {ci} "
            f"| {margin} | {r.alpha:.3g} |"
        )
    return [*lines, ""]
