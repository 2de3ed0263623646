"""`make smoke` on real MNIST: the benchmark grid end to end, checked against its own records."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pandas as pd
import pytest

from mnist_pairs.results import records
from tests.conftest import ROOT

SMOKE_RUNS = 5 * 2 + 8 * 3 * 2


@pytest.mark.slow
def test_make_smoke_produces_a_consistent_report(real_root, tmp_path):
    env = {**os.environ, "MNIST_PAIRS_DATA": str(real_root)}
    done = subprocess.run(
        ["make", "smoke", f"OUT={tmp_path}"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = tmp_path / "smoke"
    recs = [records.read_record(p) for p in out.rglob(records.RECORD_FILE)]
    assert len(recs) == SMOKE_RUNS and all(r["status"] == "ok" for r in recs)
    assert {r["config"]["train"]["epochs"] for r in recs} == {3} and {r["device"] for r in recs} == {"cpu"}

    summary = pd.read_csv(out / "tables" / "summary.csv", keep_default_na=False, na_values=[""])
    assert summary["n"].sum() == SMOKE_RUNS and len(summary) == 5 + 8 * 3
    by_cell: dict[tuple[str, str], list[float]] = {}
    for r in recs:
        by_cell.setdefault((r["model"], r["activation"]), []).append(r["metrics"]["test_acc"])
    for row in summary.itertuples():
        accs = by_cell[(row.model, row.activation)]
        assert row.n == len(accs) and row.test_acc_mean == pytest.approx(np.mean(accs))
        assert row.test_acc_sd == pytest.approx(np.std(accs, ddof=1))
    assert len(pd.read_csv(out / "tables" / "runs.csv")) == SMOKE_RUNS
    assert len(pd.read_csv(out / "tables" / "history.csv")) == SMOKE_RUNS * 3
    comparison = pd.read_csv(out / "tables" / "published_comparison.csv")
    assert (
        len(comparison) == 26
    )  # every row says why it is not tested: 3 epochs of 250 pairs are not the published protocol
    assert (
        comparison["verdict"]
        .str.startswith("n/a: protocol differs (train.epochs=3 (published: 50); data.n_train=250")
        .all()
    )
    assert comparison["p_holm"].isna().all()
    findings = pd.read_csv(out / "tables" / "findings.csv")
    assert len(findings) == 8 * 2 + 12 and (findings["n"] == 2).all()  # every question listed; 2 seeds: none tested
    assert findings["verdict"].str.startswith("not tested: 2 common seeds").all()
    pairwise = pd.read_csv(out / "tables" / "pairwise.csv")
    assert len(pairwise) == 29 * 28 // 2 and pairwise["p_t_holm"].isna().all()
    errors = pd.read_csv(out / "tables" / "errors_by_digit_pair.csv")
    live = [r for r in recs if len(set(r["test_pairs"]["predicted"])) > 1]  # collapsed runs (one class) are left out
    assert len(errors) == 100 * len({(r["model"], r["activation"]) for r in live})
    assert errors["n"].sum() == 250 * len(live)  # every test pair of every live run, once

    report = (out / "report.md").read_text()
    assert f"{SMOKE_RUNS} run records in 29 cells (a cell: one config, its seeds aside): {SMOKE_RUNS} ok" in report
    assert "consistent" not in report and "## Findings" in report
    for name in (
        "accuracy",
        "training_time",
        "convergence",
        "errors_by_digit_pair",
        "errors_by_difference",
        "aux_digits",
    ):
        assert f"figures/{name}.png" in report
        assert (out / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert f"sweep {SMOKE_RUNS}/{SMOKE_RUNS}" in done.stdout + done.stderr
