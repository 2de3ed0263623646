"""The statistics of the analysis, each a thin wrapper over scipy or statsmodels: t intervals,
Welch's test and TOST equivalence from aggregates (the published numbers come only as mean, SD,
n), paired tests on seed-matched runs, McNemar's exact test on per-pair outcomes, Holm's
family-wise correction, Friedman's test of a ranking, power (statsmodels ``TTestPower``) and
Wilson intervals. Two are our own, each checked in the tests against an independent computation:
the exact signed-rank distribution (a convolution over the 2^n sign flips; tests: brute-force
enumeration and scipy's permutation method) and the test-set share of a paired difference's
variance (from the discordant pairs).

Every test returns NaN where it is undefined (too few samples, no variation) instead of raising,
so that tables keep one row per comparison and say why a number is missing."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar as _mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from statsmodels.stats.proportion import proportion_confint

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
    """Wilcoxon's signed-rank two-sided p of differences ``d``, exact for every n: T+ against its
    distribution over all 2^n sign flips, ties given average ranks and zero differences ranked but
    never signed (Pratt's method). This is the permutation distribution that scipy's
    ``wilcoxon(method=PermutationMethod())`` enumerates for n <= 13; scipy's ``method="exact"``
    table holds only for untied, non-zero differences and its normal approximation gives p below
    the exact floor 2/2^n. Pass integer differences (counts of correct test pairs): ties are then
    exact, not float equality."""
    d = np.asarray(d, dtype=float)
    if not np.any(d != 0):
        return 1.0
    ranks = stats.rankdata(np.abs(d))
    t_plus = int(np.rint(2 * ranks[d > 0].sum()))
    # the null distribution of T+ over the sign flips, indexed by 2·T+ (average ranks of ties are multiples
    # of 1/2, so doubled ranks are integers): the product of (1 + x^r) / 2 over the non-zero ranks r
    doubled = np.rint(2 * ranks[d != 0]).astype(int)
    dist = np.zeros(doubled.sum() + 1)
    dist[0] = 1.0
    for r in doubled:
        dist[r:] += dist[: len(dist) - r]  # numpy copies the overlapping input first
        dist /= 2
    low, high = dist[: t_plus + 1].sum(), dist[t_plus:].sum()
    return float(min(1.0, 2 * min(low, high)))


def paired(
    a: Sequence[float], b: Sequence[float], level: float = 0.95, counts: Sequence[int] | None = None
) -> dict[str, float]:
    """Paired comparison of a - b over matched samples (seeds): n, mean difference and its t
    confidence interval, the paired t-test's p (scipy ``ttest_rel``), Wilcoxon's exact signed-rank
    p (``wilcoxon``, on ``counts`` where given: the per-seed differences of correct test pairs,
    integers, so that ties are exact), and Cohen's d_z (mean difference / SD of the differences)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = a - b
    n = len(d)
    out = {"n": n, "diff": float(d.mean()) if n else NAN}
    out |= dict.fromkeys(("diff_ci_low", "diff_ci_high", "p_t", "p_wilcoxon", "d_z"), NAN)
    if n < 2:
        return out
    sd = float(d.std(ddof=1))
    out["p_wilcoxon"] = wilcoxon(d if counts is None else np.asarray(counts))
    if sd < 1e-12:  # every seed gives the same difference (up to float rounding): t is 0 or infinite
        out["diff_ci_low"] = out["diff_ci_high"] = out["diff"]
        out["p_t"] = 1.0 if abs(out["diff"]) < 1e-12 else 0.0
        return out
    result = stats.ttest_rel(a, b)
    ci = result.confidence_interval(level)
    out.update(diff_ci_low=float(ci.low), diff_ci_high=float(ci.high), p_t=float(result.pvalue), d_z=out["diff"] / sd)
    return out


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


def accuracy_interval(mean: float, sd: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """The t interval of a mean accuracy (``t_interval``) clipped to [0, 1]: an accuracy cannot
    leave it, and clipping never removes the true mean from the interval, so coverage is kept."""
    low, high = t_interval(mean, sd, n, level)
    if math.isnan(low):
        return low, high
    return max(0.0, low), min(1.0, high)


POWER = 0.8  # the power at which detectable effects and seeds needed are stated
MAX_SEEDS = 10_000  # seeds needed beyond this are reported as "more than"
_T_POWER = TTestPower()


def _power(dz: float, n: float, alpha: float, alternative: str = "two-sided") -> float:
    """statsmodels' power of a one-sample (paired) t-test at standardized effect ``dz``. Where its
    noncentral t gives NaN (huge effects on a few seeds), the far tail is dropped (two-sided: the
    upper tail at alpha / 2, short by less than alpha / 2), and where that fails too the power is 1."""
    value = float(_T_POWER.power(dz, n, alpha, alternative=alternative))
    if math.isnan(value) and alternative == "two-sided":
        value = float(_T_POWER.power(abs(dz), n, alpha / 2, alternative="larger"))
    return 1.0 if math.isnan(value) and dz > 0 else value


def _fewest_seeds(power_at: Callable[[float], float], power: float) -> float:
    """The smallest n in [2, MAX_SEEDS] at which ``power_at(n)`` reaches ``power`` (power grows with
    n: bisection on integers), inf where MAX_SEEDS does not."""
    if power_at(MAX_SEEDS) < power:
        return math.inf
    if power_at(2) >= power:
        return 2.0
    low, high = 2, MAX_SEEDS  # power_at(high) >= power; low is below the answer
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if power_at(mid) >= power else (mid, high)
    return float(high)


@functools.cache
def detectable_dz(n: int, alpha: float, power: float = POWER) -> float:
    """The smallest standardized effect d_z (mean difference / SD of the differences) that a
    two-sided paired t-test on n seeds detects at ``alpha`` with ``power`` (statsmodels
    ``TTestPower``); NaN when n < 2."""
    if n < 2:
        return NAN
    return float(_T_POWER.solve_power(effect_size=None, nobs=n, alpha=alpha, power=power))


def seeds_for_difference(effect: float, sd: float, alpha: float, power: float = POWER) -> float:
    """About how many seeds a two-sided paired t-test needs to detect a mean difference ``effect``
    with SD of the differences ``sd`` at ``alpha`` and ``power`` (statsmodels ``TTestPower``'s
    power, the fewest whole seeds that reach it); inf beyond MAX_SEEDS or without an effect."""
    if not (sd > 0) or not math.isfinite(effect) or effect == 0:
        return math.inf
    dz = abs(effect) / sd
    return _fewest_seeds(lambda n: _power(dz, n, alpha), power)


def tost_power(diff: float, sd: float, n: float, margin: float, alpha: float) -> float:
    """Power of the paired TOST at true difference ``diff``: each one-sided test's power
    (statsmodels ``TTestPower``, alternative 'larger', at effect (margin ∓ |diff|) / sd), less one
    (the usual approximation; exact enough where both sides are likely to reject)."""
    near, far = (margin - abs(diff)) / sd, (margin + abs(diff)) / sd
    return _power(near, n, alpha, "larger") + _power(far, n, alpha, "larger") - 1


def seeds_for_equivalence(diff: float, sd: float, margin: float, alpha: float, power: float = POWER) -> float:
    """About how many seeds a paired TOST needs to show |difference| < ``margin`` when the true
    difference is ``diff`` (``tost_power``); inf when |diff| >= margin or beyond MAX_SEEDS."""
    if not (sd > 0) or abs(diff) >= margin:
        return math.inf
    return _fewest_seeds(lambda n: tost_power(diff, sd, n, margin, alpha), power)


def tightest_margin(diff: float, sd: float, n: int, alpha: float) -> float:
    """The smallest equivalence margin a paired TOST at ``alpha`` shows on these differences: the
    largest |bound| of the (1 - 2·alpha) t interval of the mean difference."""
    if n < 2 or not math.isfinite(sd):
        return NAN
    half = stats.t.ppf(1 - alpha, n - 1) * sd / math.sqrt(n) if sd > 0 else 0.0
    return abs(diff) + half


def proportion_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval of a proportion k / n (statsmodels ``proportion_confint``)."""
    if n < 1:
        return NAN, NAN
    low, high = proportion_confint(k, n, alpha=1 - level, method="wilson")
    return float(low), float(high)


def test_set_variance(a_only: np.ndarray, b_only: np.ndarray, n_pairs: np.ndarray) -> float:
    """The variance one seed's accuracy difference has from sampling its test pairs alone (the
    trained models held fixed), averaged over seeds: per seed, the per-pair differences (+1 where
    only A is right, -1 where only B is, 0 where both agree) have variance
    (discordant / n - d²)·n / (n - 1), and their mean that over n. Pairs both cells get right or
    wrong add nothing: pairing cancels the errors the two cells share."""
    n = np.asarray(n_pairs, dtype=float)
    disc = (np.asarray(a_only) + np.asarray(b_only)) / n
    d = (np.asarray(a_only) - np.asarray(b_only)) / n
    return float(np.mean((disc - d**2) / (n - 1)))
