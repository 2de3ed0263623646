"""Where each cell errs, from the per-pair test predictions of its finished runs (records of schema
2; older records are skipped and counted): errors by digit pair (d1, d2) and by d2 - d1. Collapsed
runs (one class for every pair) are left out: they would paint a whole triangle of the heatmap with
the collapse instead of showing where a working model errs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mnist_pairs.analysis.collect import Collected


def error_tables(data: Collected, order: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(errors by digit pair: cell, d1, d2, n, errors, error_rate; errors by difference: cell,
    d2 - d1, n, errors, error_rate), test pairs pooled over each cell's runs."""
    by_pair, by_diff = [], []
    ok = data.runs[(data.runs["status"] == "ok") & ~data.runs["collapsed"].astype(bool)]
    for cell in order:  # every test pair of the cell's finished, not collapsed runs
        parts = [data.pairs[(cell, s)] for s in ok.loc[ok["cell"] == cell, "seed"] if (cell, s) in data.pairs]
        if not parts:
            continue
        digits, correct = np.concatenate([p.digits for p in parts]), np.concatenate([p.correct for p in parts])
        wrong = (~correct).astype(float)
        index = digits[:, 0].astype(int) * 10 + digits[:, 1]
        n, errors = np.bincount(index, minlength=100), np.bincount(index, weights=wrong, minlength=100)
        for i in range(100):
            by_pair.append({"cell": cell, "d1": i // 10, "d2": i % 10, "n": int(n[i]), "errors": int(errors[i])})
        diff = digits[:, 1].astype(int) - digits[:, 0] + 9
        n, errors = np.bincount(diff, minlength=19), np.bincount(diff, weights=wrong, minlength=19)
        for i in range(19):
            by_diff.append({"cell": cell, "d2_minus_d1": i - 9, "n": int(n[i]), "errors": int(errors[i])})
    tables = [
        pd.DataFrame(rows, columns=[*cols, "n", "errors"])
        for rows, cols in ((by_pair, ["cell", "d1", "d2"]), (by_diff, ["cell", "d2_minus_d1"]))
    ]
    for table in tables:
        table["error_rate"] = table["errors"] / table["n"].where(table["n"] > 0)
    return tables[0], tables[1]


def near_equal_share(by_diff: pd.DataFrame, width: int = 1) -> pd.DataFrame:
    """Per cell, the share of its errors on pairs with |d2 - d1| <= ``width`` against the share of
    such pairs among all test pairs: errors crowd near equal digits when the first is larger."""
    rows = []
    for cell, group in by_diff.groupby("cell", sort=False):
        near = group["d2_minus_d1"].abs() <= width
        rows.append(
            {
                "cell": cell,
                "errors": int(group["errors"].sum()),
                f"error_share_within_{width}": group.loc[near, "errors"].sum() / max(1, group["errors"].sum()),
                f"pair_share_within_{width}": group.loc[near, "n"].sum() / max(1, group["n"].sum()),
            }
        )
    return pd.DataFrame(rows)
