"""Paired comparisons of cells. A seed draws the same training and test pairs whatever the model
(mnist_pairs.seeding, stream "data"), so two cells' runs with the same seed are paired
observations on the same data: the difference of their test accuracies cancels the ~1.3 points of
sampling noise that 1000 test pairs put on each run.

- ``pairwise``: every two cells on their common seeds: mean difference, 95% CI, paired t-test (the
  test that decides), Wilcoxon signed-rank, TOST equivalence, Cohen's d_z, McNemar's exact test
  pooled over all common test pairs, and the unpaired Welch test on the same runs (for contrast);
  each p Holm-corrected over all tested pairs. Pairs with fewer than MIN_SEEDS common seeds are
  listed, not tested.
- ``compare_variants``: each variant against its base cell, the same way (Holm over the variants).
- ``ranking``: per seed, the cells ranked; mean ranks and Friedman's test.
- ``findings``: the questions the report asks (activation, BatchNorm, dropout, weight sharing,
  auxiliary loss), each a named pair of cells (Holm over the findings)."""

from __future__ import annotations

import math
from itertools import combinations
from typing import Any

import pandas as pd

from mnist_pairs.analysis.collect import Collected
from mnist_pairs.analysis.published import ALPHA, MARGIN
from mnist_pairs.analysis.stats import friedman, holm, mcnemar, paired, paired_tost, welch
from mnist_pairs.records import setting

MIN_SEEDS = 5
DATA_KEYS = (
    "data.n_train",
    "data.n_test",
    "data.n_val",
)  # with the seed, what fixes a run's pairs (records without test_pairs)
FAMILIES = {
    "p_t": "p_t_holm",
    "p_wilcoxon": "p_wilcoxon_holm",
    "p_tost": "p_tost_holm",
    "p_mcnemar": "p_mcnemar_holm",
    "welch_p": "welch_p_holm",
}


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
    diverged): the paired tests leave them out, which favours the less stable cell, so the tables say how many."""
    return len(data.unfinished_seeds.get(cell, set()) & set(scores[other].index))


def compare_cells(
    a: str, b: str, scores: dict[str, pd.Series], data: Collected, margin: float = MARGIN
) -> dict[str, Any]:
    """One row: cell ``a`` against cell ``b`` on their matched seeds (differences are a - b)."""
    seeds, note = matched_seeds(a, b, scores, data)
    row: dict[str, Any] = {
        "a": a,
        "b": b,
        "n": len(seeds),
        "lost_a": lost_seeds(a, b, scores, data),
        "lost_b": lost_seeds(b, a, scores, data),
        "note": note,
    }
    if len(seeds) < MIN_SEEDS:
        return {**row, "note": note or f"not tested: {len(seeds)} common seeds (fewer than {MIN_SEEDS})"}
    x, y = scores[a][seeds].to_numpy(), scores[b][seeds].to_numpy()
    test = paired(x, y)
    row.update(
        mean_a=x.mean(),
        mean_b=y.mean(),
        **{k: test[k] for k in ("diff", "diff_ci_low", "diff_ci_high", "d_z", "p_t", "p_wilcoxon")},
    )
    row["p_tost"] = paired_tost(x, y, margin)
    row["welch_p"] = welch(x.mean(), x.std(ddof=1), len(x), y.mean(), y.std(ddof=1), len(y))["p"]
    both = [(data.pairs[(a, s)], data.pairs[(b, s)]) for s in seeds if (a, s) in data.pairs and (b, s) in data.pairs]
    if both:
        a_only = int(sum((pa.correct & ~pb.correct).sum() for pa, pb in both))
        b_only = int(sum((~pa.correct & pb.correct).sum() for pa, pb in both))
        row.update(
            test_pairs=int(sum(len(pa.correct) for pa, _ in both)),
            a_only=a_only,
            b_only=b_only,
            p_mcnemar=mcnemar(a_only, b_only),
        )
    return row


def verdict(row: pd.Series, margin: float = MARGIN) -> str:
    """What the paired tests of one row show, in words: the paired t-test decides (Holm-corrected
    over the table's family); equivalence needs the paired TOST (Holm) too; seeds lost to failed or
    diverged runs are named."""
    p = row.get("p_t_holm")
    if not isinstance(p, float) or math.isnan(p):
        return row.get("note") or "not tested"
    if p < ALPHA:
        words = f"{'higher' if row['diff'] > 0 else 'lower'} by {abs(row['diff']) * 100:.1f} pts"
    elif row["p_tost_holm"] < ALPHA:
        words = f"equivalent within ±{margin * 100:g} pts"
    else:
        words = f"inconclusive: no difference shown after Holm, equivalence within ±{margin * 100:g} pts not shown"
    lost = [
        f"{row[k]} seeds lost to unfinished runs of {row[c]}"
        for k, c in (("lost_a", "a"), ("lost_b", "b"))
        if row.get(k)
    ]
    return words + (f" ({'; '.join(lost)})" if lost else "")


TESTED_COLUMNS = ("mean_a", "mean_b", "diff", "diff_ci_low", "diff_ci_high", "d_z", "test_pairs", "a_only", "b_only")


def corrected(table: pd.DataFrame, margin: float = MARGIN) -> pd.DataFrame:
    """Holm-corrected p-values of each test over the rows of ``table`` (one family per test) and
    the verdicts; the columns of a tested row exist (NaN) even where no row was tested."""
    if table.empty:
        return table
    for column in TESTED_COLUMNS:
        if column not in table:
            table[column] = math.nan
    for raw, adjusted in FAMILIES.items():
        if raw not in table:
            table[raw] = math.nan
        table[adjusted] = holm(table[raw].to_numpy(dtype=float))
    table["verdict"] = [verdict(r, margin) for _, r in table.iterrows()]
    return table


def pairwise(data: Collected, order: list[str], margin: float = MARGIN) -> pd.DataFrame:
    """Every two cells (in ``order``), tested where they can be paired on at least MIN_SEEDS seeds,
    listed with the reason where not."""
    scores = cell_scores(data.runs)
    return corrected(
        pd.DataFrame([compare_cells(a, b, scores, data, margin) for a, b in combinations(order, 2)]), margin
    )


def compare_variants(data: Collected, summary: pd.DataFrame, margin: float = MARGIN) -> pd.DataFrame:
    """Each variant cell against the base cell of its model and activation in the same experiment,
    paired on their common seeds; Holm over the variants; time ratio variant / base. A variant
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
    return corrected(pd.DataFrame(rows), margin)


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


def ranking(data: Collected, order: list[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Cells ranked per seed (1 = best test accuracy, ties averaged) over the seeds they all share
    (the blocks), among the cells with at least MIN_SEEDS runs on the most common data settings
    (``ranking_blocks``): (table of mean rank and mean accuracy per cell, best first; Friedman's
    test and the cells left out)."""
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
    table = pd.DataFrame(
        {
            "cell": cells,
            "mean_rank": ranks.mean().to_numpy(),
            "test_acc_mean": matrix.mean().to_numpy(),
            "n_seeds": len(blocks),
        }
    )
    return table.sort_values("mean_rank").reset_index(drop=True), info


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
    scores = cell_scores(data.runs)
    rows = [
        {"question": q, **compare_cells(a, b, scores, data, margin)} for q, a, b in finding_pairs(summary, data.configs)
    ]
    return corrected(pd.DataFrame(rows), margin)


def significance_matrix(table: pd.DataFrame, cells: list[str]) -> pd.DataFrame:
    """Square matrix of the pairwise table's Holm-corrected paired-t p among ``cells``, as a
    critical-difference diagram reads it (p >= alpha: joined by a bar). A pair that could not be
    tested (ranked cells share their blocks, so only other test pairs can cause it) counts as not
    shown different: 1."""
    matrix = pd.DataFrame(1.0, index=cells, columns=cells)
    tested = table.dropna(subset=["p_t_holm"])
    for r in tested[tested["a"].isin(cells) & tested["b"].isin(cells)].itertuples():
        matrix.loc[r.a, r.b] = matrix.loc[r.b, r.a] = r.p_t_holm
    return matrix


def differing_counts(table: pd.DataFrame) -> dict[str, int]:
    """How many tested pairs each test finds different (Holm, alpha 0.05): the paired t-test,
    Wilcoxon, McNemar, and the unpaired Welch test on the same runs."""
    if table.empty or "p_t_holm" not in table:
        return {"tested": 0}
    tested = table.dropna(subset=["p_t_holm"])
    counts = {"tested": len(tested)}
    for column in ("p_t_holm", "p_wilcoxon_holm", "p_mcnemar_holm", "welch_p_holm"):
        counts[column] = int((tested[column] < ALPHA).sum())
    counts["equivalent"] = int((tested["p_tost_holm"] < ALPHA).sum())
    return counts
