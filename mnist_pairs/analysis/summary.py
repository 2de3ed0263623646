"""One row per cell: how many runs it has in each state, and over its finished runs the mean, SD
and 95% CI of test accuracy (the t interval clipped to [0, 1]), train accuracy, time and the digit
branch's accuracy; the seed-to-seed SD beside the SD that test-set sampling alone would give; and,
for cells whose runs collapse, the collapse rate and the accuracy of the runs that train."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from mnist_pairs.analysis.stats import accuracy_interval, proportion_interval
from mnist_pairs.results.records import setting

REPORT_ORDER = [
    "fcnn",
    "fcnn_dropout",
    "fcnn_bn",
    "fcnn_bn_dropout",
    "cnn3",
    "cnn4",
    "cnn3_bn",
    "cnn4_bn",
    "resnet",
    "siamese_cnn",
    "siamese_cnn_aux",
    "siamese_resnet",
    "siamese_resnet_aux",
]
ACTIVATION_ORDER = ["relu", "tanh", "leakyrelu"]


def cell_order(runs: pd.DataFrame) -> list[str]:
    """Cells in the report's model order (any other model after them, alphabetically), then by
    activation (ReLU, tanh, LeakyReLU), each model's variants after its base runs."""
    rank = {m: i for i, m in enumerate([*REPORT_ORDER, *sorted(set(runs["model"]) - set(REPORT_ORDER))])}
    act = {a: i for i, a in enumerate(ACTIVATION_ORDER)}
    key = [
        (rank[r.model], act.get(r.activation, len(act)), r.activation, r.variant, r.experiment, r.cell)
        for r in runs.drop_duplicates("cell").itertuples()
    ]
    return [k[-1] for k in sorted(key)]


def seeds_text(seeds: pd.Series) -> str:
    """Seeds as ranges: 0-9,12."""
    values = np.unique(seeds.astype(int))
    runs = np.split(values, np.flatnonzero(np.diff(values) != 1) + 1)  # split after a gap
    return ",".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in runs)


def binomial_sd(p: float, n_test: Any) -> float:
    """The SD of one run's test accuracy from sampling its ``n_test`` test pairs alone,
    sqrt(p(1-p)/n_test): what seed-to-seed SD would be if training never varied."""
    if not isinstance(n_test, int) or n_test < 1 or math.isnan(p):
        return math.nan
    return math.sqrt(p * (1 - p) / n_test)


def modes(ok: pd.DataFrame) -> dict[str, float]:
    """Collapse rate of the finished runs (one class for every test pair) with its Wilson 95%
    interval, and the mean test accuracy of the runs that train: a cell whose runs split between
    collapse and training has a mean that describes neither."""
    n, k = len(ok), int(ok["collapsed"].sum())
    low, high = proportion_interval(k, n)
    trained = ok.loc[~ok["collapsed"].astype(bool), "test_acc"].dropna()
    return {
        "collapse_rate": k / n if n else math.nan,
        "collapse_rate_low": low,
        "collapse_rate_high": high,
        "n_trained": len(trained),
        "test_acc_mean_trained": trained.mean() if len(trained) else math.nan,
    }


def summarize(runs: pd.DataFrame, configs: dict[str, dict[str, Any]] | None = None) -> pd.DataFrame:
    """Per cell: ``n_runs`` records, of which ``n_ok`` finished, ``n_failed``, ``n_diverged`` (NaN
    loss) and ``n_collapsed`` (finished, but one class for every test pair); ``n`` finished runs with
    a test accuracy, over which the test statistics are taken (the other means are over finished
    runs that have the metric); ``test_acc_sd_binomial`` from the cell's ``data.n_test`` (in
    ``configs``); ``n_params`` from a finished run."""
    out = []
    configs = configs or {}
    for cell in cell_order(runs):
        group = runs[runs["cell"] == cell]
        ok = group[group["status"] == "ok"]
        test = ok["test_acc"].dropna()
        mean, sd = test.mean(), test.std(ddof=1)
        low, high = accuracy_interval(mean, sd, len(test))
        out.append(
            {
                "cell": cell,
                **group.iloc[0][["model", "activation", "variant", "experiment"]].to_dict(),
                "seeds": seeds_text(group["seed"]),
                "n_runs": len(group),
                "n_ok": len(ok),
                "n_failed": int((group["status"] == "failed").sum()),
                "n_diverged": int((group["status"] == "diverged").sum()),
                "n_collapsed": int(ok["collapsed"].sum()),
                "n": len(test),
                "test_acc_mean": mean,
                "test_acc_sd": sd,
                "test_acc_ci_low": low,
                "test_acc_ci_high": high,
                "test_acc_sd_binomial": binomial_sd(mean, setting(configs.get(cell, {}), "data.n_test")),
                **modes(ok),
                "train_acc_mean": ok["train_acc"].mean(),
                "train_acc_sd": ok["train_acc"].std(ddof=1),
                "time_mean_s": ok["train_time_s"].mean(),
                "time_sd_s": ok["train_time_s"].std(ddof=1),
                "n_params": int(ok["n_params"].iloc[0]) if len(ok) else math.nan,
                # with data.n_val > 0: what model selection may read (the test columns are for reporting only)
                "val_acc_mean": ok["val_acc"].mean(),
                "val_acc_sd": ok["val_acc"].std(ddof=1),
                "digit_acc_mean": ok["digit_acc"].mean(),
            }
        )
    return pd.DataFrame(out)
