"""The sequential design of mnist_pairs.decide, proven by simulation (no training): its boundaries
against published values, its error rates under the null and at the margin, and the inflation of a
naive "stop at the first p < 0.05" in the same harness."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from mnist_pairs.analysis.sequential import Plan, boundaries, look, run_looks, simulate, spent

SEQUENCES = 20_000  # Monte Carlo SE of a 5 % rate: 0.15 points


def mc_bound(rate: float, n: int = SEQUENCES) -> float:
    """rate + 3 Monte Carlo standard errors: what a true rate of ``rate`` stays below."""
    return rate + 3.0 * math.sqrt(rate * (1.0 - rate) / n)


def test_spending_functions_spend_alpha_by_the_end_and_never_give_it_back():
    for spending in ("obrien_fleming", "pocock"):
        values = [spent(t, 0.05, spending) for t in np.linspace(0.05, 1.0, 20)]
        assert all(b >= a for a, b in itertools.pairwise(values))
        assert values[-1] == pytest.approx(0.05)
    assert spent(0.5, 0.05, "obrien_fleming") == pytest.approx(0.00557, abs=1e-5)  # 2 - 2 Phi(1.95996 / sqrt(.5))
    with pytest.raises(ValueError, match="spending='linear' is not allowed"):
        spent(0.5, 0.05, "linear")


def normal_theory_boundaries(fractions: tuple[float, ...], alpha: float) -> list[float]:
    """Lan-DeMets O'Brien-Fleming boundaries for a known variance, worked out independently: the
    z-statistics at information fractions t_j are jointly normal with corr sqrt(t_i / t_j), and
    c_k solves P(no |Z_j| >= c_j for j < k, and |Z_k| >= c_k) = spent(t_k) - spent(t_{k-1})."""
    from scipy import optimize, stats

    cov = np.array([[math.sqrt(min(a, b) / max(a, b)) for b in fractions] for a in fractions])
    out: list[float] = []
    for k, t in enumerate(fractions, start=1):
        target = 1.0 - spent(t, alpha)  # P(no crossing up to look k)

        def inside(c: float, k: int = k, target: float = target) -> float:
            upper = np.array([*out, c])
            mvn = stats.multivariate_normal(mean=np.zeros(k), cov=cov[:k, :k])
            return float(mvn.cdf(upper, lower_limit=-upper)) - target

        out.append(optimize.brentq(inside, 0.5, 10.0, xtol=1e-6))
    return out


@pytest.mark.parametrize("fractions", [(0.5, 1.0), (1 / 3, 2 / 3, 1.0)])
def test_boundaries_at_large_n_are_the_normal_theory_ones(fractions):
    n_max = 600  # t with >= 199 degrees of freedom: within ~1 % of the normal
    looks = [round(f * n_max) for f in fractions]
    ours = boundaries(looks, n_max, 0.05, two_sided=True, simulations=100_000)
    expected = normal_theory_boundaries(fractions, 0.05)
    assert expected[0] == pytest.approx(1.959964 / math.sqrt(fractions[0]), rel=1e-4)  # the first look alone
    assert ours == pytest.approx(expected, rel=0.015)


def test_boundaries_with_few_seeds_are_wider_than_normal_theory():
    """At 5-20 seeds the t-statistic has heavy tails: normal-theory boundaries would reject too often."""
    ours = boundaries([10, 20], 20, 0.05, two_sided=True)
    normal = normal_theory_boundaries((0.5, 1.0), 0.05)
    assert ours[0] > normal[0] * 1.1 and ours[1] > normal[1] * 1.03


@pytest.mark.parametrize("noise", ["normal", "t3", "rounded"])
def test_no_effect_is_called_higher_or_lower_at_most_alpha_of_the_time(noise):
    plan = Plan(alpha=0.05, margin=None, step=5, max_seeds=20)
    ours = simulate(plan, effect=0.0, sd=1.5, sequences=SEQUENCES, seed=11, noise=noise)
    assert ours["higher"] + ours["lower"] <= mc_bound(0.05)


def test_stopping_at_the_first_significant_look_inflates_the_error_and_the_design_does_not():
    """The same looks (5, 10, 15, 20 seeds), the same simulated null sequences: a fixed-n t-test at each
    look, stopping at the first p < 0.05, is wrong about 13 % of the time."""
    plan = Plan(alpha=0.05, margin=None, step=5, max_seeds=20)
    naive = simulate(plan, 0.0, 1.5, SEQUENCES, seed=12, naive=True)
    ours = simulate(plan, 0.0, 1.5, SEQUENCES, seed=12)
    assert naive["higher"] + naive["lower"] > mc_bound(0.05) + 0.03
    assert ours["higher"] + ours["lower"] <= mc_bound(0.05)


def test_a_true_difference_at_the_margin_is_called_equivalent_at_most_alpha_of_the_time():
    plan = Plan(alpha=0.05, margin=1.0, step=5, max_seeds=40)
    for effect in (1.0, -1.0):
        ours = simulate(plan, effect, 1.5, SEQUENCES, seed=13)
        assert ours["equivalent"] <= mc_bound(0.05)
        assert ours["higher" if effect < 0 else "lower"] <= mc_bound(0.025)  # the wrong direction


def test_the_design_has_the_fixed_designs_power_with_fewer_seeds_on_average():
    """Effect = margin = 1 point, SD of the differences 1.5 points, budget 40 seeds: the design
    detects it about as often as a fixed 40-seed t-test, and stops earlier on average."""
    from statsmodels.stats.power import TTestPower

    plan = Plan(alpha=0.05, margin=1.0, step=5, max_seeds=40)
    ours = simulate(plan, 1.0, 1.5, SEQUENCES, seed=14)
    fixed = TTestPower().power(effect_size=1.0 / 1.5, nobs=40, alpha=0.05, alternative="two-sided")
    assert ours["higher"] >= fixed - 0.05
    assert ours["mean_seeds"] < 30


def test_a_look_decides_by_its_boundaries():
    d = np.array([1.0, 1.2, 0.8, 1.1, 0.9])
    t = d.mean() / (d.std(ddof=1) / math.sqrt(5))
    assert look(d, c=t - 0.01, e=math.inf, margin=None).verdict == "higher"
    assert look(-d, c=t - 0.01, e=math.inf, margin=None).verdict == "lower"
    assert look(d, c=t + 0.01, e=math.inf, margin=None).verdict == ""
    tost = (2.0 - d.mean()) / (d.std(ddof=1) / math.sqrt(5))
    assert look(d, c=100.0, e=tost - 0.01, margin=2.0).verdict == "equivalent"
    assert look(d, c=100.0, e=tost + 0.01, margin=2.0).verdict == ""
    assert look(np.zeros(5), c=100.0, e=100.0, margin=0.5).verdict == "equivalent"  # no spread, mean 0


def test_looks_stop_at_the_first_decision_and_are_the_same_when_recomputed():
    plan = Plan(alpha=0.05, margin=None, step=5, max_seeds=40)
    rng = np.random.default_rng(5)
    d = 3.0 + rng.standard_normal(40)
    looks = run_looks(d, plan)
    assert looks[-1].verdict == "higher" and all(not lk.verdict for lk in looks[:-1])
    assert looks[-1].n < 40
    assert run_looks(d[: looks[-1].n], plan) == looks  # later seeds change nothing already decided
    assert plan.looks() == [5, 10, 15, 20, 25, 30, 35, 40]
    assert Plan(alpha=0.05, margin=None, step=7, max_seeds=20).looks() == [5, 12, 19, 20]
