"""The few statistics the benchmark reports: t confidence intervals, Welch's t-test from
aggregates (mean, SD, n), and Holm's correction for testing many rows at once."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def t_interval(mean: float, sd: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Confidence interval of a mean from n samples with sample SD ``sd`` (NaN when n < 2)."""
    if n < 2:
        return math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return mean - half, mean + half


def welch(mean1: float, sd1: float, n1: int, mean2: float, sd2: float, n2: int, level: float = 0.95) -> dict[str, float]:
    """Welch's unequal-variance t-test of mean1 - mean2 from aggregates: difference, its
    confidence interval, t, Welch-Satterthwaite degrees of freedom, two-sided p."""
    diff = mean1 - mean2
    undefined = {"diff": diff, "diff_ci_low": math.nan, "diff_ci_high": math.nan, "t": math.nan, "df": math.nan, "p": math.nan}
    if n1 < 2 or n2 < 2:
        return undefined
    v1, v2 = sd1**2 / n1, sd2**2 / n2
    se = math.sqrt(v1 + v2)
    if se == 0:
        return undefined
    df = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
    t = diff / se
    half = stats.t.ppf(0.5 + level / 2, df) * se
    return {"diff": diff, "diff_ci_low": diff - half, "diff_ci_high": diff + half, "t": t, "df": df, "p": 2 * stats.t.sf(abs(t), df)}


def holm(p_values: list[float] | np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaNs stay NaN and do not count as tests)."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid])]
    m, running = len(order), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted
