"""Aggregate a results folder: records -> cells -> paired comparisons, ranking, published rows,
error analysis -> tables/, figures/ and report.md. Reads only record.json files
(mnist_pairs.analysis holds each step).

    python -m mnist_pairs.aggregate outputs/benchmark [--out DIR] [--published gpu|cpu] [--margin 0.02]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mnist_pairs.analysis import errors, figures, paired
from mnist_pairs.analysis.collect import Collected, collect
from mnist_pairs.analysis.published import MARGIN, beyond_table, compare_with_published, published
from mnist_pairs.analysis.report import Analysis, write_report
from mnist_pairs.analysis.summary import REPORT_ORDER, cell_order, summarize

HEATMAP_CELLS = 16
FIGURE_FILES = (
    "accuracy.png",
    "training_time.png",
    "convergence.png",
    "versus_published.png",
    "ranking.png",
    "pairwise.png",
    "errors_by_digit_pair.png",
    "errors_by_difference.png",
    "aux_digits.png",
)


def analyse(results_dir: Path, data: Collected, source: str = "gpu", margin: float = MARGIN) -> Analysis:
    """Every table of the analysis."""
    order = cell_order(data.runs)
    summary = summarize(data.runs)
    reference = published(source)
    ranking, ranking_info = paired.ranking(data, order)
    by_pair, by_diff = errors.error_tables(data, order)
    return Analysis(
        name=results_dir.name,
        data=data,
        order=order,
        summary=summary,
        findings=paired.findings(data, summary, margin),
        pairwise=paired.pairwise(data, order, margin),
        ranking=ranking,
        ranking_info=ranking_info,
        comparison=compare_with_published(summary, data.configs, reference, source, margin),
        variants=paired.compare_variants(data, summary, margin),
        errors_by_digit_pair=by_pair,
        errors_by_difference=by_diff,
        near_equal=errors.near_equal_share(by_diff),
        beyond=beyond_table(summary, reference, REPORT_ORDER),
        margin=margin,
    )


def write_tables(a: Analysis, tables: Path) -> None:
    """Every non-empty table as CSV."""
    tables.mkdir(parents=True, exist_ok=True)
    named = {
        "runs": a.data.runs,
        "history": a.data.history,
        "summary": a.summary,
        "findings": a.findings,
        "pairwise": a.pairwise,
        "ranking": a.ranking,
        "published_comparison": a.comparison,
        "variants": a.variants,
        "beyond": a.beyond,
        "errors_by_digit_pair": a.errors_by_digit_pair,
        "errors_by_difference": a.errors_by_difference,
    }
    for name, table in named.items():
        if not table.empty:
            table.to_csv(tables / f"{name}.csv", index=False)
        else:  # an earlier aggregation's table would no longer be true
            (tables / f"{name}.csv").unlink(missing_ok=True)


def draw_figures(a: Analysis, folder: Path) -> dict[str, Path]:
    """The figures that the tables can fill; each error figure shows the base ReLU cells (all
    cells when there are none), the first HEATMAP_CELLS of them in the report's order."""
    ok = a.data.runs[a.data.runs["status"] == "ok"]
    figs: dict[str, Path] = {}
    if ok["test_acc"].notna().any():
        figs["accuracy"] = figures.accuracy(ok.dropna(subset=["test_acc"]), a.order, folder / "accuracy.png")
    if ok["train_time_s"].notna().any():
        figs["training time"] = figures.training_time(ok, a.order, folder / "training_time.png")
    if not a.data.history.empty:
        figs["convergence"] = figures.convergence(a.data.history, a.order, folder / "convergence.png")
    if not a.comparison.empty and (a.comparison["protocol"] == "published").any():
        figs["versus published"] = figures.versus_published(a.comparison, folder / "versus_published.png")
    if not a.ranking.empty:
        significance = paired.significance_matrix(a.pairwise, list(a.ranking["cell"]))
        note = f"{a.ranking_info['blocks']} seeds; bars: no difference (paired t, Holm)."
        figs["ranking"] = figures.ranking(a.ranking, significance, folder / "ranking.png", note)
    if "p_t_holm" in a.pairwise and a.pairwise["p_t_holm"].notna().any():
        shown = list(a.ranking["cell"]) + [c for c in a.order if c not in set(a.ranking.get("cell", []))]
        figs["pairwise"] = figures.pairwise_matrix(a.pairwise, shown, folder / "pairwise.png")
    if not a.errors_by_digit_pair.empty:
        with_pairs = [c for c in a.order if c in set(a.errors_by_digit_pair["cell"])]
        cells = a.summary.set_index("cell").loc[with_pairs]
        shown = [
            c for c in with_pairs if cells.loc[c, "activation"] == "relu" and cells.loc[c, "variant"] == ""
        ] or with_pairs
        shown = shown[:HEATMAP_CELLS]
        figs["errors by digit pair"] = figures.error_heatmaps(
            a.errors_by_digit_pair, shown, folder / "errors_by_digit_pair.png"
        )
        figs["errors by difference"] = figures.errors_by_difference(
            a.errors_by_difference, shown, folder / "errors_by_difference.png"
        )
    if ok["digit_acc"].notna().any():
        figs["aux digits"] = figures.aux_digits(ok, folder / "aux_digits.png")
    for stale in set(FIGURE_FILES) - {
        p.name for p in figs.values()
    }:  # an earlier aggregation's figure would no longer be true
        (folder / stale).unlink(missing_ok=True)
    return figs


def aggregate(
    results_dir: Path, out: Path | None = None, source: str = "gpu", margin: float = MARGIN
) -> tuple[Path, Collected]:
    """Write tables/, figures/ and report.md for ``results_dir`` (into ``out``, default the same);
    returns the report's path and what was read."""
    out = out or results_dir
    data = collect(results_dir)
    if data.runs.empty:
        raise SystemExit(
            f"error: no run records (record.json) under {results_dir}"
            + (f"; corrupt: {data.corrupt}" if data.corrupt else "")
        )
    analysis = analyse(results_dir, data, source, margin)
    write_tables(analysis, out / "tables")
    analysis.figures = draw_figures(analysis, out / "figures")
    return write_report(analysis, out), data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results_dir", type=Path, help="a folder with run records (e.g. outputs/benchmark)")
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write tables/, figures/, report.md (default: results_dir)"
    )
    parser.add_argument(
        "--published", choices=["gpu", "cpu"], default="gpu", help="which published results to compare with"
    )
    parser.add_argument(
        "--margin",
        type=float,
        default=MARGIN,
        help="equivalence margin of test accuracy for TOST (default %(default)s)",
    )
    args = parser.parse_args(argv)
    if not args.results_dir.is_dir():
        sys.exit(f"error: results_dir {args.results_dir} is not a folder")
    if not 0 < args.margin < 1:
        sys.exit(
            f"error: --margin={args.margin} is not allowed: a number between 0 and 1 (a difference of test accuracy)"
        )
    report, data = aggregate(args.results_dir, args.out, args.published, args.margin)
    for problem in data.corrupt + data.duplicates:
        print(f"warning: {problem}", file=sys.stderr)
    failed = data.runs[data.runs["status"] != "ok"]
    for run in failed.itertuples():
        print(f"warning: {run.path}: {run.status}: {run.error}", file=sys.stderr)
    print(
        f"{len(data.runs)} records ({len(failed)} not ok, {len(data.corrupt)} corrupt, "
        f"{len(data.incomplete)} folders without a record); report: {report}"
    )


if __name__ == "__main__":
    main()
