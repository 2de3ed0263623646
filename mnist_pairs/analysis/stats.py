"""The statistics of the analysis, each a thin wrapper over scipy or statsmodels (no formulas of
our own): t intervals, Welch's test and TOST equivalence from aggregates (the published numbers
come only as mean, SD, n), paired tests on seed-matched runs, McNemar's exact test on per-pair
outcomes, Holm's family-wise correction, and Friedman's test of a ranking.

Every test returns NaN where it is undefined (too few samples, no variation) instead of raising,
so that tables keep one row per comparison and say why a number is missing."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar as _mcnemar
from statsmodels.stats.multitest import multipletests

NAN = math.nan


def t_interval(mean: float, sd: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Confidence interval of a mean from n samples with sample SD ``sd`` (NaN when n < 2)."""
    if n < 2 or not math.isfinite(sd):
        return NAN, NAN
    if sd == 0:
        return mean, mean
    low, high = stats.t.interval(level, n - 1, loc=mean, scale=sd / math.sqrt(n))
    return float(low), float(high)


def welch(
    mean1: float, sd1: float, n1: int, mean2: float, sd2: float, n2: int, level: float = 0.95
) -> dict[str, float]:
    """Welch's unequal-variance t-test of mean1 - mean2 from aggregates (scipy's
    ``ttest_ind_from_stats``): difference, its confidence interval, t, Welch-Satterthwaite degrees
    of freedom, two-sided p."""
    diff = mean1 - mean2
    out = {"diff": diff, "diff_ci_low": NAN, "diff_ci_high": NAN, "t": NAN, "df": NAN, "p": NAN}
    v1, v2 = (sd1**2 / n1, sd2**2 / n2) if n1 >= 2 and n2 >= 2 else (NAN, NAN)
    if not (v1 + v2 > 0):
        return out
    t, p = stats.ttest_ind_from_stats(mean1, sd1, n1, mean2, sd2, n2, equal_var=False)
    df = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
    half = stats.t.ppf(0.5 + level / 2, df) * math.sqrt(v1 + v2)
    return {**out, "diff_ci_low": diff - half, "diff_ci_high": diff + half, "t": float(t), "df": df, "p": float(p)}


def tost(mean1: float, sd1: float, n1: int, mean2: float, sd2: float, n2: int, margin: float) -> float:
    """p of the two one-sided Welch tests (TOST) that |mean1 - mean2| < ``margin``: small p shows
    equivalence within the margin. Each side is scipy's ``ttest_ind_from_stats`` on a shifted
    mean; the TOST p is the larger of the two."""
    if n1 < 2 or n2 < 2 or not (sd1**2 / n1 + sd2**2 / n2 > 0):
        return NAN
    _, above = stats.ttest_ind_from_stats(
        mean1 + margin, sd1, n1, mean2, sd2, n2, equal_var=False, alternative="greater"
    )
    _, below = stats.ttest_ind_from_stats(mean1 - margin, sd1, n1, mean2, sd2, n2, equal_var=False, alternative="less")
    return float(max(above, below))


def wilcoxon(d: np.ndarray) -> float:
    """Wilcoxon's signed-rank p of differences ``d`` (scipy), zero differences handled by Pratt's
    method: exact without ties or zeros; with them the normal approximation with tie correction
    (scipy's exact alternative there, a permutation test over 2^n sign flips, costs ~0.2 s per
    comparison: 10 s of the 406 pairs of the benchmark grid, for a check that does not decide)."""
    tied = np.any(d == 0) or len(np.unique(np.abs(d))) < len(d)
    return float(stats.wilcoxon(d, zero_method="pratt", method="asymptotic" if tied else "exact").pvalue)


def paired(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> dict[str, float]:
    """Paired comparison of a - b over matched samples (seeds): n, mean difference and its t
    confidence interval, the paired t-test's p (scipy ``ttest_rel``), Wilcoxon's signed-rank p
    (``wilcoxon``), and
    Cohen's d_z (mean difference / SD of the differences)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = a - b
    n = len(d)
    out = {
        "n": n,
        "diff": float(d.mean()) if n else NAN,
        "diff_ci_low": NAN,
        "diff_ci_high": NAN,
        "p_t": NAN,
        "p_wilcoxon": NAN,
        "d_z": NAN,
    }
    if n < 2:
        return out
    sd = float(d.std(ddof=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # wilcoxon's normal approximation with ties
        out["p_wilcoxon"] = wilcoxon(d) if np.any(d != 0) else 1.0
    if sd < 1e-12:  # every seed gives the same difference (up to float rounding): t is 0 or infinite
        return {
            **out,
            "diff_ci_low": out["diff"],
            "diff_ci_high": out["diff"],
            "p_t": 1.0 if abs(out["diff"]) < 1e-12 else 0.0,
        }
    result = stats.ttest_rel(a, b)
    ci = result.confidence_interval(level)
    return {
        **out,
        "diff_ci_low": float(ci.low),
        "diff_ci_high": float(ci.high),
        "p_t": float(result.pvalue),
        "d_z": out["diff"] / sd,
    }


def paired_tost(a: Sequence[float], b: Sequence[float], margin: float) -> float:
    """p of the two one-sided paired tests (TOST) that |mean(a - b)| < ``margin``: scipy's
    one-sample t-test of the differences against -margin (greater) and +margin (less)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if len(d) < 2:
        return NAN
    if d.std(ddof=1) < 1e-12:
        return 0.0 if abs(d.mean()) < margin else 1.0
    above = stats.ttest_1samp(d, -margin, alternative="greater").pvalue
    below = stats.ttest_1samp(d, margin, alternative="less").pvalue
    return float(max(above, below))


def mcnemar(a_only: int, b_only: int) -> float:
    """McNemar's exact test (statsmodels; a binomial test on the discordant pairs): ``a_only``
    pairs that only A gets right, ``b_only`` that only B does. 1.0 without discordant pairs."""
    if a_only + b_only == 0:
        return 1.0
    return float(_mcnemar([[0, a_only], [b_only, 0]], exact=True).pvalue)


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (statsmodels ``multipletests``); NaNs stay NaN and do not
    count as tests."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, NAN)
    valid = ~np.isnan(p)
    if valid.any():
        adjusted[valid] = multipletests(p[valid], method="holm")[1]
    return adjusted


def friedman(scores: np.ndarray) -> tuple[float, float]:
    """Friedman's test that k treatments (columns) rank alike over n blocks (rows): (chi-square,
    p), scipy's ``friedmanchisquare``; NaN with fewer than 3 treatments or 2 blocks."""
    if scores.ndim != 2 or scores.shape[1] < 3 or scores.shape[0] < 2:
        return NAN, NAN
    result = stats.friedmanchisquare(*scores.T)
    return float(result.statistic), float(result.pvalue)
