"""Sequential paired comparisons: decide "higher", "lower" or "equivalent within a margin" while seeds
are added, with the false-decision rate held at alpha however many of the planned looks are taken.

The design is a group-sequential test with an alpha-spending function (Lan & DeMets 1983). At a
look after n paired seeds, with the mean paired difference m and its standard error se = s/sqrt(n):

- "higher" / "lower" when |m / se| >= c_k (two-sided, alpha spent by f(n / n_max; alpha));
- "equivalent within +-delta" when both (m + delta) / se >= e_k and (delta - m) / se >= e_k (the
  two one-sided tests of TOST, each spending f(n / n_max; alpha)).

The boundaries c_k, e_k are calibrated on the t-statistic itself, not on its normal approximation:
under the null the joint law of (T_1, ..., T_K) at looks n_1 < ... < n_K is free of the unknown
variance (for normal differences), so one seeded simulation of it gives boundaries that are exact up
to Monte Carlo error, at any n (classic boundaries assume a known variance and are anti-conservative
with 5-40 seeds). Where a look's alpha increment is too small to calibrate by simulation, the
boundary is the marginal t quantile at that increment (a union bound: never anti-conservative).

No maintained Python package computes group-sequential boundaries (the references are R's gsDesign,
rpact and ldbounds); ``tests/test_sequential.py`` checks these boundaries against the published
normal-theory values at large n, and the error rates by independent simulation."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats

SIMULATIONS = 200_000  # null sequences that calibrate the boundaries (seeded: the same plan, the same boundaries)
CALIBRATION_SEED = 20190601
MIN_CROSSINGS = 50  # fewer expected crossings than this at a look: the marginal t quantile (union bound)
SPENDING = ("obrien_fleming", "pocock")


def spent(fraction: float, alpha: float, spending: str = "obrien_fleming") -> float:
    """The alpha spent by information fraction ``fraction`` (0..1] (Lan-DeMets spending functions:
    O'Brien-Fleming-like spends little early and keeps the final look near the fixed design's level;
    Pocock-like spends evenly, stopping earlier on large effects at the cost of the final look)."""
    t = min(max(fraction, 0.0), 1.0)
    if t == 0.0:
        return 0.0
    if spending == "obrien_fleming":
        return float(2.0 - 2.0 * stats.norm.cdf(stats.norm.ppf(1.0 - alpha / 2.0) / np.sqrt(t)))
    if spending == "pocock":
        return float(alpha * np.log(1.0 + (np.e - 1.0) * t))
    raise ValueError(f"spending={spending!r} is not allowed: one of {', '.join(SPENDING)}")


@lru_cache(maxsize=8)
def _null_t_paths(n_max: int, simulations: int, seed: int) -> np.ndarray:
    """t-statistics of ``simulations`` null sequences of standard normal differences after each
    n = 1..n_max (column n-1; nan for n = 1). The t law is free of the variance: one set serves all."""
    rng = np.random.default_rng(seed)
    n = np.arange(1, n_max + 1, dtype=np.float64)
    out = np.empty((simulations, n_max), dtype=np.float32)
    for start in range(0, simulations, 20_000):  # in chunks: the temporaries stay ~100 MB
        x = rng.standard_normal((min(20_000, simulations - start), n_max))
        mean = np.cumsum(x, axis=1) / n
        var = (np.cumsum(x * x, axis=1) - n * mean * mean) / np.maximum(n - 1.0, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[start : start + len(x)] = np.where(n > 1, mean / np.sqrt(var / n), np.nan)
    return out


def boundaries(
    looks: Sequence[int],
    n_max: int,
    alpha: float,
    *,
    two_sided: bool,
    spending: str = "obrien_fleming",
    simulations: int = SIMULATIONS,
) -> list[float]:
    """The critical values of the t-statistic at looks after ``looks`` paired seeds (increasing,
    each >= 2, the last <= n_max): the first look that reaches its value decides, and the chance that
    any look decides wrongly under the null is ``alpha``, spent over n / n_max by ``spending``.
    ``two_sided``: |T| (difference, alpha over both directions); else T (one side of TOST)."""
    if any(b <= a for a, b in itertools.pairwise(looks)) or looks[0] < 2 or looks[-1] > n_max:
        raise ValueError(f"looks {list(looks)} must increase from >= 2 seeds to at most n_max={n_max}")
    paths = _null_t_paths(n_max, simulations, CALIBRATION_SEED)
    alive = np.ones(simulations, dtype=bool)
    out: list[float] = []
    previous = 0.0
    for n in looks:
        total = spent(n / n_max, alpha, spending)
        increment = max(total - previous, 0.0)
        previous = total
        stat = paths[:, n - 1]
        stat = np.abs(stat) if two_sided else stat
        if increment * simulations < MIN_CROSSINGS:
            tail = increment / 2.0 if two_sided else increment
            crit = float(stats.t.isf(tail, n - 1)) if tail > 0 else float("inf")
        else:
            # the value that the still-undecided paths exceed for exactly ``increment`` of all paths
            live = np.sort(stat[alive])[::-1]
            k = round(increment * simulations)
            crit = float(live[min(k, len(live) - 1)]) if k > 0 else float("inf")
        out.append(crit)
        alive &= ~(stat >= crit)
    return out


@dataclass(frozen=True)
class Look:
    """One look at ``n`` paired differences (points of accuracy when the inputs are)."""

    n: int
    mean: float
    sd: float
    t: float  # mean / se
    c: float  # the difference boundary of this look
    e: float  # the equivalence boundary of this look (inf without a margin)
    ci_low: float  # repeated confidence interval: mean -+ c * se, valid at 1 - alpha over all looks
    ci_high: float
    verdict: str  # "higher", "lower", "equivalent", "" (no decision at this look)

    def as_dict(self) -> dict[str, float | int | str]:
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in self.__dict__.items()}


def look(differences: np.ndarray, c: float, e: float, margin: float | None) -> Look:
    """The decision at one look on the paired differences observed so far (a minus b)."""
    n = len(differences)
    mean = float(np.mean(differences))
    sd = float(np.std(differences, ddof=1)) if n > 1 else float("nan")
    se = sd / np.sqrt(n)
    if se == 0.0:  # every difference alike: no doubt left about their mean
        t = 0.0 if mean == 0.0 else float(np.copysign(np.inf, mean))
        tost = np.inf if margin is not None and abs(mean) < margin else -np.inf
    else:
        t = mean / se
        tost = min(mean + margin, margin - mean) / se if margin is not None else -np.inf  # the smaller one-sided t
    verdict = ""
    if t >= c:
        verdict = "higher"
    elif t <= -c:
        verdict = "lower"
    elif margin is not None and tost >= e:
        verdict = "equivalent"
    half = c * se if np.isfinite(c) else float("inf")
    return Look(n, mean, sd, float(t), c, e, mean - half, mean + half, verdict)


@dataclass(frozen=True)
class Plan:
    """A sequential question's design, fixed before its first look: changing it after looking would
    void its error control, so a stored plan is compared with the one asked for."""

    alpha: float  # this question's share of the family's alpha
    margin: float | None  # the smallest difference that matters, in the units of the differences
    step: int
    max_seeds: int
    first: int = 5
    spending: str = "obrien_fleming"

    def looks(self) -> list[int]:
        """The planned looks: first, first + step, ... and always the budget itself."""
        return [*range(self.first, self.max_seeds, self.step), self.max_seeds]  # range stops below the budget

    def boundaries(self, looks: Sequence[int]) -> tuple[list[float], list[float]]:
        c = boundaries(looks, self.max_seeds, self.alpha, two_sided=True, spending=self.spending)
        if self.margin is None:
            return c, [float("inf")] * len(looks)
        e = boundaries(looks, self.max_seeds, self.alpha, two_sided=False, spending=self.spending)
        return c, e


def run_looks(differences: Sequence[float], plan: Plan) -> list[Look]:
    """Every planned look that ``differences`` (in seed order) reach, up to the first decision."""
    d = np.asarray(differences, dtype=float)
    reached = [n for n in plan.looks() if n <= len(d)]
    if not reached:
        return []
    c, e = plan.boundaries(reached)
    out = []
    for n, ck, ek in zip(reached, c, e, strict=True):
        out.append(look(d[:n], ck, ek, plan.margin))
        if out[-1].verdict:
            break
    return out


def simulate(
    plan: Plan,
    effect: float,
    sd: float,
    sequences: int,
    seed: int,
    *,
    naive: bool = False,
    noise: str = "normal",
) -> dict[str, float]:
    """Run ``sequences`` simulated questions through the plan (or, ``naive``, stop at the first look
    whose fixed-n paired t-test has p < alpha): the share of each verdict and the mean seeds used.
    ``noise``: "normal", "t3" (heavy tails, scaled to ``sd``) or "rounded" (multiples of 0.1 points:
    accuracies on 1000 test pairs)."""
    rng = np.random.default_rng(seed)
    n_max = plan.max_seeds
    if noise == "t3":
        x = rng.standard_t(3, (sequences, n_max)) / np.sqrt(3.0)
    else:
        x = rng.standard_normal((sequences, n_max))
    d = effect + sd * x
    if noise == "rounded":
        d = np.round(d * 10.0) / 10.0
    looks = plan.looks()
    if naive:
        c = [float(stats.t.isf(plan.alpha / 2.0, n - 1)) for n in looks]
        e = [float(stats.t.isf(plan.alpha, n - 1)) for n in looks]
    else:
        c, e = plan.boundaries(looks)
    verdict = np.full(sequences, "", dtype=object)
    used = np.full(sequences, n_max, dtype=float)
    open_ = np.ones(sequences, dtype=bool)
    for n, ck, ek in zip(looks, c, e, strict=True):
        part = d[:, :n]
        mean = part.mean(axis=1)
        se = part.std(axis=1, ddof=1) / np.sqrt(n)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(se > 0, mean / se, np.sign(mean) * np.inf)
            tost = (
                np.minimum((mean + plan.margin) / se, (plan.margin - mean) / se)
                if plan.margin is not None
                else np.full(sequences, -np.inf)
            )
        for name, hit in (("higher", t >= ck), ("lower", t <= -ck), ("equivalent", tost >= ek)):
            now = open_ & hit
            verdict[now] = name
            used[now] = n
            open_ &= ~now
    shares = {name: float(np.mean(verdict == name)) for name in ("higher", "lower", "equivalent")}
    return {**shares, "undecided": float(np.mean(verdict == "")), "mean_seeds": float(used.mean())}
