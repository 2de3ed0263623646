"""report.md: the tables of an analysis, in words a reader can check. One function per section."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mnist_pairs.analysis.collect import Collected
from mnist_pairs.analysis.paired import MIN_SEEDS, differing_counts
from mnist_pairs.analysis.published import ALPHA


@dataclass
class Analysis:
    """Everything aggregation computed for one results folder."""

    name: str
    data: Collected
    order: list[str]  # the cells in the report's order
    summary: pd.DataFrame
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


def header(a: Analysis) -> list[str]:
    runs = a.data.runs
    status = runs["status"].value_counts()
    return [
        f"# {a.name}: results",
        "",
        f"{len(runs)} run records in {runs['cell'].nunique()} cells (a cell: one config, its seeds aside): "
        f"{status.get('ok', 0)} ok ({int(runs['collapsed'].sum())} of them collapsed to one class), "
        f"{status.get('failed', 0)} failed, {status.get('diverged', 0)} diverged; {len(a.data.corrupt)} corrupt records; "
        f"{len(a.data.incomplete)} run folders without a record (killed or running); {len(a.data.duplicates)} second records of a seed.",
        f"Devices: {', '.join(sorted(runs['device_name'].dropna().unique())) or 'none'}. Total training time {runs['train_time_s'].sum():.0f} s.",
    ]


def findings_section(a: Analysis) -> list[str]:
    if a.findings.empty:
        return []
    f = a.findings
    table = f.assign(
        diff_pts=["" if math.isnan(d) else f"{d * 100:+.2f}" for d in f["diff"]],
        d_z=f["d_z"].round(2),
        ci_pts=[
            "" if math.isnan(lo) else f"{lo * 100:+.1f} to {hi * 100:+.1f}"
            for lo, hi in zip(f["diff_ci_low"], f["diff_ci_high"])
        ],
    )
    return [
        "",
        "## Findings",
        "",
        "The report's questions, each a paired comparison of two cells on their common seeds (a seed draws the same "
        "pairs for every model): the first cell minus the second, in points of test accuracy, with its 95% CI (per "
        f"comparison, not adjusted); the paired t-test decides, Holm-corrected over these {len(table)} findings (a family "
        f"stated in advance; `pairwise.csv` corrects over every pair of cells, a larger family, so a pair may read "
        f"differently there). d_z is the mean difference over the SD of the differences; Wilcoxon's p (unadjusted) checks "
        f"the direction without assuming normality (its exact p cannot fall below 2/2^n: 0.0625 with 5 seeds). "
        f'"equivalent" needs a paired TOST (Holm) to show |difference| < {a.margin * 100:g} points.',
        "",
        markdown_table(
            present(
                table,
                ["question", "n", "mean_a", "mean_b", "diff_pts", "ci_pts", "d_z", "p_t_holm", "p_wilcoxon", "verdict"],
            )
        ),
    ]


def summary_section(a: Analysis) -> list[str]:
    s = a.summary
    drop = [c for c in ("variant", "experiment") if (s[c] == "").all() or s[c].nunique() == 1]
    return [
        "",
        "## Summary",
        "",
        "Per cell: records (`n_runs`), finished (`n_ok`), failed, diverged (NaN loss) and collapsed (finished, one class "
        "for every test pair); test accuracy over the `n` finished runs that have one: mean, SD (n-1), 95% t CI; time is "
        "the training wall time of PROTOCOL.md.",
        "",
        markdown_table(present(s.drop(columns=drop + ["model", "activation"]), list(s.columns))),
    ]


def figures_section(a: Analysis, out: Path) -> list[str]:
    return ["", "## Figures", "", *[f"![{k}]({p.relative_to(out)})" for k, p in a.figures.items()]]


def ranking_section(a: Analysis) -> list[str]:
    info = a.ranking_info
    lines = ["", "## Ranking", ""]
    if a.ranking.empty:
        return lines + [f"No ranking: {info.get('note', 'no cells')}."]
    left = (
        f" Not ranked (other pairs or fewer than {MIN_SEEDS} runs): {', '.join(info['left_out'])}."
        if info["left_out"]
        else ""
    )
    return lines + [
        f"Per seed, the {info['cells']} cells ranked by test accuracy (1 = best, ties averaged) over the {info['blocks']} seeds they "
        f"all share; Friedman's test that they rank alike: chi2 {info['friedman_chi2']:.1f}, p {info['friedman_p']:.2g}. In the "
        "figure a bar joins cells that the pairwise paired t-test (Holm over all pairs) does not tell apart." + left,
        "",
        markdown_table(a.ranking),
    ]


def pairwise_section(a: Analysis) -> list[str]:
    if a.pairwise.empty:
        return []
    counts = differing_counts(a.pairwise)
    untested = a.pairwise[a.pairwise["p_t_holm"].isna()]
    lines = ["", "## Every two cells", ""]
    if not counts["tested"]:
        reasons = "; ".join(f"{n} pairs: {why}" for why, n in untested["note"].value_counts().items())
        return lines + [f"`tables/pairwise.csv`: {len(a.pairwise)} pairs of cells, none tested ({reasons})."]
    n_min = int(a.pairwise["n"][a.pairwise["p_t_holm"].notna()].min())
    lines += [
        f"`tables/pairwise.csv`: {len(a.pairwise)} pairs of cells, {counts['tested']} tested on at least {MIN_SEEDS} common seeds. "
        f"Differ at alpha {ALPHA}, Holm over the tested pairs: paired t-test {counts['p_t_holm']} (it decides); McNemar's exact "
        f"test on all common test pairs pooled {counts['p_mcnemar_holm']} (it treats every test pair as independent and so "
        f"ignores the seed-to-seed variance of training: a check, not a decision); Wilcoxon {counts['p_wilcoxon_holm']} (its "
        f"exact p cannot fall below 2/2^n, {2 / 2 ** max(n_min, 1):.2g} for the smallest n here, so after Holm over many pairs it "
        f"can reject little). The unpaired Welch test on the same runs finds {counts['welch_p_holm']}: what pairing adds. "
        f"Equivalent within ±{a.margin * 100:g} points (paired TOST, Holm): {counts['equivalent']}.",
    ]
    if len(untested):
        reasons = untested["note"].value_counts()
        lines += ["", "Not tested: " + "; ".join(f"{n} pairs: {why}" for why, n in reasons.items()) + "."]
    return lines


def published_section(a: Analysis) -> list[str]:
    c = a.comparison
    lines = ["", "## Against the published numbers", ""]
    if c.empty:
        return lines + ["No cell matches a published row."]
    follows = c[c["protocol"] == "published"]
    differs = int(c["verdict"].str.startswith("differs").sum())
    equivalent = int(c["verdict"].str.startswith("equivalent").sum())
    lines += [
        "Published: the authors' aggregated GPU results (1 SD; the report's '±' is 2 SD). They come from the authors' code, "
        "which differs from the report's text (PROTOCOL.md): under the report's protocol (our default) rows such as the plain "
        "CNNs are expected to differ; the `replication` experiment runs the authors' code's behaviours. Their tanh and "
        "LeakyReLU rows ran ReLU (`pub_activation_actual`). A row is tested only when our runs used the published protocol "
        "(epochs, pairs, batch size, no validation split, no augmentation, the learning-rate presets, ...: `protocol`). "
        f"Welch's t-test from the aggregates and TOST for equivalence within ±{a.margin * 100:g} points, each Holm-corrected over the "
        f"{len(follows)} tested rows: {differs} differ, {equivalent} are shown equivalent, {len(follows) - differs - equivalent} "
        "are inconclusive (neither a difference nor equivalence shown).",
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
    ]
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
    return [
        "",
        "## Variants against their base runs",
        "",
        "Each variant (overridden keys) against the cell of the same model and activation without them, paired on their "
        f"common seeds: difference (variant minus base) with its 95% CI (unadjusted), the paired t-test's p Holm-corrected over "
        f"the {len(a.variants)} variants (it decides), Wilcoxon's p (unadjusted); time ratio variant / base.",
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
    ]


def errors_section(a: Analysis) -> list[str]:
    ok = a.data.runs[a.data.runs["status"] == "ok"]
    missing, collapsed = int((~ok["has_pairs"]).sum()), int((ok["has_pairs"] & ok["collapsed"]).sum())
    lines = ["", "## Where the models err", ""]
    if a.near_equal.empty:
        return lines + [
            f"No usable per-pair predictions: {missing} finished runs have none (records before schema 2), {collapsed} collapsed."
        ]
    lines += [
        "Errors pooled over each cell's test pairs (`tables/errors_by_digit_pair.csv`, `tables/errors_by_difference.csv`), "
        f"collapsed runs left out ({collapsed}: they predict one class and would only show the collapse). Share of a cell's "
        "errors on pairs whose digits differ by at most 1, against the share of such pairs:",
        "",
        markdown_table(a.near_equal),
    ]
    if missing:
        lines += [
            "",
            f"{missing} finished runs have no per-pair predictions (older records) and are left out here and in McNemar's test.",
        ]
    return lines


def beyond_section(a: Analysis) -> list[str]:
    if a.beyond.empty:
        return []
    return [
        "",
        "## Beyond the report",
        "",
        "Models the report does not have and tuned configs (`tuned=<name>`, chosen by experiment=tune on validation pairs held "
        "out of the training pairs; the test pairs took no part in any choice), next to the report's published numbers (1 SD, "
        "95% t CI) and the claims of other public reports on this task (PROTOCOL.md; their n is mostly not given).",
        "",
        markdown_table(a.beyond),
    ]


def problems_section(a: Analysis) -> list[str]:
    runs = a.data.runs
    problems = runs[runs["status"] != "ok"]
    if not (len(problems) or a.data.corrupt or a.data.incomplete or a.data.duplicates or a.data.warnings):
        return []
    lines = ["", "## Runs that did not finish, and warnings", ""]
    lines += [f"- warning: {w}" for w in a.data.warnings]
    lines += [f"- `{r.path}`: {r.status}: {r.error}" for r in problems.itertuples()]
    lines += [f"- corrupt record: {c}" for c in a.data.corrupt]
    lines += [f"- no record: `{p}`" for p in a.data.incomplete]
    lines += [f"- {d}" for d in a.data.duplicates]
    return lines


def write_report(a: Analysis, out: Path) -> Path:
    sections = [
        header(a),
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
