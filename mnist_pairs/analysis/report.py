"""report.md: the tables of an analysis, in words a reader can check. One function per section."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mnist_pairs.analysis import decisions
from mnist_pairs.analysis.collect import Collected
from mnist_pairs.analysis.paired import MCNEMAR, MIN_SEEDS, differing_counts
from mnist_pairs.analysis.published import ALPHA, MARGIN, MARGIN_REASON
from mnist_pairs.analysis.stats import MAX_SEEDS, POWER


@dataclass
class Analysis:
    """Everything aggregation computed for one results folder."""

    name: str
    data: Collected
    order: list[str]  # the cells in the report's order
    summary: pd.DataFrame
    planned: pd.DataFrame
    findings: pd.DataFrame
    pairwise: pd.DataFrame
    ranking: pd.DataFrame
    ranking_info: dict[str, Any]
    comparison: pd.DataFrame
    variants: pd.DataFrame
    errors_by_digit_pair: pd.DataFrame
    errors_by_difference: pd.DataFrame
    near_equal: pd.DataFrame
    beyond: pd.DataFrame
    margin: float
    figures: dict[str, Path] = field(default_factory=dict)
    looks: dict[str, list[int]] = field(default_factory=dict)  # cells aggregated before with fewer seeds
    decisions: pd.DataFrame = field(default_factory=pd.DataFrame)  # python -m mnist_pairs.decide's questions


def markdown_table(df: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub markdown table; floats rounded to ``digits`` significant places."""

    def cell(v: object) -> str:
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.{digits}g}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def present(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``df`` with those of ``columns`` it has, the ones that hold a value somewhere."""
    return df[[c for c in columns if c in df and df[c].notna().any()]]


def section(title: str, *lines: str) -> list[str]:
    """A report section: its heading, then ``lines``."""
    return ["", f"## {title}", "", *lines]


def header(a: Analysis) -> list[str]:
    runs = a.data.runs
    status = runs["status"].value_counts()
    return [
        f"# {a.name}: results",
        "",
        f"{len(runs)} run records in {runs['cell'].nunique()} cells (a cell: one config, its seeds aside): "
        f"{status.get('ok', 0)} ok ({int(runs['collapsed'].sum())} of them collapsed to one class), "
        f"{status.get('failed', 0)} failed, {status.get('diverged', 0)} diverged; {len(a.data.corrupt)} corrupt "
        f"records; {len(a.data.incomplete)} run folders without a record (killed or running); "
        f"{len(a.data.interrupted)} interrupted runs (stopped by a signal: not counted, the same command resumes "
        "them); "
        f"{len(a.data.duplicates)} second records of a seed.",
        f"Devices: {', '.join(sorted(runs['device_name'].dropna().unique())) or 'none'}. Total training time "
        f"{runs['train_time_s'].sum():.0f} s.",
    ]


PAIRING = (
    "Pairing (the same seed draws the same pairs for every model) cancels only the errors both cells share: test "
    "pairs both get right or both get wrong add nothing to the difference, while the pairs only one of them gets right "
    "still carry test-set noise, and each run's training noise stays. Two models with independent errors gain nothing "
    "from pairing on the test set; `test_set_share` says how much of each difference's variance the discordant pairs "
    "explain (the rest is training), and `narrow_by` which of more test pairs or more seeds would narrow its CI "
    '(Jordan, "Calibrated Chaos", ICLR 2024; Bouthillier et al., "Accounting for Variance in ML Benchmarks", '
    "MLSys 2021)."
)
COMPARED = [
    "question",
    "n",
    "mean_a",
    "mean_b",
    "diff_pts",
    "ci_pts",
    "d_z",
    "p_t_holm",
    "p_wilcoxon",
    "margin_pts",
    "tightest_margin_pts",
    "mde_pts",
    "seeds_needed",
    "p_a_better",
    "test_set_share",
    "narrow_by",
    "verdict",
]


def compared_table(f: pd.DataFrame) -> pd.DataFrame:
    """A family's rows for the report: differences and CIs in points, P(A > B) with its interval."""
    return f.assign(
        diff_pts=["" if math.isnan(d) else f"{d * 100:+.2f}" for d in f["diff"]],
        d_z=f["d_z"].round(2),
        ci_pts=[
            "" if math.isnan(lo) else f"{lo * 100:+.1f} to {hi * 100:+.1f}"
            for lo, hi in zip(f["diff_ci_low"], f["diff_ci_high"])
        ],
        p_a_better=[
            "" if math.isnan(p) else f"{p:.2f} ({lo:.2f}-{hi:.2f})"
            for p, lo, hi in zip(f["p_a_better"], f["p_a_better_low"], f["p_a_better_high"])
        ],
    )


def tested(f: pd.DataFrame) -> int:
    return int(f["p_t"].notna().sum()) if "p_t" in f else 0


def columns_text(a: Analysis) -> str:
    default = (
        f"default {MARGIN * 100:g} pt: {MARGIN_REASON}"
        if math.isclose(a.margin, MARGIN)
        else f"set by --margin; the default, {MARGIN * 100:g} pt, is {MARGIN_REASON}"
    )
    return (
        "Each row: the first cell minus the second on their common seeds, in points of test accuracy, with its 95% CI "
        "(per comparison, not adjusted); the paired t-test decides, Holm-corrected over the family's tested rows; d_z "
        "is the mean difference over the SD of the differences; Wilcoxon's exact signed-rank p (unadjusted, on the "
        "counts of correct test pairs, ties exact) checks the direction without assuming normality, and cannot fall "
        f'below 2/2^n (0.0625 with 5 seeds). "equivalent" needs a paired TOST (Holm) to show |difference| < '
        f"`margin_pts` ({a.margin * 100:g} pts unless a question sets its own; {default}). `tightest_margin_pts`: the "
        "smallest margin the data show (the largest |bound| of the (1 - 2α') CI, α' = 0.05 / the family's tested rows, "
        f"Holm's strictest step); `mde_pts`: the smallest difference a paired t-test detects at α' with {POWER:.0%} "
        "power on these seeds, from the observed SD of the differences (statsmodels TTestPower); `seeds_needed`: for "
        "an inconclusive row, about how many seeds would decide it at α' and that power (a difference at the observed "
        "effect, or equivalence within the margin at the observed difference, whichever needs fewer), assuming the SD "
        "stays as observed. `p_a_better`: the share of seeds on which the first cell won, with its Wilson 95% "
        "interval. " + PAIRING
    )


def planned_section(a: Analysis) -> list[str]:
    if a.planned.empty:
        return []
    return section(
        "Your planned comparisons",
        f"The comparisons named before looking (`--compare`, `--questions`): their own family, Holm over the "
        f"{tested(a.planned)} tested of {len(a.planned)}, apart from the report's questions and the exploratory "
        f"every-two-cells table (`tables/findings.csv`, family `{a.planned['family'].iloc[0]}`). " + columns_text(a),
        "",
        markdown_table(present(compared_table(a.planned), COMPARED)),
    )


def findings_section(a: Analysis) -> list[str]:
    if a.findings.empty:
        return []
    lines = section(
        "Findings",
        f"The report's questions, each a paired comparison of two cells: a family stated in advance, Holm over its "
        f"{tested(a.findings)} tested rows of {len(a.findings)} (`pairwise.csv` is the exploratory family of every two "
        "cells, corrected over all its tested pairs, so a pair may read differently there)."
        + ("" if not a.planned.empty else " " + columns_text(a)),
        "",
        markdown_table(present(compared_table(a.findings), COMPARED)),
    )
    counted = a.findings[a.findings["p_t"].notna()]
    if len(counted):
        verdicts = counted["verdict"]
        undecided = verdicts.str.startswith("inconclusive")
        lines += [
            "",
            f"Of {len(counted)} tested findings: {int((counted['p_t_holm'] < ALPHA).sum())} differ, "
            f"{int(verdicts.str.startswith('equivalent').sum())} are equivalent within their margin, "
            f"{int(undecided.sum())} inconclusive, of which "
            f"{int(counted.loc[undecided, 'seeds_needed'].notna().sum())} "
            f"could be decided by fewer than {MAX_SEEDS} seeds (`seeds_needed`).",
        ]
    return lines


def summary_section(a: Analysis) -> list[str]:
    s = a.summary
    drop = [c for c in ("variant", "experiment") if (s[c] == "").all() or s[c].nunique() == 1]
    shown = [*s.columns, "code"]
    if not (s["n_collapsed"] > 0).any():  # no run collapsed: the columns of modes say nothing
        drop += ["collapse_rate", "collapse_rate_low", "collapse_rate_high", "n_trained", "test_acc_mean_trained"]
    runs = a.data.runs
    if "code" in runs:  # per cell, the code labels of its runs (collect.code_label; a runs table made by hand has none)
        s = s.assign(code=s["cell"].map(runs.groupby("cell")["code"].agg(lambda v: ", ".join(sorted(set(v))))))
    return section(
        "Summary",
        "Per cell: records (`n_runs`), finished (`n_ok`), failed, diverged (NaN loss) and collapsed (finished, one "
        "class for every test pair); test accuracy over the `n` finished runs that have one: mean, SD (n-1), 95% t CI "
        "clipped to [0, 1] (an accuracy cannot leave it; clipping keeps the coverage); `test_acc_sd_binomial` = "
        "sqrt(p(1-p)/n_test), the SD that sampling the test pairs alone gives a run, beside the seed-to-seed SD "
        "`test_acc_sd`; `collapse_rate` (Wilson 95% interval) and `test_acc_mean_trained`, the mean of the runs that "
        "did not collapse: where runs split between collapse and training, the mean describes neither. Time is the "
        "training wall time of docs/protocol.md. `code`: the commit(s) that produced the cell's runs (`+dirty`: a "
        "modified checkout; `mnist_pairs <version>` outside a git checkout).",
        "",
        markdown_table(present(s.drop(columns=drop + ["model", "activation"]), shown)),
    )


def figures_section(a: Analysis, out: Path) -> list[str]:
    return section("Figures", *[f"![{k}]({p.relative_to(out)})" for k, p in a.figures.items()])


def ranking_section(a: Analysis) -> list[str]:
    info = a.ranking_info
    if a.ranking.empty:
        return section("Ranking", f"No ranking: {info.get('note', 'no cells')}.")
    left = (
        f" Not ranked (other pairs or fewer than {MIN_SEEDS} runs): {', '.join(info['left_out'])}."
        if info["left_out"]
        else ""
    )
    k = info["cells"]
    friedman = (
        f"Friedman's test that they rank alike: chi2 {info['friedman_chi2']:.1f}, p {info['friedman_p']:.2g}"
        if k >= 3
        else "Friedman's test needs 3 cells or more: not run"
    )
    return section(
        "Ranking",
        f"Per seed, the {k} cells ranked by test accuracy (1 = best, ties averaged) over the {info['blocks']} seeds "
        f"they all share; {friedman}. The figure's tests are paired t-tests among these {k} cells on the same "
        f"{info['blocks']} seeds, Holm over their {k * (k - 1) // 2} pairs; a bar joins cells only where no test "
        "separates any two cells under it (no difference shown, which is not equality). Cells not separated but with "
        "a separated cell between them get no bar: `not_separated_from` lists them." + left,
        "",
        markdown_table(a.ranking),
    )


def pairwise_section(a: Analysis) -> list[str]:
    if a.pairwise.empty:
        return []
    counts = differing_counts(a.pairwise)
    untested = a.pairwise[a.pairwise["p_t_holm"].isna()]
    reasons = "; ".join(f"{n} pairs: {why}" for why, n in untested["note"].value_counts().items())
    if not counts["tested"]:
        return section(
            "Every two cells", f"`tables/pairwise.csv`: {len(a.pairwise)} pairs of cells, none tested ({reasons})."
        )
    n_min = int(a.pairwise["n"][a.pairwise["p_t_holm"].notna()].min())
    lines = section(
        "Every two cells",
        f"`tables/pairwise.csv`, the **exploratory** family: {len(a.pairwise)} pairs of cells, {counts['tested']} "
        f"tested on at least {MIN_SEEDS} common seeds, Holm over all of them, so one question among them needs far "
        "more evidence than asked alone (ask it with `--compare`). "
        f"Differ at alpha {ALPHA}: paired t-test {counts['p_t_holm']} (it decides); McNemar's exact test on all common "
        f"test pairs pooled {counts[f'{MCNEMAR}_holm']} (`{MCNEMAR}`: it treats every test pair as independent and so "
        "ignores the seed-to-seed variance of training; a check, not a decision, and it may disagree with the paired t "
        f"by orders of magnitude); Wilcoxon {counts['p_wilcoxon_holm']} (its exact p cannot fall below 2/2^n, "
        f"{2 / 2 ** max(n_min, 1):.2g} for the smallest n here, so after Holm over many pairs it can reject little). "
        f"The unpaired Welch test on the same runs finds {counts['welch_p_holm']}: what pairing adds. Equivalent "
        f"within ±{a.margin * 100:g} points (paired TOST, Holm): {counts['equivalent']}.",
    )
    if len(untested):
        lines += ["", f"Not tested: {reasons}."]
    return lines


def published_section(a: Analysis) -> list[str]:
    c = a.comparison
    if c.empty:
        return section("Against the published numbers", "No cell matches a published row.")
    follows = c[c["protocol"] == "published"]
    n_tested = int(c["p_holm"].notna().sum())
    differs = int(c["verdict"].str.startswith("differs").sum())
    equivalent = int(c["verdict"].str.startswith("equivalent").sum())
    lines = section(
        "Against the published numbers",
        "Published: the authors' aggregated GPU results (1 SD; the report's '±' is 2 SD). They come from the authors' "
        "code, which differs from the report's text (docs/protocol.md): under the report's protocol (our default) "
        "rows such as the plain CNNs are expected to differ; the `replication` experiment runs the authors' code's "
        "behaviours. Their tanh and LeakyReLU rows ran ReLU (`pub_activation_actual`). A row is tested only when "
        "our runs used the published protocol (epochs, pairs, batch size, no validation split, no augmentation, the "
        "learning-rate presets, ...: `protocol`). "
        f"A row needs {MIN_SEEDS} runs, as the paired tests do (Welch from aggregates at n = 2 finds a difference "
        "far more often than its alpha). Welch's t-test from the aggregates and TOST for equivalence within "
        f"±{a.margin * 100:g} points, each Holm-corrected over the {n_tested} tested rows: {differs} differ, "
        f"{equivalent} are shown equivalent, {n_tested - differs - equivalent} are inconclusive (neither a "
        "difference nor equivalence shown).",
        "",
        markdown_table(
            c[
                [
                    "cell",
                    "pub_activation_actual",
                    "pub_n",
                    "pub_mean",
                    "pub_sd",
                    "n_runs",
                    "n_failed",
                    "n_diverged",
                    "n_collapsed",
                    "n",
                    "mean",
                    "sd",
                    "diff",
                    "diff_ci_low",
                    "diff_ci_high",
                    "p_holm",
                    "p_tost_holm",
                    "verdict",
                ]
            ]
        ),
    )
    if len(follows):
        lines += [
            "",
            "Training time relative to fcnn/relu (absolute times: a 2019 laptop GPU for the published ones):",
            "",
            markdown_table(follows[["cell", "pub_time_s", "time_s", "pub_time_ratio", "time_ratio"]]),
        ]
    return lines


def variants_section(a: Analysis) -> list[str]:
    if a.variants.empty:
        return []
    return section(
        "Variants against their base runs",
        "Each variant (overridden keys) against the cell of the same model and activation without them, paired on "
        "their common seeds: difference (variant minus base) with its 95% CI (unadjusted), the paired t-test's p "
        "Holm-corrected over "
        + (
            f"the {tested(a.variants)} variants tested of {len(a.variants)} (it decides)"
            if tested(a.variants)
            else f"the variants tested (none of the {len(a.variants)} could be tested)"
        )
        + ", Wilcoxon's exact p (unadjusted); time ratio variant / base.",
        "",
        markdown_table(
            present(
                a.variants,
                [
                    "a",
                    "b",
                    "n",
                    "mean_a",
                    "mean_b",
                    "diff",
                    "diff_ci_low",
                    "diff_ci_high",
                    "p_t_holm",
                    "p_wilcoxon",
                    "time_ratio",
                    "verdict",
                ],
            )
        ),
    )


def errors_section(a: Analysis) -> list[str]:
    ok = a.data.runs[a.data.runs["status"] == "ok"]
    missing, collapsed = int((~ok["has_pairs"]).sum()), int((ok["has_pairs"] & ok["collapsed"]).sum())
    if a.near_equal.empty:
        return section(
            "Where the models err",
            f"No usable per-pair predictions: {missing} finished runs have none (records before schema 2), {collapsed} "
            "collapsed.",
        )
    lines = section(
        "Where the models err",
        "Errors pooled over each cell's test pairs (`tables/errors_by_digit_pair.csv`, "
        f"`tables/errors_by_difference.csv`), collapsed runs left out ({collapsed}: they predict one class and would "
        "only show the collapse). Share of a cell's errors on pairs whose digits differ by at most 1, against the "
        "share of such pairs:",
        "",
        markdown_table(a.near_equal),
    )
    if missing:
        lines += [
            "",
            f"{missing} finished runs have no per-pair predictions (older records) and are left out here and in "
            "McNemar's test.",
        ]
    return lines


def beyond_section(a: Analysis) -> list[str]:
    if a.beyond.empty:
        return []
    return section(
        "Beyond the report",
        "Models the report does not have and tuned configs (`tuned=<name>`, chosen by experiment=tune on validation "
        "pairs held out of the training pairs; the test pairs took no part in any choice), next to the report's "
        "published numbers (1 SD, 95% t CI) and the claims of other public reports on this task (docs/protocol.md; "
        "their n is mostly not given).",
        "",
        markdown_table(a.beyond),
    )


def looks_section(a: Analysis) -> list[str]:
    if not a.looks:
        return []
    grown = "; ".join(f"{cell}: n {' -> '.join(map(str, n))}" for cell, n in a.looks.items())
    return section(
        "Aggregated again after seeds were added",
        f"The folder's aggregation ledger (`aggregations.jsonl`) shows earlier looks with fewer seeds: {grown}. The "
        "p-values here are those of a test run once on these n; re-aggregating as seeds are added and stopping at the "
        "first p < 0.05 inflates the false-positive rate (looks at 5, 10, 15 and 20 seeds: about 13 % instead of 5 %). "
        "Fix the number of seeds in advance, or use a sequential procedure made for repeated looks.",
    )


def problems_section(a: Analysis) -> list[str]:
    runs = a.data.runs
    problems = runs[runs["status"] != "ok"]
    listed = (a.data.corrupt, a.data.incomplete, a.data.duplicates, a.data.warnings, a.data.interrupted)
    if not (len(problems) or any(listed)):
        return []
    lines = section("Runs that did not finish, and warnings", *[f"- warning: {w}" for w in a.data.warnings])
    lines += [f"- `{r.path}`: {r.status}: {r.error}" for r in problems.itertuples()]
    lines += [f"- {line} (the same command resumes it)" for line in a.data.interrupted]
    lines += [f"- corrupt record: {c}" for c in a.data.corrupt]
    lines += [f"- no record: `{p}`" for p in a.data.incomplete]
    lines += [f"- {d}" for d in a.data.duplicates]
    return lines


def write_report(a: Analysis, out: Path) -> Path:
    sections = [
        header(a),
        looks_section(a),
        planned_section(a),
        decisions.section(a.decisions),
        findings_section(a),
        summary_section(a),
        figures_section(a, out),
        ranking_section(a),
        pairwise_section(a),
        published_section(a),
        variants_section(a),
        errors_section(a),
        beyond_section(a),
        problems_section(a),
    ]
    path = out / "report.md"
    path.write_text("\n".join(line for section in sections for line in section) + "\n")
    return path
