"""The researcher's own question answered: planned comparisons, margins, power and seeds needed,
where a difference's variance comes from, bimodal cells, and each defect of the analysis found by
an audit, every statistic against an independent computation (brute-force enumeration, scipy's
noncentral t, formulas written out here)."""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pandas as pd
import pytest
import scikit_posthocs
import yaml
from scipy import optimize, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

from mnist_pairs.aggregate import aggregate, analyse, draw_figures
from mnist_pairs.analysis import paired as paired_tables
from mnist_pairs.analysis.collect import PairOutcomes, collect
from mnist_pairs.analysis.published import compare_with_published
from mnist_pairs.analysis.report import write_report
from mnist_pairs.analysis.stats import wilcoxon
from mnist_pairs.analysis.summary import summarize
from mnist_pairs.results import records
from tests.conftest import run_cli
from tests.test_analysis import config, hand_made

# --- Wilcoxon: exact with ties and zeros ----------------------------------------------------------


def signed_rank_p_by_enumeration(d: np.ndarray) -> float:
    """Two-sided p of T+ over all 2^n sign vectors, enumerated one by one (Pratt: zeros ranked,
    never signed)."""
    ranks = stats.rankdata(np.abs(d))
    observed = ranks[d > 0].sum()
    nonzero = ranks[d != 0]
    sums = np.array(
        [sum(r for r, s in zip(nonzero, signs) if s) for signs in itertools.product((0, 1), repeat=len(nonzero))]
    )
    low, high = np.mean(sums <= observed + 1e-9), np.mean(sums >= observed - 1e-9)
    return min(1.0, 2 * min(low, high))


def test_wilcoxon_is_exact_with_ties_and_zeros():
    # the audit's case: the normal approximation gave 0.042, below the floor 2/2^5 the report states
    assert wilcoxon(np.array([3, 3, 5, 7, 9])) == pytest.approx(0.0625)
    rng = np.random.default_rng(3)
    for n in (5, 8, 11, 13):
        d = rng.integers(-4, 6, n)  # integer differences: ties and zeros are the usual case
        assert wilcoxon(d) == pytest.approx(signed_rank_p_by_enumeration(d))
        permutation = stats.wilcoxon(d, zero_method="pratt", method=stats.PermutationMethod()).pvalue
        assert wilcoxon(d) == pytest.approx(permutation)  # scipy enumerates all 2^n for n <= 13
    untied = rng.permutation(np.arange(1, 19)) * rng.choice([-1, 1], 18)
    assert wilcoxon(untied) == pytest.approx(stats.wilcoxon(untied, method="exact").pvalue)
    assert wilcoxon(np.zeros(6)) == 1.0


def test_wilcoxon_ties_by_counts_of_correct_pairs_not_float_equality():
    """Accuracies 0.803 - 0.8 and 0.81 - 0.813 tie as counts (3 pairs of 1000) but not as floats."""
    base = [0.8, 0.813, 0.75, 0.77, 0.79, 0.81]
    other = [0.803, 0.81, 0.755, 0.777, 0.799, 0.811]
    cells = {
        "a/relu": {"model": "a", "activation": "relu", "acc": dict(enumerate(other))},
        "b/relu": {"model": "b", "activation": "relu", "acc": dict(enumerate(base))},
    }
    floats = np.subtract(other, base)
    assert len(np.unique(np.abs(floats))) == len(floats)  # float equality sees no tie
    row = paired_tables.pairwise(hand_made(cells), list(cells)).iloc[0]
    counts = np.array([3, -3, 5, 7, 9, 1])  # of 1000 test pairs (data.n_test of the config)
    assert row["p_wilcoxon"] == pytest.approx(signed_rank_p_by_enumeration(counts))
    assert row["p_wilcoxon"] != pytest.approx(signed_rank_p_by_enumeration(floats))


# --- the critical-difference figure -------------------------------------------------------------


def six_cells() -> dict[str, dict]:
    """Six cells on 10 seeds (a shared seed effect, cell effects 0.78-0.82): under an all-pairs
    clique drawing, one bar runs from rank 1.45 to 4.15 over three cells that differ from its end
    (Holm p 0.0001-0.034)."""
    rng = np.random.default_rng(45)
    seed_effect = rng.normal(0, 0.01, 10)
    means = np.sort(rng.uniform(0.78, 0.82, 6))
    sds = rng.uniform(0.002, 0.02, 6)
    return {
        f"m{i}/relu": {
            "model": f"m{i}",
            "activation": "relu",
            "acc": {s: round(float(means[i] + seed_effect[s] + rng.normal(0, sds[i])), 3) for s in range(10)},
        }
        for i in range(6)
    }


def separated_by_hand(cells: dict[str, dict]) -> tuple[pd.Series, dict[frozenset, bool]]:
    """Mean ranks over the seeds and, per pair, whether the paired t-test (scipy) on those seeds,
    Holm over all pairs (statsmodels), separates it."""
    table = pd.DataFrame({c: pd.Series(v["acc"]) for c, v in cells.items()})
    ranks = table.rank(axis=1, ascending=False).mean()
    pairs = list(itertools.combinations(table.columns, 2))
    p = [stats.ttest_rel(table[a], table[b]).pvalue for a, b in pairs]
    reject = multipletests(p, method="holm")[0]
    return ranks, {frozenset(pair): bool(r) for pair, r in zip(pairs, reject)}


def test_the_cd_figure_never_joins_cells_a_test_separates(tmp_path, monkeypatch):
    cells = six_cells()
    ranks, separated = separated_by_hand(cells)
    bars: list[list[float]] = []
    draw = scikit_posthocs.critical_difference_diagram

    def observed(*args, **kwargs):  # scikit-posthocs draws; we only read the bars it returns
        artists = draw(*args, **kwargs)
        bars.extend(list(line[0].get_xdata()) for line in artists["crossbars"])
        return artists

    monkeypatch.setattr(scikit_posthocs, "critical_difference_diagram", observed)
    a = analyse(tmp_path, hand_made(cells))
    draw_figures(a, tmp_path / "figures")
    assert bars, "no bar drawn: the case needs some cells no test separates"
    for xs in bars:
        under = [c for c in ranks.index if min(xs) - 1e-9 <= ranks[c] <= max(xs) + 1e-9]
        joined_yet_separated = [(x, y) for x, y in itertools.combinations(under, 2) if separated[frozenset((x, y))]]
        assert not joined_yet_separated, f"a bar over {under} joins {joined_yet_separated}"
    for r in a.ranking.itertuples():  # what the bars leave out is listed
        listed = set(filter(None, r.not_separated_from.split(", ")))
        assert listed == {o for o in ranks.index if o != r.cell and not separated[frozenset((r.cell, o))]}


# --- the published comparison needs the paired tests' minimum ------------------------------------


def test_the_published_comparison_needs_five_runs():
    cells = {"fcnn/relu": {"model": "fcnn", "activation": "relu", "acc": {0: 0.815, 1: 0.816}}}
    summary = summarize(hand_made(cells).runs)
    reference = pd.DataFrame(
        [
            {
                "model": "fcnn",
                "activation": "relu",
                "activation_actual": "relu",
                "n": 15,
                "test_acc_mean": 0.8005,
                "test_acc_std": 0.0152,
                "time_mean_s": 0.7,
            }
        ]
    )
    row = compare_with_published(summary, {"fcnn/relu": config()}, reference).iloc[0]
    assert row["p"] < 0.01  # Welch from two runs' aggregates would call it a difference
    assert math.isnan(row["p_holm"]) and row["verdict"].startswith("n/a: too few runs (n=2; the tests need 5")


# --- the report's words ----------------------------------------------------------------------------


def test_family_sizes_count_tested_rows_and_friedman_needs_three_cells(tmp_path):
    cells = {
        "fcnn/relu": {"model": "fcnn", "activation": "relu", "acc": dict(enumerate([0.80, 0.81, 0.79, 0.80, 0.82]))},
        "fcnn/tanh": {"model": "fcnn", "activation": "tanh", "acc": dict(enumerate([0.82, 0.82, 0.80, 0.83, 0.83]))},
        "fcnn/relu a=1": {"model": "fcnn", "activation": "relu", "variant": "a=1", "acc": {0: 0.8, 1: 0.8}},
        "fcnn/relu b=1": {"model": "fcnn", "activation": "relu", "variant": "b=1", "acc": {0: 0.8, 1: 0.8}},
    }
    configs = {c: config("fcnn", v["activation"]) for c, v in cells.items()}
    text = write_report(analyse(tmp_path, hand_made(cells, configs)), tmp_path).read_text()
    assert "over the 2 variants" not in text and "none of the 2 could be tested" in text
    assert "Holm over its 1 tested rows of 1" in text  # the one finding: tanh against ReLU in fcnn
    ranking = text[text.index("## Ranking") : text.index("## Every two cells")]
    assert "nan" not in ranking and "Friedman's test needs 3 cells or more: not run" in ranking


def test_accuracy_intervals_stay_within_zero_and_one():
    cells = {
        "a/relu": {"model": "a", "activation": "relu", "acc": {0: 0.4600, 1: 0.5440}},  # smoke: CI down to -0.03
        "b/relu": {"model": "b", "activation": "relu", "acc": {0: 0.97, 1: 0.99}},
    }
    summary = summarize(hand_made(cells).runs).set_index("cell")
    half = stats.t.ppf(0.975, 1) * np.std([0.46, 0.544], ddof=1) / math.sqrt(2)
    assert 0.502 - half < 0 and summary.loc["a/relu", "test_acc_ci_low"] == 0.0
    assert summary.loc["a/relu", "test_acc_ci_high"] == pytest.approx(min(1.0, 0.502 + half))
    half = stats.t.ppf(0.975, 1) * np.std([0.97, 0.99], ddof=1) / math.sqrt(2)
    assert 0.98 + half > 1 and summary.loc["b/relu", "test_acc_ci_high"] == 1.0
    assert summary.loc["b/relu", "test_acc_ci_low"] == pytest.approx(0.98 - half)


def test_the_report_says_what_pairing_removes_and_mcnemar_what_it_ignores(tmp_path):
    rng = np.random.default_rng(2)
    base = rng.normal(0.8, 0.01, 6)
    cells = {
        "fcnn/relu": {"model": "fcnn", "activation": "relu", "acc": dict(enumerate(base))},
        "fcnn/tanh": {"model": "fcnn", "activation": "tanh", "acc": dict(enumerate(base + 0.01))},
    }
    configs = {c: config("fcnn", v["activation"]) for c, v in cells.items()}
    a = analyse(tmp_path, hand_made(cells, configs))
    text = write_report(a, tmp_path).read_text()
    assert "cancels only the errors both cells share" in text and "independent errors gain nothing" in text
    assert "p_mcnemar_ignores_training_var" in a.pairwise and "p_mcnemar" not in a.pairwise
    assert "cancels the ~1.3 points" not in (paired_tables.__doc__ or "")


# --- power, margins, seeds needed -----------------------------------------------------------------


def t_power_by_hand(dz: float, n: int, alpha: float) -> float:
    """Two-sided paired t power from scipy's noncentral t (the far tail, below -crit, is NaN in
    scipy where it is negligible: 0 then)."""
    crit, nc = stats.t.ppf(1 - alpha / 2, n - 1), dz * math.sqrt(n)
    return stats.nct.sf(crit, n - 1, nc) + np.nan_to_num(stats.nct.cdf(-crit, n - 1, nc))


def test_power_columns_against_the_noncentral_t():
    rng = np.random.default_rng(11)
    n, rows = 15, {}
    base = rng.normal(0.80, 0.01, n)
    for name, shift, noise in (("up", 0.008, 0.02), ("flat", 0.0005, 0.004), ("big", 0.03, 0.01)):
        rows[name] = np.round(base + shift + rng.normal(0, noise, n), 3)
    cells = {"base/relu": {"model": "base", "activation": "relu", "acc": dict(enumerate(np.round(base, 3)))}}
    cells |= {f"{k}/relu": {"model": k, "activation": "relu", "acc": dict(enumerate(v))} for k, v in rows.items()}
    questions = [paired_tables.Question(f"{k}/relu", "base/relu") for k in rows]
    table = paired_tables.planned(hand_made(cells), questions, margin=0.01).set_index("a")
    alpha = 0.05 / 3  # Holm's strictest step over the 3 planned comparisons
    for name, acc in rows.items():
        row = table.loc[f"{name}/relu"]
        d = acc - np.round(base, 3)
        sd = d.std(ddof=1)
        assert row["alpha_family"] == pytest.approx(alpha) and row["family_size"] == 3
        dz = optimize.brentq(lambda e: t_power_by_hand(e, n, alpha) - 0.8, 0.01, 4)
        assert row["mde_pts"] == pytest.approx(100 * dz * sd, rel=1e-4)
        # the tightest margin: the one at which statsmodels' paired TOST p equals alpha
        tight = row["tightest_margin_pts"] / 100
        assert ttost_paired(acc, np.round(base, 3), -tight, tight)[0] == pytest.approx(alpha, rel=1e-6)
    undecided = 0
    for name in ("up", "flat"):
        row = table.loc[f"{name}/relu"]
        d = rows[name] - np.round(base, 3)
        mean, sd = abs(d.mean()), d.std(ddof=1)

        def tost_power(m: int, mean: float = mean, sd: float = sd) -> float:  # both one-sided tests, less one
            crit = stats.t.ppf(1 - alpha, m - 1)
            near, far = (0.01 - mean) / sd, (0.01 + mean) / sd
            return stats.nct.sf(crit, m - 1, near * math.sqrt(m)) + stats.nct.sf(crit, m - 1, far * math.sqrt(m)) - 1

        if row["verdict"].startswith("inconclusive"):
            undecided += 1
            for_difference = next(m for m in range(2, 10_000) if t_power_by_hand(mean / sd, m, alpha) >= 0.8)
            for_equivalence = next(m for m in range(2, 10_000) if tost_power(m) >= 0.8) if mean < 0.01 else math.inf
            assert row["seeds_needed"] == min(for_difference, for_equivalence)
            which = "a difference" if for_difference <= for_equivalence else "equivalence within ±1 pts"
            assert row["seeds_needed_for"] == which
            assert row["verdict"].startswith(
                f"inconclusive at {n} seeds; ~{row['seeds_needed']:.0f} seeds would decide"
            )
        else:
            assert row["verdict"].startswith("equivalent within ±1 pts (the data show ±")
            assert row["tightest_margin_pts"] < 1 and math.isnan(row["seeds_needed"])
    assert undecided  # the case holds an inconclusive row
    assert table.loc["big/relu", "verdict"].startswith("higher by 3.")


def test_a_planned_question_is_its_own_family_where_the_exploratory_one_swallows_it():
    """The user story: my_cnn against cnn3_bn, +1.35 points over 15 seeds, among 30 cells."""
    rng = np.random.default_rng(5)
    seed_effect = rng.normal(0, 0.01, 15)
    cells = {
        f"m{i:02d}/relu": {
            "model": f"m{i:02d}",
            "activation": "relu",
            "acc": dict(enumerate(0.8 + seed_effect + rng.normal(0, 0.015, 15))),
        }
        for i in range(28)
    }
    base = 0.83 + seed_effect + rng.normal(0, 0.01, 15)
    mine = base + rng.normal(0, 0.015, 15)
    mine = mine - (mine - base).mean() + 0.0135  # exactly +1.35 points on average
    cells["cnn3_bn/relu"] = {"model": "cnn3_bn", "activation": "relu", "acc": dict(enumerate(base))}
    cells["my_cnn/relu"] = {"model": "my_cnn", "activation": "relu", "acc": dict(enumerate(mine))}
    data = hand_made(cells)
    p = stats.ttest_rel(mine, base).pvalue
    assert p < 0.05 < 435 * p  # significant alone, not after Holm over every two of 30 cells
    planned = paired_tables.planned(data, [paired_tables.Question("my_cnn/relu", "cnn3_bn/relu")]).iloc[0]
    assert planned["family"] == "planned comparisons" and planned["p_t_holm"] == pytest.approx(p)
    assert planned["verdict"].startswith("higher by 1.3 pts")
    explored = paired_tables.pairwise(data, list(cells))
    row = explored[(explored["a"] == "cnn3_bn/relu") & (explored["b"] == "my_cnn/relu")].iloc[0]
    assert row["family"] == "exploratory: every two cells" and row["family_size"] == 435
    assert row["p_t_holm"] > 0.05 and row["verdict"].startswith("inconclusive at 15 seeds; ~")


# --- variance: test set against training -------------------------------------------------------


def outcomes(correct: np.ndarray, digits: np.ndarray) -> PairOutcomes:
    target = (digits[:, 0] <= digits[:, 1]).astype(np.uint8)
    predicted = np.where(correct, target, 1 - target).astype(np.uint8)
    return PairOutcomes(digits, predicted, predicted == target, "".join(map(str, digits.reshape(-1))))


def test_the_test_set_share_of_a_difference_from_its_discordant_pairs():
    """Per seed, the variance of the mean per-pair difference (+1 only A right, -1 only B right)
    computed from the raw pair vectors; its mean over seeds against the seed-to-seed variance."""
    rng = np.random.default_rng(8)
    n_pairs, seeds = 400, range(8)
    digits = {s: rng.integers(0, 10, (n_pairs, 2)).astype(np.uint8) for s in seeds}
    pairs, acc, by_hand = {}, {"a/relu": {}, "b/relu": {}}, []
    for s in seeds:
        shared = rng.random(n_pairs) < 0.75  # both right on these; independent errors elsewhere
        a = shared | (rng.random(n_pairs) < 0.3 + 0.05 * (s % 3))  # training: the seed moves A
        b = shared | (rng.random(n_pairs) < 0.3)
        pairs[("a/relu", s)], pairs[("b/relu", s)] = outcomes(a, digits[s]), outcomes(b, digits[s])
        acc["a/relu"][s], acc["b/relu"][s] = a.mean(), b.mean()
        c = a.astype(int) - b.astype(int)
        by_hand.append(np.var(c, ddof=1) / n_pairs)
    cells = {k: {"model": k[0], "activation": "relu", "acc": v} for k, v in acc.items()}
    configs = {c: config(data__n_test=n_pairs) for c in cells}
    row = paired_tables.pairwise(hand_made(cells, configs, pairs), list(cells)).iloc[0]
    d = np.array([acc["a/relu"][s] - acc["b/relu"][s] for s in seeds])
    share = min(1.0, np.mean(by_hand) / d.var(ddof=1))
    assert row["test_set_share"] == pytest.approx(share) and row["training_share"] == pytest.approx(1 - share)
    assert row["narrow_by"] == ("more test pairs" if share >= 0.5 else "more seeds")
    assert row["seeds_a_better"] == int((d > 0).sum())
    k, n, z = int((d > 0).sum()), len(d), stats.norm.ppf(0.975)  # Wilson's interval, written out
    centre, half = (k + z**2 / 2) / (n + z**2), z * math.sqrt(k * (n - k) / n + z**2 / 4) / (n + z**2)
    assert (row["p_a_better_low"], row["p_a_better_high"]) == pytest.approx((centre - half, centre + half))


def test_binomial_sd_and_modes_of_a_cell():
    cells = {
        "cnn3/relu": {"model": "cnn3", "activation": "relu", "acc": {0: 0.45, 1: 0.80, 2: 0.82, 3: 0.45, 4: 0.78}},
    }
    data = hand_made(cells)
    data.runs.loc[data.runs["test_acc"] == 0.45, "collapsed"] = True
    row = summarize(data.runs, data.configs).iloc[0]
    p = np.mean([0.45, 0.80, 0.82, 0.45, 0.78])
    assert row["test_acc_sd_binomial"] == pytest.approx(math.sqrt(p * (1 - p) / 1000))
    assert row["collapse_rate"] == pytest.approx(0.4) and row["n_trained"] == 3
    assert row["test_acc_mean_trained"] == pytest.approx(0.8)


# --- records on disk: code versions, the ledger, the CLI ------------------------------------------


def clone(record: dict, seed: int, correct: int, model: str = "fcnn", version: str | None = None) -> dict:
    """The record as another seed of a cell of ``model``, ``correct`` of its test pairs right."""
    out = copy.deepcopy(record)
    out["seed"], out["config"]["seed"], out["model"] = seed, seed, model
    out["config"]["model"]["tag"] = model  # another config: another cell
    digits = np.frombuffer(out["test_pairs"]["digits"].encode(), dtype=np.uint8).reshape(-1, 2) - ord("0")
    target = (digits[:, 0] <= digits[:, 1]).astype(int)
    right = np.arange(len(target)) < correct
    out["test_pairs"]["predicted"] = "".join(map(str, np.where(right, target, 1 - target)))
    out["metrics"]["test_acc"] = correct / len(target)
    if version:
        out["versions"] = {**out["versions"], "mnist_pairs": version}
    return out


def test_runs_of_two_code_versions_are_two_cells(one_record, tmp_path):
    for seed in range(2):
        records.write_record(tmp_path / "old" / f"seed={seed}", clone(one_record, seed, 40, version="0.0.9"))
        records.write_record(tmp_path / "new" / f"seed={seed}", clone(one_record, seed, 45))
    data = collect(tmp_path)
    version = one_record["versions"]["mnist_pairs"]
    assert sorted(data.runs["cell"].unique()) == sorted(
        [f"fcnn/relu [mnist_pairs {version}]", "fcnn/relu [mnist_pairs 0.0.9]"]
    )
    assert any("2 mnist_pairs versions, kept apart as cells" in w for w in data.warnings)


def test_a_second_look_after_more_seeds_says_so(one_record, tmp_path):
    folder = tmp_path / "results"
    for seed in range(2):
        records.write_record(folder / f"seed={seed}", clone(one_record, seed, 40))
    first, _ = aggregate(folder, out=tmp_path / "a")
    assert "Aggregated again" not in first.read_text()
    again, _ = aggregate(folder, out=tmp_path / "a")  # the same seeds: no new look
    assert "Aggregated again" not in again.read_text()
    for seed in range(2, 5):
        records.write_record(folder / f"seed={seed}", clone(one_record, seed, 41))
    text = aggregate(folder, out=tmp_path / "b")[0].read_text()
    assert "## Aggregated again after seeds were added" in text and "fcnn/relu: n 2 -> 5" in text
    assert "about 13 % instead of 5 %" in text
    assert len((folder / "aggregations.jsonl").read_text().splitlines()) == 2


def test_the_cli_asks_planned_questions_and_names_unknown_cells(one_record, tmp_path):
    folder = tmp_path / "results"
    rng = np.random.default_rng(4)
    for seed in range(6):
        base = 35 + int(rng.integers(0, 5))
        records.write_record(folder / "cnn3_bn" / f"seed={seed}", clone(one_record, seed, base, "cnn3_bn"))
        records.write_record(folder / "my_cnn" / f"seed={seed}", clone(one_record, seed, base + 3 + seed % 2, "my_cnn"))
    questions = tmp_path / "questions.yaml"
    questions.write_text(
        yaml.safe_dump([{"compare": ["my_cnn/relu", "cnn3_bn/relu"], "margin": 0.5, "question": "does widening help?"}])
    )
    done = run_cli(
        str(folder),
        "--compare",
        "cnn3_bn/relu",
        "my_cnn/relu",
        "--questions",
        str(questions),
        "--out",
        str(tmp_path / "out"),
        module="mnist_pairs.aggregate",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    findings = pd.read_csv(tmp_path / "out" / "tables" / "findings.csv", keep_default_na=False, na_values=[""])
    planned = findings[findings["family"] == "planned comparisons"]
    assert list(planned["question"]) == ["cnn3_bn/relu vs my_cnn/relu", "does widening help?"]
    assert list(planned["margin_pts"]) == [1.0, 0.5] and list(planned["family_size"]) == [2, 2]
    d = [3 + s % 2 for s in range(6)]
    p = stats.ttest_1samp(np.array(d) / 50, 0).pvalue
    assert sorted(planned["p_t_holm"]) == pytest.approx([2 * p, 2 * p])  # Holm over the 2 planned, both equal p
    assert planned["verdict"].iloc[1].startswith("higher by 7.0 pts")
    text = (tmp_path / "out" / "report.md").read_text()
    assert text.index("## Your planned comparisons") < text.index("## Summary")
    pairwise = pd.read_csv(tmp_path / "out" / "tables" / "pairwise.csv")
    assert set(pairwise["family"]) == {"exploratory: every two cells"}
    bad = run_cli(
        str(folder),
        "--compare",
        "my_cnn/relu",
        "cnn9/relu",
        "--out",
        str(tmp_path / "x"),
        module="mnist_pairs.aggregate",
    )
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == "error: no cell 'cnn9/relu' in this folder; the cells are: cnn3_bn/relu, my_cnn/relu"
    margin = run_cli(str(folder), "--margin", "0.02", module="mnist_pairs.aggregate")
    assert margin.returncode != 0 and "did you mean 2 (points)?" in margin.stderr
