"""The analysis by value: each statistic against an independent computation, each table against
numbers worked out by hand, and the paired analysis of records built by a real sweep."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from scipy import stats
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

from mnist_pairs.aggregate import aggregate
from mnist_pairs.analysis import paired as paired_tables
from mnist_pairs.analysis.collect import Collected, PairOutcomes, collect
from mnist_pairs.analysis.errors import error_tables, near_equal_share
from mnist_pairs.analysis.published import add_time_ratios, compare_with_published, protocol_differences
from mnist_pairs.analysis.report import write_report
from mnist_pairs.analysis.stats import holm, mcnemar, paired, paired_tost, t_interval, tost, welch
from mnist_pairs.analysis.summary import summarize
from mnist_pairs.config import compose_config
from mnist_pairs.results import records
from tests.conftest import run_cli

RNG = np.random.default_rng(0)


# --- statistics against independent computations -------------------------------------------


def test_paired_matches_the_textbook_formulas():
    a, b = RNG.normal(0.8, 0.02, 12), RNG.normal(0.79, 0.02, 12)
    d = a - b
    se = d.std(ddof=1) / math.sqrt(len(d))
    t = d.mean() / se
    ours = paired(a, b)
    assert ours["diff"] == pytest.approx(d.mean())
    assert ours["p_t"] == pytest.approx(2 * stats.t.sf(abs(t), len(d) - 1))
    half = stats.t.ppf(0.975, len(d) - 1) * se
    assert (ours["diff_ci_low"], ours["diff_ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert ours["d_z"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert ours["p_wilcoxon"] == pytest.approx(stats.wilcoxon(d).pvalue)  # no zero differences: Pratt = Wilcoxon
    same = paired([0.8, 0.81, 0.79], [0.8, 0.81, 0.79])
    assert (same["diff"], same["p_t"], same["p_wilcoxon"]) == (0.0, 1.0, 1.0)
    assert math.isnan(paired([0.8], [0.7])["p_t"])


def test_welch_and_tost_from_aggregates_match_tests_on_the_samples():
    a, b = RNG.normal(0.80, 0.02, 15), RNG.normal(0.795, 0.03, 10)
    ours = welch(a.mean(), a.std(ddof=1), 15, b.mean(), b.std(ddof=1), 10)
    reference = stats.ttest_ind(a, b, equal_var=False)
    assert ours["t"] == pytest.approx(reference.statistic) and ours["p"] == pytest.approx(reference.pvalue)
    assert ours["df"] == pytest.approx(reference.df)
    ci = reference.confidence_interval()
    assert (ours["diff_ci_low"], ours["diff_ci_high"]) == pytest.approx((ci.low, ci.high))
    p_tost, _, _ = ttost_ind(a, b, -0.02, 0.02, usevar="unequal")  # statsmodels, on the raw samples
    assert tost(a.mean(), a.std(ddof=1), 15, b.mean(), b.std(ddof=1), 10, 0.02) == pytest.approx(p_tost)
    p_paired, _, _ = ttost_paired(a[:10], b, -0.02, 0.02)
    assert paired_tost(a[:10], b, 0.02) == pytest.approx(p_paired)
    assert math.isnan(welch(0.8, 0.1, 1, 0.7, 0.1, 10)["p"]) and math.isnan(tost(0.8, 0.1, 1, 0.7, 0.1, 10, 0.02))


def test_mcnemar_is_the_exact_binomial_test_of_the_discordant_pairs():
    assert mcnemar(30, 12) == pytest.approx(stats.binomtest(12, 42, 0.5).pvalue)
    assert mcnemar(0, 0) == 1.0


def test_holm_adjustment_by_hand():
    adjusted = holm([0.01, 0.04, 0.03, np.nan, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 (m = 4): 4*0.005, 3*0.01, max(2*0.03, 0.03), max(1*0.04, 0.06)
    assert adjusted[[4, 0, 2, 1]] == pytest.approx([0.02, 0.03, 0.06, 0.06]) and math.isnan(adjusted[3])


def test_t_interval_by_hand():
    low, high = t_interval(0.8, 0.02, 10)
    half = 2.2621571627409915 * 0.02 / math.sqrt(10)  # t(0.975, 9)
    assert (low, high) == pytest.approx((0.8 - half, 0.8 + half))
    assert all(math.isnan(v) for v in t_interval(0.8, 0.02, 1))


# --- tables by value, on hand-made runs ---------------------------------------------------------


def config(model: str = "fcnn", activation: str = "relu", **changes: object) -> dict:
    """The resolved config a record of ``model`` carries (composed from conf/, the published
    protocol), with ``changes`` at keys written ``data__n_test``."""
    cfg = OmegaConf.to_container(compose_config(f"model={model}", f"activation={activation}"), resolve=True)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = cfg
        for part in parents:
            node = node[part]
        node[leaf] = value
    return cfg


def runs_table(cells: dict[str, dict], **extra_columns) -> pd.DataFrame:
    """Runs of hand-made cells: {label: {"model", "activation", "variant", "acc": {seed: acc}, ...}}."""
    rows = []
    for label, c in cells.items():
        for seed, acc in c["acc"].items():
            rows.append(
                {
                    "cell": label,
                    "model": c["model"],
                    "activation": c["activation"],
                    "variant": c.get("variant", ""),
                    "experiment": "benchmark",
                    "seed": seed,
                    "status": c.get("status", {}).get(seed, "ok"),
                    "error": None,
                    "n_params": c.get("n_params", 10),
                    "train_time_s": c.get("time", 1.0),
                    "device": "cpu",
                    "device_name": "cpu",
                    "test_acc": acc,
                    "train_acc": 1.0,
                    "test_loss": 0.5,
                    "train_loss": 0.1,
                    "val_acc": math.nan,
                    "digit_acc": math.nan,
                    "collapsed": False,
                    "has_pairs": False,
                    "cell_hash": label,
                    "path": label,
                }
            )
    return pd.DataFrame(rows)


FCNN = config()


def hand_made(cells: dict[str, dict], configs: dict[str, dict] | None = None, pairs=None) -> Collected:
    runs = runs_table(cells)
    return Collected(runs=runs, history=pd.DataFrame(), pairs=pairs or {}, configs=configs or {c: FCNN for c in cells})


def welch_by_formula(x: np.ndarray, mean2: float, sd2: float, n2: int) -> float:
    """Welch's two-sided p from the formulas (t, Welch-Satterthwaite df), not from scipy's test."""
    v1, v2 = x.var(ddof=1) / len(x), sd2**2 / n2
    t = (x.mean() - mean2) / math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1**2 / (len(x) - 1) + v2**2 / (n2 - 1))
    return 2 * stats.t.sf(abs(t), df)


def test_compare_with_published_tests_only_rows_of_the_published_protocol(tmp_path):
    fcnn_acc, cnn3_acc = (
        np.array([0.80, 0.81, 0.79, 0.80, 0.805, 0.795, 0.80, 0.80]),
        np.array([0.75, 0.74, 0.76, 0.75, 0.77]),
    )
    bn_acc = np.array([0.7, 0.9, 0.8, 0.75, 0.85])
    cells = {
        "fcnn/relu": {"model": "fcnn", "activation": "relu", "acc": dict(enumerate(fcnn_acc)), "time": 2.0},
        "cnn3/relu": {"model": "cnn3", "activation": "relu", "acc": dict(enumerate(cnn3_acc)), "time": 3.0},
        "fcnn/tanh": {"model": "fcnn", "activation": "tanh", "acc": {0: 0.5, 1: 0.6}, "time": 1.0},
        "cnn4/relu": {"model": "cnn4", "activation": "relu", "acc": {0: 0.5}},
        "fcnn_bn/tanh": {"model": "fcnn_bn", "activation": "tanh", "acc": dict(enumerate(bn_acc))},
    }
    configs = {
        "fcnn/relu": config(),
        "cnn3/relu": config("cnn3"),
        "fcnn/tanh": config("fcnn", "tanh", train__epochs=3, data__n_train=250),
        "cnn4/relu": config("cnn4"),
        "fcnn_bn/tanh": config("fcnn_bn", "tanh"),
    }
    summary = summarize(hand_made(cells, configs).runs)
    reference = pd.DataFrame(
        [
            {
                "model": "fcnn",
                "activation": "relu",
                "activation_actual": "relu",
                "n": 15,
                "test_acc_mean": 0.80,
                "test_acc_std": 0.015,
                "time_mean_s": 0.7,
            },
            {
                "model": "cnn3",
                "activation": "relu",
                "activation_actual": "relu",
                "n": 15,
                "test_acc_mean": 0.59,
                "test_acc_std": 0.16,
                "time_mean_s": 1.4,
            },
            {
                "model": "fcnn",
                "activation": "tanh",
                "activation_actual": "relu",
                "n": 15,
                "test_acc_mean": 0.80,
                "test_acc_std": 0.014,
                "time_mean_s": 0.7,
            },
            {
                "model": "cnn4",
                "activation": "relu",
                "activation_actual": "relu",
                "n": 15,
                "test_acc_mean": 0.59,
                "test_acc_std": 0.16,
                "time_mean_s": 1.4,
            },
            {
                "model": "fcnn_bn",
                "activation": "tanh",
                "activation_actual": "relu",
                "n": 15,
                "test_acc_mean": 0.81,
                "test_acc_std": 0.01,
                "time_mean_s": 1.0,
            },
        ]
    )
    table = compare_with_published(summary, configs, reference, margin=0.02).set_index("cell")
    fcnn, cnn3, tanh = table.loc["fcnn/relu"], table.loc["cnn3/relu"], table.loc["fcnn/tanh"]
    p_fcnn, p_cnn3, p_bn = (
        welch_by_formula(fcnn_acc, 0.80, 0.015, 15),
        welch_by_formula(cnn3_acc, 0.59, 0.16, 15),
        welch_by_formula(bn_acc, 0.81, 0.01, 15),
    )
    assert (fcnn["p"], cnn3["p"], table.loc["fcnn_bn/tanh", "p"]) == pytest.approx((p_fcnn, p_cnn3, p_bn))
    assert fcnn["diff"] == pytest.approx(fcnn_acc.mean() - 0.80)
    # Holm over the three tested rows (not tanh: its protocol differs; not cnn4: one run), by hand
    ordered = sorted([p_fcnn, p_cnn3, p_bn])
    holm_by_hand = np.minimum(np.maximum.accumulate([3 * ordered[0], 2 * ordered[1], ordered[2]]), 1)
    assert sorted(table["p_holm"].dropna()) == pytest.approx(list(holm_by_hand))
    assert cnn3["verdict"].startswith("differs: ours higher")
    assert fcnn["verdict"].startswith("equivalent within ±2 pts (TOST, Holm")  # 0.800 ± 0.006 (8 runs) vs 0.80
    bn = table.loc["fcnn_bn/tanh", "verdict"]
    assert bn.startswith("inconclusive: no difference shown (Welch, Holm), equivalence within ±2 pts not shown")
    assert bn.endswith("(the published run ran relu)")
    assert table.loc["cnn4/relu", "verdict"] == "n/a: too few runs (n=1; the tests need 5, as the paired ones do)"
    assert tanh["verdict"].startswith(
        "n/a: protocol differs (train.epochs=3 (published: 50); data.n_train=250 (published: 1000)"
    )
    assert math.isnan(tanh["p_holm"]) and tanh["pub_activation_actual"] == "relu"
    assert (fcnn["pub_ci_low"], fcnn["pub_ci_high"]) == pytest.approx(t_interval(0.80, 0.015, 15))
    assert (
        fcnn["time_ratio"] == 1.0
        and cnn3["time_ratio"] == pytest.approx(1.5)
        and cnn3["pub_time_ratio"] == pytest.approx(2.0)
    )
    from mnist_pairs.analysis.figures import versus_published

    png = versus_published(table.reset_index(), tmp_path / "versus_published.png")  # the tested rows
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000


def test_protocol_differences_name_each_key_and_the_model_preset():
    assert protocol_differences(config(), "fcnn") == []
    assert protocol_differences(config(optimizer__lr=5e-3, augment__name="swap", data__scale="unit"), "fcnn") == [
        "data.scale=unit (published: raw)",
        "augment.name=swap (published: none)",
        "optimizer.lr=0.005 (published: 0.001)",
    ]
    assert protocol_differences(config(train__batch_size=100), "fcnn", source="cpu") == []
    assert protocol_differences(config(model__hidden=[10]), "fcnn") == [
        "model.hidden=[10] (preset: [1000, 1000])"
    ]  # a preset's change, unseen in variant
    authors = OmegaConf.to_container(compose_config("model=authors/cnn3"), resolve=True)
    assert (
        protocol_differences(authors, "cnn3") == []
    )  # the authors' code's model (experiment=replication) is the published one


def test_add_time_ratios_by_hand():
    table = pd.DataFrame(
        {
            "model": ["fcnn", "cnn3"],
            "activation": ["relu", "relu"],
            "protocol": ["published"] * 2,
            "time_s": [2.0, 5.0],
            "pub_time_s": [0.5, 2.0],
        }
    )
    out = add_time_ratios(table)
    assert list(out["time_ratio"]) == [1.0, 2.5] and list(out["pub_time_ratio"]) == [1.0, 4.0]
    assert add_time_ratios(table[table["model"] == "cnn3"])["time_ratio"].isna().all()


def paired_p_by_formula(a, b) -> float:
    """The paired t-test's two-sided p from the formula, not from scipy's test."""
    d = np.subtract(a, b)
    return 2 * stats.t.sf(abs(d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))), len(d) - 1)


def test_variants_are_paired_on_common_seeds_and_holm_corrected():
    base = [0.80, 0.81, 0.79, 0.80, 0.82, 0.78]
    up = [0.82, 0.835, 0.80, 0.83, 0.84, 0.80]  # +0.02ish seed by seed
    noise = [0.81, 0.80, 0.80, 0.79, 0.83, 0.78]
    cells = {
        "fcnn/relu": {"model": "fcnn", "activation": "relu", "acc": dict(enumerate(base)), "time": 2.0},
        "fcnn/relu a=1": {
            "model": "fcnn",
            "activation": "relu",
            "variant": "a=1",
            "acc": dict(enumerate(up)),
            "time": 3.0,
        },
        "fcnn/relu b=1": {
            "model": "fcnn",
            "activation": "relu",
            "variant": "b=1",
            "acc": {s: v for s, v in enumerate(noise) if s != 2},
            "time": 2.0,
        },
        "cnn3/relu c=1": {"model": "cnn3", "activation": "relu", "variant": "c=1", "acc": dict(enumerate(base))},
    }
    data = hand_made(cells)
    table = paired_tables.compare_variants(data, summarize(data.runs)).set_index("variant")
    p_up = paired_p_by_formula(up, base)
    p_noise = paired_p_by_formula([v for s, v in enumerate(noise) if s != 2], [v for s, v in enumerate(base) if s != 2])
    assert table.loc["a=1", "p_t"] == pytest.approx(p_up) and table.loc["b=1", "n"] == 5
    assert table.loc["b=1", "p_t"] == pytest.approx(p_noise)
    assert table.loc["a=1", "p_t_holm"] == pytest.approx(min(1, 2 * min(p_up, p_noise)))  # two tested variants
    assert table.loc["a=1", "diff"] == pytest.approx(np.mean(np.subtract(up, base)))
    assert table.loc["a=1", "verdict"].startswith("higher by 2.") and table.loc["a=1", "time_ratio"] == 1.5
    assert table.loc["c=1", "verdict"].startswith("not tested: no base cell")


def test_pairwise_lists_what_it_cannot_pair_and_pools_mcnemar_over_test_pairs():
    n_pairs = 8
    digits = np.array([[i % 10, (3 * i) % 10] for i in range(n_pairs)], dtype=np.uint8)
    target = (digits[:, 0] <= digits[:, 1]).astype(np.uint8)

    def outcome(wrong: list[int]) -> PairOutcomes:
        predicted = target.copy()
        predicted[wrong] = 1 - predicted[wrong]
        return PairOutcomes(digits, predicted, predicted == target, "".join(map(str, digits.reshape(-1))))

    cells = {
        "a/relu": {"model": "a", "activation": "relu", "acc": {s: 0.9 + 0.01 * s for s in range(5)}},
        "b/relu": {"model": "b", "activation": "relu", "acc": {s: 0.8 + 0.012 * s for s in range(5)}},
        "c/relu": {"model": "c", "activation": "relu", "acc": {s: 0.8 for s in range(3)}},
        "d/relu": {"model": "d", "activation": "relu", "acc": {s: 0.7 for s in range(5)}},
        "e/relu": {
            "model": "e",
            "activation": "relu",
            "acc": {s: math.nan for s in range(5)},
            "status": {s: "failed" for s in range(5)},
        },
        "f/relu": {"model": "f", "activation": "relu", "acc": {s: 0.85 for s in range(5)}},
    }
    pairs = {("a/relu", s): outcome([0]) for s in range(5)} | {("b/relu", s): outcome([0, 1, 2]) for s in range(5)}
    other = outcome([])
    pairs |= {
        ("f/relu", s): PairOutcomes(other.digits[::-1], other.predicted, other.correct, other.key[::-1])
        for s in range(5)
    }
    configs = {c: config() for c in cells} | {"d/relu": config(data__n_test=250)}
    data = hand_made(cells, configs, pairs)
    table = paired_tables.pairwise(data, list(cells)).set_index(["a", "b"])
    ab = table.loc[("a/relu", "b/relu")]
    assert (ab["a_only"], ab["b_only"], ab["test_pairs"]) == (10, 0, 40)  # pairs 1, 2 wrong in b only, 5 seeds
    assert ab["p_mcnemar_ignores_training_var"] == pytest.approx(stats.binomtest(0, 10).pvalue)
    assert ab["n"] == 5 and ab["verdict"].startswith("higher")
    assert table.loc[("a/relu", "c/relu"), "note"] == "not tested: 3 common seeds (fewer than 5)"
    assert table.loc[("a/relu", "d/relu"), "note"] == "not paired: different pairs (data.n_test 1000 vs 250)"
    assert math.isnan(table.loc[("a/relu", "d/relu"), "p_t_holm"])
    assert table.loc[("a/relu", "e/relu"), "note"] == "not tested: no finished run in e/relu"  # listed, not dropped
    assert table.loc[("a/relu", "e/relu"), "lost_b"] == 5 and table.loc[("a/relu", "e/relu"), "lost_a"] == 0
    assert table.loc[("a/relu", "f/relu"), "note"].startswith("not paired: seed 0 drew different test pairs")
    assert table["p_t_holm"].notna().sum() == 1 and len(table) == 15  # Holm over the one tested pair: p_holm = p
    assert ab["p_t_holm"] == pytest.approx(ab["p_t"])
    assert ab["welch_p"] == pytest.approx(
        stats.ttest_ind([0.9 + 0.01 * s for s in range(5)], [0.8 + 0.012 * s for s in range(5)], equal_var=False).pvalue
    )


def test_ranking_by_hand():
    acc = {
        "x/relu": [0.9, 0.8, 0.85, 0.7, 0.9],
        "y/relu": [0.8, 0.9, 0.8, 0.6, 0.9],
        "z/relu": [0.7, 0.7, 0.9, 0.8, 0.5],
    }
    cells = {c: {"model": c[0], "activation": "relu", "acc": dict(enumerate(v))} for c, v in acc.items()}
    table, info = paired_tables.ranking(hand_made(cells), list(cells))
    # ranks per seed (1 = best, ties averaged): x 1,2,2,2,1.5  y 2,1,3,3,1.5  z 3,3,1,1,3
    assert dict(zip(table["cell"], table["mean_rank"])) == pytest.approx({"x/relu": 1.7, "y/relu": 2.1, "z/relu": 2.2})
    assert info["friedman_p"] == pytest.approx(stats.friedmanchisquare(*acc.values()).pvalue) and info["blocks"] == 5
    # another activation ran seeds 5-9 (as the replication grid does): the largest group sharing 5 seeds is ranked
    cells |= {"x/tanh": {"model": "x", "activation": "tanh", "acc": {s + 5: 0.8 for s in range(5)}}}
    table, info = paired_tables.ranking(hand_made(cells), list(cells))
    assert list(table["cell"]) == ["x/relu", "y/relu", "z/relu"] and info["left_out"] == ["x/tanh"]


def test_findings_name_the_questions_and_correct_over_them(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.normal(0.8, 0.01, 6)
    acc = {
        ("fcnn", "relu"): base,
        ("fcnn", "tanh"): base + 0.03 + rng.normal(0, 0.005, 6),
        ("fcnn_bn", "relu"): base + rng.normal(0, 0.01, 6),
    }
    cells = {f"{m}/{a}": {"model": m, "activation": a, "acc": dict(enumerate(v))} for (m, a), v in acc.items()}
    configs = {c: config(cells[c]["model"], cells[c]["activation"]) for c in cells}
    data = hand_made(cells, configs)
    table = paired_tables.findings(data, summarize(data.runs)).set_index("question")
    assert list(table.index) == ["tanh instead of ReLU in fcnn", "BatchNorm: fcnn_bn vs fcnn"]
    p_tanh, p_bn = paired_p_by_formula(acc[("fcnn", "tanh")], base), paired_p_by_formula(acc[("fcnn_bn", "relu")], base)
    low, high = sorted([p_tanh, p_bn])
    assert sorted(table["p_t_holm"]) == pytest.approx(
        [2 * low, max(2 * low, high)]
    )  # Holm over the two findings, by hand
    assert table.loc["tanh instead of ReLU in fcnn", "verdict"].startswith("higher by 3.")
    # the authors' models run ReLU whatever the label: the question says so
    configs["fcnn/tanh"] = OmegaConf.to_container(compose_config("model=authors/fcnn", "activation=tanh"), resolve=True)
    assert (
        paired_tables.finding_pairs(summarize(data.runs), configs)[0][0]
        == "tanh instead of ReLU in fcnn (labels only: both ran ReLU)"
    )
    # no finding testable (2 seeds each): every row says why, and the report still writes
    few = hand_made({c: {**v, "acc": {0: 0.8, 1: 0.81}} for c, v in cells.items()}, configs)
    untested = paired_tables.findings(few, summarize(few.runs))
    assert untested["verdict"].str.startswith("not tested: 2 common seeds").all() and untested["diff"].isna().all()
    from mnist_pairs.aggregate import analyse

    report = write_report(analyse(tmp_path, few), tmp_path)
    assert "## Findings" in report.read_text()


def test_under_the_null_the_corrected_pairwise_tests_stay_quiet():
    """20 cells drawn from one distribution, with a seed effect shared by all (as paired seeds give):
    Holm keeps the family-wise error at 5%, and this fixed draw finds no difference among 190 pairs;
    pairing still finds a 2-point effect added to one cell, which the seed effect hides from Welch."""
    rng = np.random.default_rng(7)
    seed_effect = rng.normal(0, 0.02, 10)
    cells = {
        f"m{i}/relu": {
            "model": f"m{i}",
            "activation": "relu",
            "acc": dict(enumerate(0.8 + seed_effect + rng.normal(0, 0.004, 10))),
        }
        for i in range(20)
    }
    table = paired_tables.pairwise(hand_made(cells), list(cells))
    assert len(table) == 190 and (table["p_t_holm"] >= 0.05).all() and (table["welch_p_holm"] >= 0.05).all()
    cells["m0/relu"]["acc"] = {s: v + 0.02 for s, v in cells["m0/relu"]["acc"].items()}
    table = paired_tables.pairwise(hand_made(cells), list(cells))
    m0 = table[table["a"] == "m0/relu"]
    assert (m0["p_t_holm"] < 0.05).all() and (m0["welch_p_holm"] < 0.05).sum() == 0


def test_error_tables_count_every_pair():
    digits = np.array([[1, 1], [2, 1], [1, 2], [2, 1]], dtype=np.uint8)
    predicted = np.array([1, 1, 1, 0], dtype=np.uint8)  # right, wrong (2 > 1 is class 0), right, right
    cells = {"a/relu": {"model": "a", "activation": "relu", "acc": {0: 0.75, 1: 0.75}}}
    outcome = PairOutcomes(digits, predicted, predicted == (digits[:, 0] <= digits[:, 1]), "11211221")
    by_pair, by_diff = error_tables(
        hand_made(cells, pairs={("a/relu", 0): outcome, ("a/relu", 1): outcome}), ["a/relu"]
    )
    row = by_pair[(by_pair["d1"] == 2) & (by_pair["d2"] == 1)].iloc[0]
    assert (row["n"], row["errors"], row["error_rate"]) == (4, 2, 0.5)
    assert by_pair["n"].sum() == 8 and math.isnan(
        by_pair[(by_pair["d1"] == 0) & (by_pair["d2"] == 0)]["error_rate"].iloc[0]
    )
    assert by_diff.set_index("d2_minus_d1").loc[-1, "errors"] == 2
    share = near_equal_share(by_diff).iloc[0]
    assert share["error_share_within_1"] == 1.0 and share["pair_share_within_1"] == 1.0


# --- collecting real records --------------------------------------------------------------------


SMALL = ("data.n_train=100", "data.n_test=50", "train.epochs=2")


def test_collect_groups_by_identity_and_keeps_every_epoch(tmp_path, synthetic_root, compose_cfg):
    from mnist_pairs.train import run

    common = (f"data.root={synthetic_root}", "data.download=false", *SMALL)
    run(compose_cfg("model=cnn3", *common), tmp_path / "bench" / "cnn3" / "relu" / "seed=0")
    run(
        compose_cfg("model=cnn3", *common, "train.epochs=3", "experiment_name=smoke"),
        tmp_path / "smoke" / "cnn3" / "relu" / "seed=0",
    )
    run(
        compose_cfg("model=fcnn", *common, "train.eval_every_epoch=false"),
        tmp_path / "bench" / "fcnn" / "relu" / "seed=0",
    )
    old = records.read_record(tmp_path / "bench" / "fcnn" / "relu" / "seed=0" / records.RECORD_FILE)
    del old["test_pairs"]  # a record of schema 1
    records.write_record(tmp_path / "old" / "fcnn" / "relu" / "seed=1", {**old, "seed": 1, "schema_version": 1})
    data = collect(tmp_path)
    assert sorted(data.runs["cell"]) == [
        "cnn3/relu [runs]",
        "cnn3/relu [smoke]",
        "fcnn/relu",
        "fcnn/relu",
    ]  # cnn3: two configs, never pooled
    fcnn = data.runs[data.runs["cell"] == "fcnn/relu"].set_index("seed")
    assert list(fcnn["has_pairs"]) == [True, False] and len(data.pairs) == 3
    history = data.history[data.history["cell"] == "fcnn/relu"]
    assert (
        len(history) == 2 * 2 and history["test_acc"].isna().all() and history["train_loss"].notna().all()
    )  # eval_every_epoch=false


def test_of_two_records_of_one_seed_the_finished_one_counts_and_bad_pairs_are_corrupt(
    tmp_path, synthetic_root, compose_cfg
):
    from mnist_pairs.train import run

    done = run(
        compose_cfg("model=fcnn", f"data.root={synthetic_root}", "data.download=false", *SMALL),
        tmp_path / "b" / "seed=0",
    )
    failed = {
        **done,
        "status": "failed",
        "metrics": None,
        "error": "boom",
        "finished_at": "2099-01-01T00:00:00.000+00:00",
    }
    del failed["test_pairs"]
    records.write_record(
        tmp_path / "a" / "seed=0", failed
    )  # sorts first, finished later: still not the one that counts
    records.write_record(
        tmp_path / "c" / "seed=1", {**done, "seed": 1, "test_pairs": {"digits": "12", "predicted": "01"}}
    )
    data = collect(tmp_path)
    assert len(data.runs) == 1 and data.runs["status"].iloc[0] == "ok" and data.runs["has_pairs"].iloc[0]
    assert list(data.pairs) == [("fcnn/relu", 0)] and data.duplicates[0].startswith(
        "a/seed=0: a second record of fcnn/relu seed=0 (failed"
    )
    assert (
        len(data.corrupt) == 1 and "c/seed=1" in data.corrupt[0] and "test_pairs must hold 2n digits" in data.corrupt[0]
    )


def test_collapse_means_one_class_for_every_pair_not_a_loss_near_ln2():
    from mnist_pairs.analysis.collect import LN2, collapsed

    digits = np.array([[1, 2], [3, 1]], dtype=np.uint8)
    constant = PairOutcomes(digits, np.array([0, 0], dtype=np.uint8), np.array([False, True]), "1231")
    live = PairOutcomes(digits, np.array([1, 0], dtype=np.uint8), np.array([True, True]), "1231")
    assert collapsed({"test_loss": 0.9}, constant) and not collapsed({"test_loss": LN2 + 1e-3}, live)
    assert collapsed({"test_loss": LN2}, None) and not collapsed({"test_loss": LN2 + 1e-3}, None)  # older records


# --- the paired analysis of a real sweep -----------------------------------------------------------


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, synthetic_root) -> Path:
    """A real sweep: a learning rate that trains against one that cannot (known to differ), each
    twice under a knob that never changes training (train.eval_interval: known to be the same)."""
    out = tmp_path_factory.mktemp("sweep")
    done = run_cli(
        "-m",
        "model=siamese_cnn_aux",
        "optimizer.lr=5e-3,1e-6",
        "train.eval_interval=1,2",
        "seed=range(0,6)",
        f"data.root={synthetic_root}",
        "data.download=false",
        f"output_root={out}",
        "data.n_train=200",
        "data.n_test=100",
        "train.epochs=8",
        "train.batch_size=50",
        "data.scale=unit",
        "device.threads=1",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out / "runs"


def test_a_real_sweep_finds_the_difference_and_not_the_twin(sweep, tmp_path):
    report, data = aggregate(sweep, out=tmp_path)
    assert len(data.runs) == 24 and data.runs["has_pairs"].all()
    table = pd.read_csv(tmp_path / "tables" / "pairwise.csv")
    trained, untrained, twin = (
        f"optimizer.lr={lr},train.batch_size=50,train.epochs=8,train.eval_interval={i}"
        for lr, i in (("0.005", 1), ("1e-06", 1), ("0.005", 2))
    )

    def row(x: str, y: str) -> pd.Series:
        a, b = table["a"].str.endswith(x), table["b"].str.endswith(y)
        return table[(a & b) | (table["a"].str.endswith(y) & table["b"].str.endswith(x))].squeeze()

    pair = row(trained, untrained)
    assert pair["p_t_holm"] < 0.05 and pair["p_mcnemar_ignores_training_var_holm"] < 0.05 and abs(pair["diff"]) > 0.2
    same = row(trained, twin)
    assert (
        same["diff"] == 0
        and same["a_only"] == same["b_only"] == 0
        and same["verdict"].startswith("equivalent within ±1 pts")
    )
    assert len(table) == 6 and table["p_t_holm"].notna().all()
    ranking = pd.read_csv(tmp_path / "tables" / "ranking.csv")
    assert all(c.endswith((trained, twin)) for c in ranking["cell"].iloc[:2])  # the two that train, ahead
    for name in ("ranking", "pairwise", "errors_by_digit_pair", "errors_by_difference", "aux_digits"):
        assert (tmp_path / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    text = report.read_text()
    assert "## Every two cells" in text and "6 pairs of cells, 6 tested" in text
