"""Paired comparisons of cells. A seed draws the same training and test pairs whatever the model
(mnist_pairs.seeding, stream "data"), so two cells' runs with the same seed are paired
observations on the same data. Pairing cancels only what the two runs share: test pairs both get
right or both get wrong add nothing to the difference, while the pairs only one of them gets right
(the discordant pairs) still carry test-set sampling noise, and each run's own training noise
stays. Two models with independent errors gain nothing from pairing on the test set; the
``test_set_share`` column measures how much of a difference's variance the discordant pairs
explain.

Each table is its own family, Holm-corrected over its tested rows only:

- ``planned``: the comparisons a user names before looking (``--compare``, ``--questions``).
- ``findings``: the questions the report asks (activation, BatchNorm, dropout, weight sharing,
  auxiliary loss), each a named pair of cells.
- ``compare_variants``: each variant against its base cell.
- ``pairwise``: every two cells, the exploratory family (one question among hundreds).
- ``ranking``: per seed, the cells ranked; mean ranks, Friedman's test, and paired t-tests among
  the ranked cells on the same seeds (their own family) for the critical-difference figure.

A row: mean difference, 95% CI, paired t-test (it decides), Wilcoxon's exact signed-rank test,
paired TOST equivalence within the row's margin, Cohen's d_z, McNemar's exact test on all common
test pairs pooled (it ignores the seed-to-seed variance of training), the unpaired Welch test on
the same runs (for contrast); then what the data can say: the tightest margin they show, the
smallest effect detectable at 80 % power, the seeds an inconclusive row would need, P(A > B)
over seeds, and where the difference's variance comes from. Pairs with fewer than MIN_SEEDS
common seeds are listed, not tested."""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from mnist_pairs.analysis.collect import Collected
from mnist_pairs.analysis.published import ALPHA, MARGIN, MIN_SEEDS
from mnist_pairs.analysis.stats import (
    MAX_SEEDS,
    detectable_dz,
    friedman,
    holm,
    mcnemar,
    paired,
    paired_tost,
    proportion_interval,
    seeds_for_difference,
    seeds_for_equivalence,
    test_set_variance,
    tightest_margin,
    welch,
)
from mnist_pairs.results.records import setting

__all__ = ["MIN_SEEDS", "Question", "compare_cells", "findings", "pairwise", "planned", "ranking"]

# with the seed, what fixes a run's pairs (records without test_pairs)
DATA_KEYS = ("data.n_train", "data.n_test", "data.n_val")
MCNEMAR = "p_mcnemar_ignores_training_var"  # pooled test pairs: blind to the seed-to-seed variance of training
FAMILIES = {
    "p_t": "p_t_holm",
    "p_wilcoxon": "p_wilcoxon_holm",
    "p_tost": "p_tost_holm",
    MCNEMAR: f"{MCNEMAR}_holm",
    "welch_p": "welch_p_holm",
}
FAMILY_NAMES = {
    "planned": "planned comparisons",
    "report": "the report's questions",
    "variants": "variants against their base",
    "exploratory": "exploratory: every two cells",
}


@dataclass(frozen=True)
class Question:
    """A planned comparison: cell ``a`` against cell ``b`` (labels as the report prints them), with
    its own equivalence margin (a fraction of accuracy; None: the run's ``--margin``)."""

    a: str
    b: str
    margin: float | None = None
    text: str = ""


def cell_scores(runs: pd.DataFrame) -> dict[str, pd.Series]:
    """Per cell, the test accuracy of each finished run, indexed by seed (every cell of ``runs``,
    empty where none finished)."""
    ok = runs[(runs["status"] == "ok") & runs["test_acc"].notna()]
    scores = {cell: pd.Series(dtype=float) for cell in runs["cell"].unique()}
    scores.update(
        {cell: group.set_index("seed")["test_acc"].sort_index() for cell, group in ok.groupby("cell", sort=False)}
    )
    return scores


def matched_seeds(a: str, b: str, scores: dict[str, pd.Series], data: Collected) -> tuple[list[int], str]:
    """The seeds on which both cells finished with a test accuracy on the same pairs, and, when
    the two cells cannot be paired, why (no finished run, different data settings, or different
    test pairs)."""
    empty = [c for c in (a, b) if scores[c].empty]
    if empty:
        return [], "not tested: no finished run in " + " and ".join(empty)
    differing = [k for k in DATA_KEYS if setting(data.configs[a], k) != setting(data.configs[b], k)]
    if differing:
        return [], "not paired: different pairs (" + ", ".join(
            f"{k} {setting(data.configs[a], k)} vs {setting(data.configs[b], k)}" for k in differing
        ) + ")"
    seeds = sorted(set(scores[a].index) & set(scores[b].index))
    for seed in seeds:
        pa, pb = data.pairs.get((a, seed)), data.pairs.get((b, seed))
        if pa is not None and pb is not None and pa.key != pb.key:
            return [], f"not paired: seed {seed} drew different test pairs (other data files or sampling)"
    return seeds, ""


def lost_seeds(cell: str, other: str, scores: dict[str, pd.Series], data: Collected) -> int:
    """Seeds on which ``other`` finished and ``cell`` has a record that did not finish (failed,
    diverged): the paired tests leave them out, which favours the less stable cell, so the tables say
    how many."""
    return len(data.unfinished_seeds.get(cell, set()) & set(scores[other].index))


def correct_counts(cell: str, seeds: list[int], scores: dict[str, pd.Series], data: Collected) -> np.ndarray | None:
    """Per seed, how many test pairs the cell's run got right: counted from its per-pair outcomes,
    or its accuracy times ``data.n_test`` rounded (older records); None where neither is known.
    Differences of these integers tie exactly where accuracies tie only up to float rounding."""
    n_test = setting(data.configs.get(cell, {}), "data.n_test")
    out = []
    for seed in seeds:
        outcomes = data.pairs.get((cell, seed))
        if outcomes is not None:
            out.append(int(outcomes.correct.sum()))
        elif isinstance(n_test, int) and n_test > 0:
            out.append(round(float(scores[cell][seed]) * n_test))
        else:
            return None
    return np.array(out, dtype=int)


def discordant(a: str, b: str, seeds: list[int], data: Collected) -> dict[str, Any]:
    """McNemar's exact test on the test pairs of every common seed pooled, and the test-set share of
    the difference's variance from the per-seed discordant pairs (seeds with per-pair outcomes)."""
    both = [(data.pairs[(a, s)], data.pairs[(b, s)]) for s in seeds if (a, s) in data.pairs and (b, s) in data.pairs]
    if not both:
        return {}
    a_only = np.array([int((pa.correct & ~pb.correct).sum()) for pa, pb in both])
    b_only = np.array([int((~pa.correct & pb.correct).sum()) for pa, pb in both])
    n_pairs = np.array([len(pa.correct) for pa, _ in both])
    return {
        "test_pairs": int(n_pairs.sum()),
        "a_only": int(a_only.sum()),
        "b_only": int(b_only.sum()),
        MCNEMAR: mcnemar(int(a_only.sum()), int(b_only.sum())),
        "var_test_set": test_set_variance(a_only, b_only, n_pairs),
    }


def variance_split(row: dict[str, Any]) -> dict[str, Any]:
    """The share of the difference's seed-to-seed variance that test-set sampling explains (the rest
    is training), and which of more test pairs or more seeds would narrow its CI: each seed's test
    pairs are drawn anew, so more seeds shrink both parts; more test pairs shrink only the test-set
    part (Jordan, "Calibrated Chaos", ICLR 2024; Bouthillier et al., MLSys 2021)."""
    total, test = row.get("sd_diff", math.nan) ** 2, row.pop("var_test_set", math.nan)
    if not (total > 0) or math.isnan(test):
        return {}
    share = min(1.0, test / total)
    return {
        "test_set_share": share,
        "training_share": 1 - share,
        "narrow_by": "more test pairs" if share >= 0.5 else "more seeds",
    }


def wins(d: np.ndarray) -> dict[str, Any]:
    """P(A > B) over seeds: the share of seeds on which A's run beat B's (ties are no win), with its
    Wilson 95% interval: for cells whose runs split into modes, the mean difference alone misleads."""
    k, ties = int((d > 0).sum()), int((d == 0).sum())
    low, high = proportion_interval(k, len(d))
    return {
        "seeds_a_better": k,
        "seeds_tied": ties,
        "p_a_better": k / len(d),
        "p_a_better_low": low,
        "p_a_better_high": high,
    }


def compare_cells(
    a: str, b: str, scores: dict[str, pd.Series], data: Collected, margin: float = MARGIN
) -> dict[str, Any]:
    """One row: cell ``a`` against cell ``b`` on their matched seeds (differences are a - b);
    ``margin`` is the row's equivalence margin (a fraction of accuracy)."""
    seeds, note = matched_seeds(a, b, scores, data)
    row: dict[str, Any] = {
        "a": a,
        "b": b,
        "n": len(seeds),
        "margin_pts": margin * 100,
        "lost_a": lost_seeds(a, b, scores, data),
        "lost_b": lost_seeds(b, a, scores, data),
        "note": note,
    }
    if len(seeds) < MIN_SEEDS:
        return {**row, "note": note or f"not tested: {len(seeds)} common seeds (fewer than {MIN_SEEDS})"}
    x, y = scores[a][seeds].to_numpy(), scores[b][seeds].to_numpy()
    ka, kb = correct_counts(a, seeds, scores, data), correct_counts(b, seeds, scores, data)
    test = paired(x, y, counts=None if ka is None or kb is None else ka - kb)
    d = x - y if ka is None or kb is None else (ka - kb).astype(float)
    row.update(
        mean_a=x.mean(),
        mean_b=y.mean(),
        **{k: test[k] for k in ("diff", "diff_ci_low", "diff_ci_high", "d_z", "p_t", "p_wilcoxon")},
        sd_diff=float(np.std(x - y, ddof=1)),
        **wins(d),
    )
    row["p_tost"] = paired_tost(x, y, margin)
    row["welch_p"] = welch(x.mean(), x.std(ddof=1), len(x), y.mean(), y.std(ddof=1), len(y))["p"]
    row.update(discordant(a, b, seeds, data))
    row.update(variance_split(row))
    return row


def verdict(row: pd.Series) -> str:
    """What the paired tests of one row show, in words: the paired t-test decides (Holm over the
    row's family); equivalence needs the paired TOST (Holm) within the row's margin too; an
    inconclusive row says how many seeds would decide it; seeds lost to failed or diverged runs are
    named."""
    p = row.get("p_t_holm")
    if not isinstance(p, float) or math.isnan(p):
        return row.get("note") or "not tested"
    margin, tightest = row["margin_pts"], row["tightest_margin_pts"]
    if p < ALPHA:
        words = f"{'higher' if row['diff'] > 0 else 'lower'} by {abs(row['diff']) * 100:.1f} pts"
    elif row["p_tost_holm"] < ALPHA:
        words = f"equivalent within ±{margin:g} pts (the data show ±{tightest:.2g})"
    else:
        reach = (
            f"~{row['seeds_needed']:.0f} seeds would decide it ({row['seeds_needed_for']})"
            if math.isfinite(row["seeds_needed"])
            else f"more than {MAX_SEEDS} seeds would be needed at the observed difference"
        )
        words = (
            f"inconclusive at {row['n']} seeds; {reach}: no difference shown, |diff| < {margin:g} pts not shown "
            f"(the data show |diff| < {tightest:.2g})"
        )
    lost = [
        f"{row[k]} seeds lost to unfinished runs of {row[c]}"
        for k, c in (("lost_a", "a"), ("lost_b", "b"))
        if row.get(k)
    ]
    return words + (f" ({'; '.join(lost)})" if lost else "")


TESTED_COLUMNS = (
    "mean_a",
    "mean_b",
    "diff",
    "diff_ci_low",
    "diff_ci_high",
    "sd_diff",
    "d_z",
    "test_pairs",
    "a_only",
    "b_only",
    "test_set_share",
    "training_share",
    "p_a_better",
    "p_a_better_low",
    "p_a_better_high",
)


def power_columns(row: pd.Series, alpha: float, undecided: bool) -> dict[str, Any]:
    """What a tested row's data can say at the family's level ``alpha`` (Holm's strictest step,
    ALPHA / tested rows): the tightest margin shown, the minimum detectable effect at 80 % power,
    and, were the row inconclusive, the seeds that would decide it: a difference at the observed
    effect, or equivalence within the row's margin, whichever needs fewer (``undecided`` rows only)."""
    n, sd, diff, margin = int(row["n"]), row["sd_diff"], row["diff"], row["margin_pts"] / 100
    for_difference = seeds_for_difference(diff, sd, alpha) if undecided else math.nan
    for_equivalence = seeds_for_equivalence(diff, sd, margin, alpha) if undecided else math.nan
    which = "a difference" if for_difference <= for_equivalence else f"equivalence within ±{margin * 100:g} pts"
    return {
        "alpha_family": alpha,
        "tightest_margin_pts": tightest_margin(diff, sd, n, alpha) * 100,
        "mde_pts": detectable_dz(n, alpha) * sd * 100,
        "seeds_needed": min(for_difference, for_equivalence),
        "seeds_needed_for": which,
    }


def corrected(table: pd.DataFrame, family: str) -> pd.DataFrame:
    """Holm-corrected p-values of each test over the tested rows of ``table`` (one family per
    test), the power columns and the verdicts; the columns of a tested row exist (NaN) even where no
    row was tested."""
    if table.empty:
        return table
    table = table.assign(**{column: math.nan for column in TESTED_COLUMNS if column not in table})
    for raw, adjusted in FAMILIES.items():
        if raw not in table:
            table[raw] = math.nan
        table[adjusted] = holm(table[raw].to_numpy(dtype=float))
    tested = table["p_t"].notna()
    size = int(tested.sum())
    table.insert(0, "family", FAMILY_NAMES[family])
    table["family_size"] = size
    power = pd.DataFrame(
        [
            power_columns(r, ALPHA / size, r["p_t_holm"] >= ALPHA and not r["p_tost_holm"] < ALPHA) if ok else {}
            for ok, (_, r) in zip(tested, table.iterrows())
        ],
        index=table.index,
        columns=["alpha_family", "tightest_margin_pts", "mde_pts", "seeds_needed", "seeds_needed_for"],
    )
    table = pd.concat([table, power], axis=1)
    table["verdict"] = [verdict(r) for _, r in table.iterrows()]
    decided = ~table["verdict"].str.startswith("inconclusive")
    table["seeds_needed"] = table["seeds_needed"].mask(decided)  # seeds needed: only where the row is undecided
    table["seeds_needed_for"] = table["seeds_needed_for"].astype(object).mask(decided, "")
    return table


def pairwise(data: Collected, order: list[str], margin: float = MARGIN) -> pd.DataFrame:
    """Every two cells (in ``order``), tested where they can be paired on at least MIN_SEEDS seeds,
    listed with the reason where not: the exploratory family."""
    scores = cell_scores(data.runs)
    rows = [compare_cells(a, b, scores, data, margin) for a, b in combinations(order, 2)]
    return corrected(pd.DataFrame(rows), "exploratory")


def unknown_cells(questions: list[Question], cells: list[str]) -> str:
    """One line naming the cells of ``questions`` that ``cells`` does not have and listing those it
    has; empty when all are known."""
    unknown = list(dict.fromkeys(c for q in questions for c in (q.a, q.b) if c not in set(cells)))
    if not unknown:
        return ""
    return f"error: no cell {', '.join(map(repr, unknown))} in this folder; the cells are: {', '.join(cells)}"


def asked(data: Collected, questions: list[tuple[str, str, str, float]], family: str) -> pd.DataFrame:
    """One family of named questions, each (question, cell a, cell b, margin): Holm over those tested."""
    scores = cell_scores(data.runs)
    rows = [{"question": q, **compare_cells(a, b, scores, data, m)} for q, a, b, m in questions]
    return corrected(pd.DataFrame(rows), family)


def planned(data: Collected, questions: list[Question], margin: float = MARGIN) -> pd.DataFrame:
    """The comparisons the user planned, each with its own margin where given: their own family
    (Holm over the planned comparisons tested)."""
    named = [(q.text or f"{q.a} vs {q.b}", q.a, q.b, margin if q.margin is None else q.margin) for q in questions]
    return asked(data, named, "planned")


def compare_variants(data: Collected, summary: pd.DataFrame, margin: float = MARGIN) -> pd.DataFrame:
    """Each variant cell against the base cell of its model and activation in the same experiment,
    paired on their common seeds; Holm over the variants tested; time ratio variant / base. A variant
    without exactly one base cell is listed with the reason."""
    scores = cell_scores(data.runs)
    base = summary[summary["variant"] == ""]
    rows = []
    for _, r in summary[summary["variant"] != ""].iterrows():
        match = base[
            (base["model"] == r["model"])
            & (base["activation"] == r["activation"])
            & (base["experiment"] == r["experiment"])
        ]
        if len(match) != 1:
            why = (
                "no base cell (same model, activation and experiment, no overridden keys)"
                if match.empty
                else f"{len(match)} base cells: {', '.join(match['cell'])}"
            )
            rows.append({"variant": r["variant"], "a": r["cell"], "b": "", "n": 0, "note": f"not tested: {why}"})
            continue
        b = match.iloc[0]
        rows.append(
            {
                "variant": r["variant"],
                **compare_cells(r["cell"], b["cell"], scores, data, margin),
                "time_ratio": r["time_mean_s"] / b["time_mean_s"],
            }
        )
    return corrected(pd.DataFrame(rows), "variants")


def ranking_blocks(cells: list[str], scores: dict[str, pd.Series]) -> tuple[list[str], list[int]]:
    """The cells to rank and their blocks (seeds all of them finished): among the seed sets of the
    cells, the one with at least MIN_SEEDS seeds that the most cells cover (then the largest);
    a grid whose activations ran other seeds ranks the largest group instead of nothing."""
    best: tuple[int, int, list[str], list[int]] = (0, 0, [], [])
    for candidate in {frozenset(scores[c].index) for c in cells}:
        covering = [c for c in cells if candidate <= set(scores[c].index)]
        blocks = sorted(set.intersection(*(set(scores[c].index) for c in covering)))
        if len(blocks) >= MIN_SEEDS and (len(covering), len(blocks)) > best[:2]:
            best = (len(covering), len(blocks), covering, blocks)
    return best[2], best[3]


def ranked_tests(matrix: pd.DataFrame) -> pd.DataFrame:
    """Square matrix of the paired t-test's p between every two ranked cells on the ranking's own
    seeds (the columns of ``matrix``: cells; rows: the seeds all of them share), Holm over those
    pairs only: the tests that the critical-difference figure draws, on the same seeds and family as
    its ranks."""
    cells = list(matrix.columns)
    pairs = list(combinations(cells, 2))
    raw = [paired(matrix[a].to_numpy(), matrix[b].to_numpy())["p_t"] for a, b in pairs]
    adjusted = holm(raw)
    p = pd.DataFrame(1.0, index=cells, columns=cells)
    for (a, b), value in zip(pairs, adjusted):
        p.loc[a, b] = p.loc[b, a] = 1.0 if math.isnan(value) else value
    return p


def ranking(data: Collected, order: list[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Cells ranked per seed (1 = best test accuracy, ties averaged) over the seeds they all share
    (the blocks), among the cells with at least MIN_SEEDS runs on the most common data settings
    (``ranking_blocks``): (table of mean rank and mean accuracy per cell, best first, with the ranked
    cells no test separates it from; Friedman's test (3 cells or more), the paired tests among the
    ranked cells (``ranked_tests``: info["p"]) and the cells left out)."""
    scores = cell_scores(data.runs)
    eligible = [c for c in order if len(scores[c]) >= MIN_SEEDS]
    if not eligible:
        return pd.DataFrame(), {"note": f"no cell has {MIN_SEEDS} finished runs", "left_out": order}
    settings = {c: tuple(setting(data.configs[c], k) for k in DATA_KEYS) for c in eligible}
    common = max(set(settings.values()), key=lambda s: (sum(v == s for v in settings.values()), str(s)))
    cells, blocks = ranking_blocks([c for c in eligible if settings[c] == common], scores)
    info: dict[str, Any] = {
        "cells": len(cells),
        "blocks": len(blocks),
        "left_out": [c for c in order if c not in cells],
    }
    if len(cells) < 2:
        return pd.DataFrame(), {**info, "note": f"fewer than 2 cells share {MIN_SEEDS} seeds"}
    matrix = pd.DataFrame({c: scores[c][blocks] for c in cells})
    ranks = matrix.rank(axis=1, ascending=False)
    info["friedman_chi2"], info["friedman_p"] = friedman(matrix.to_numpy())
    info["p"] = ranked_tests(matrix)
    table = pd.DataFrame(
        {
            "cell": cells,
            "mean_rank": ranks.mean().to_numpy(),
            "test_acc_mean": matrix.mean().to_numpy(),
            "n_seeds": len(blocks),
            "not_separated_from": [
                ", ".join(o for o in cells if o != c and info["p"].loc[c, o] >= ALPHA) for c in cells
            ],
        }
    )
    return table.sort_values("mean_rank").reset_index(drop=True), info


def cd_matrix(ranks: pd.Series, p: pd.DataFrame) -> pd.DataFrame:
    """What the critical-difference figure may join: two cells get p = 1 only when no test separates
    any two cells whose mean rank lies between theirs (both included), else 0. The figure draws a
    bar over each maximal set of joined cells, from its lowest to its highest rank, so a bar never
    passes over a cell a test separates from one of its members; cells not separated but with a
    separated cell between them are left unjoined (``not_separated_from`` in ranking.csv says so)."""
    cells = list(ranks.sort_values().index)
    out = pd.DataFrame(np.eye(len(cells)), index=cells, columns=cells)
    for i, j in combinations(cells, 2):
        low, high = sorted((ranks[i], ranks[j]))
        span = [c for c in cells if low <= ranks[c] <= high]
        if all(p.loc[x, y] >= ALPHA for x, y in combinations(span, 2)):
            out.loc[i, j] = out.loc[j, i] = 1.0
    return out


ACTIVATION_MODELS = ["fcnn", "fcnn_dropout", "fcnn_bn", "fcnn_bn_dropout", "cnn3", "cnn4", "cnn3_bn", "cnn4_bn"]
STRUCTURE_FINDINGS = [
    ("BatchNorm", "fcnn_bn", "fcnn"),
    ("BatchNorm", "fcnn_bn_dropout", "fcnn_dropout"),
    ("BatchNorm", "cnn3_bn", "cnn3"),
    ("BatchNorm", "cnn4_bn", "cnn4"),
    ("dropout", "fcnn_dropout", "fcnn"),
    ("dropout", "fcnn_bn_dropout", "fcnn_bn"),
    ("a 4th conv layer instead of the FC layer (one function class)", "cnn4", "cnn3"),
    ("a 4th conv layer instead of the FC layer (one function class)", "cnn4_bn", "cnn3_bn"),
    ("weight sharing: the Siamese conv net against the plain CNN (other layers too)", "siamese_cnn", "cnn3"),
    ("weight sharing: the Siamese ResNet against the ResNet (10 outputs per branch)", "siamese_resnet", "resnet"),
    ("the auxiliary digit loss", "siamese_cnn_aux", "siamese_cnn"),
    ("the auxiliary digit loss", "siamese_resnet_aux", "siamese_resnet"),
]


def actual_activation(config: dict[str, Any]) -> str:
    """The activation a cell's model really ran (the authors' models run ReLU whatever the label)."""
    return str(setting(config, "model.activation._target_", "?")).rsplit(".", 1)[-1]


def finding_pairs(summary: pd.DataFrame, configs: dict[str, dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(question, cell a, cell b) for each question the report asks whose two base cells (no
    overridden keys, one experiment) are in ``summary``: the activation effect per basic model
    (tanh and LeakyReLU against ReLU; flagged where both cells ran the same activation whatever
    their labels), then the structural effects under ReLU."""
    base = summary[summary["variant"] == ""]
    out = []
    for experiment, cells in base.groupby("experiment", sort=False):
        where = f" [{experiment}]" if base["experiment"].nunique() > 1 else ""
        lookup = {(r.model, r.activation): r.cell for r in cells.itertuples()}
        for model in ACTIVATION_MODELS:
            for act, name in (("tanh", "tanh"), ("leakyrelu", "LeakyReLU")):
                if (model, act) in lookup and (model, "relu") in lookup:
                    a, b = lookup[(model, act)], lookup[(model, "relu")]
                    ran = {actual_activation(configs[a]), actual_activation(configs[b])}
                    label = f" (labels only: both ran {ran.pop()})" if len(ran) == 1 else ""
                    out.append((f"{name} instead of ReLU in {model}{label}{where}", a, b))
        for question, a, b in STRUCTURE_FINDINGS:
            if (a, "relu") in lookup and (b, "relu") in lookup:
                out.append((f"{question}: {a} vs {b}{where}", lookup[(a, "relu")], lookup[(b, "relu")]))
    return out


def findings(data: Collected, summary: pd.DataFrame, margin: float = MARGIN) -> pd.DataFrame:
    """The report's questions answered: each a paired comparison of two cells, Holm over the findings."""
    return asked(data, [(q, a, b, margin) for q, a, b in finding_pairs(summary, data.configs)], "report")


def differing_counts(table: pd.DataFrame) -> dict[str, int]:
    """How many tested pairs each test finds different (Holm, alpha 0.05): the paired t-test,
    Wilcoxon, McNemar, and the unpaired Welch test on the same runs."""
    if table.empty or "p_t_holm" not in table:
        return {"tested": 0}
    tested = table.dropna(subset=["p_t_holm"])
    counts = {"tested": len(tested)}
    for column in ("p_t_holm", "p_wilcoxon_holm", f"{MCNEMAR}_holm", "welch_p_holm"):
        counts[column] = int((tested[column] < ALPHA).sum())
    counts["equivalent"] = int((tested["p_tost_holm"] < ALPHA).sum())
    return counts
