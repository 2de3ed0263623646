"""Aggregate a results folder: records -> cells -> planned comparisons, the report's findings,
paired comparisons, ranking, published rows, error analysis -> tables/, figures/ and report.md.
Reads only record.json files (mnist_pairs.analysis holds each step); appends what n each cell had
to the folder's aggregation ledger (aggregations.jsonl).

    python -m mnist_pairs.aggregate outputs/benchmark [--out DIR] [--published gpu|cpu]
        [--compare CELL_A CELL_B ...] [--questions questions.yaml] [--margin POINTS]

A questions file is a YAML list; each entry names two cells as the report labels them, optionally
with its own margin (points) and words:

    - compare: [my_cnn/relu, cnn3_bn/relu]
      margin: 0.5
      question: does widening cnn3_bn help?
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mnist_pairs.analysis import errors, figures, paired
from mnist_pairs.analysis.collect import Collected, collect
from mnist_pairs.analysis.decisions import read_decisions
from mnist_pairs.analysis.ledger import record_look
from mnist_pairs.analysis.paired import Question
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


def analyse(
    results_dir: Path,
    data: Collected,
    source: str = "gpu",
    margin: float = MARGIN,
    questions: list[Question] | None = None,
) -> Analysis:
    """Every table of the analysis; ``questions``: the planned comparisons (cells known)."""
    order = cell_order(data.runs)
    summary = summarize(data.runs, data.configs)
    reference = published(source)
    ranking, ranking_info = paired.ranking(data, order)
    by_pair, by_diff = errors.error_tables(data, order)
    return Analysis(
        name=results_dir.name,
        data=data,
        order=order,
        summary=summary,
        planned=paired.planned(data, questions or [], margin),
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
        decisions=read_decisions(results_dir),
    )


def write_tables(a: Analysis, tables: Path) -> None:
    """Every non-empty table as CSV."""
    tables.mkdir(parents=True, exist_ok=True)
    named = {
        "runs": a.data.runs,
        "history": a.data.history,
        "summary": a.summary,
        # the planned comparisons first, then the report's questions, each its own Holm family (``family``)
        "findings": pd.concat(
            [t for t in (a.planned, a.findings) if not t.empty] or [pd.DataFrame()], ignore_index=True
        ),
        "decisions": a.decisions,
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
        ranks = a.ranking.set_index("cell")["mean_rank"]
        k = len(ranks)
        note = (
            f"{a.ranking_info['blocks']} seeds. A bar: no difference shown (paired t on these seeds, Holm over the "
            f"{k * (k - 1) // 2} ranked pairs) among all cells under it; no evidence of a difference is not equality."
        )
        figs["ranking"] = figures.ranking(
            a.ranking, paired.cd_matrix(ranks, a.ranking_info["p"]), folder / "ranking.png", note
        )
    if "p_t_holm" in a.pairwise and a.pairwise["p_t_holm"].notna().any():
        shown = list(a.ranking["cell"]) + [c for c in a.order if c not in set(a.ranking.get("cell", []))]
        figs["pairwise"] = figures.pairwise_matrix(a.pairwise, shown, folder / "pairwise.png")
    if not a.errors_by_digit_pair.empty:
        with_pairs = [c for c in a.order if c in set(a.errors_by_digit_pair["cell"])]
        cells = a.summary.set_index("cell").loc[with_pairs]
        base_relu = cells.index[(cells["activation"] == "relu") & (cells["variant"] == "")]
        shown = (list(base_relu) or with_pairs)[:HEATMAP_CELLS]
        figs["errors by digit pair"] = figures.error_heatmaps(
            a.errors_by_digit_pair, shown, folder / "errors_by_digit_pair.png"
        )
        figs["errors by difference"] = figures.errors_by_difference(
            a.errors_by_difference, shown, folder / "errors_by_difference.png"
        )
    if ok["digit_acc"].notna().any():
        figs["aux digits"] = figures.aux_digits(ok, folder / "aux_digits.png")
    # an earlier aggregation's figure would no longer be true
    for stale in set(FIGURE_FILES) - {p.name for p in figs.values()}:
        (folder / stale).unlink(missing_ok=True)
    return figs


def read_questions(path: Path) -> list[Question]:
    """The planned comparisons of a YAML file (a list of ``{compare: [A, B], margin: points,
    question: words}``, or of ``[A, B]``); SystemExit with one line naming what is wrong."""
    try:
        entries = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise SystemExit(f"error: --questions {path}: cannot be read as YAML ({type(error).__name__})") from None
    if not isinstance(entries, list) or not entries:
        raise SystemExit(f"error: --questions {path}: a non-empty YAML list of comparisons is allowed")
    out = []
    for i, entry in enumerate(entries):
        entry = {"compare": entry} if isinstance(entry, list) else entry
        pair, margin = (entry.get("compare"), entry.get("margin")) if isinstance(entry, dict) else (None, None)
        unknown = set(entry) - {"compare", "margin", "question"} if isinstance(entry, dict) else set()
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(c, str) for c in pair)) or unknown:
            raise SystemExit(
                f"error: --questions {path}: entry {i + 1} is {entry!r}; allowed: "
                "{compare: [CELL_A, CELL_B], margin: points (optional), question: words (optional)}"
            )
        if margin is not None:
            check_margin(margin, f"--questions {path}: entry {i + 1} margin")
        out.append(Question(pair[0], pair[1], None if margin is None else margin / 100, str(entry.get("question", ""))))
    return out


def check_margin(points: Any, what: str = "--margin") -> None:
    """SystemExit with one line unless ``points`` is a margin in points of test accuracy."""
    if isinstance(points, bool) or not isinstance(points, (int, float)) or not 0.1 <= points < 100:
        hint = f"; did you mean {points * 100:g} (points)?" if isinstance(points, float) and 0 < points < 0.1 else ""
        raise SystemExit(
            f"error: {what}={points!r} is not allowed: a margin in points of test accuracy, from 0.1 (one test pair "
            f"in 1000) to below 100{hint}"
        )


def aggregate(
    results_dir: Path,
    out: Path | None = None,
    source: str = "gpu",
    margin: float = MARGIN,
    questions: list[Question] | None = None,
) -> tuple[Path, Collected]:
    """Write tables/, figures/ and report.md for ``results_dir`` (into ``out``, default the same),
    with the planned comparisons ``questions`` first; record the look in the folder's ledger;
    returns the report's path and what was read."""
    out = out or results_dir
    data = collect(results_dir)
    if data.runs.empty:
        raise SystemExit(
            f"error: no finished run records (record.json) under {results_dir}"
            + (f"; {len(data.interrupted)} interrupted (the same command resumes them)" if data.interrupted else "")
            + (f"; corrupt: {data.corrupt}" if data.corrupt else "")
        )
    if problem := paired.unknown_cells(questions or [], sorted(data.runs["cell"].unique())):
        raise SystemExit(problem)
    analysis = analyse(results_dir, data, source, margin, questions)
    ok = data.runs[(data.runs["status"] == "ok") & data.runs["test_acc"].notna()]
    analysis.looks, unwritten = record_look(results_dir, {c: int(n) for c, n in ok.groupby("cell").size().items()})
    if unwritten:
        data.warnings.append(unwritten)
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
        default=MARGIN * 100,
        help="equivalence margin in points of test accuracy: the smallest effect that matters (default %(default)g)",
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        action="append",
        default=[],
        metavar=("CELL_A", "CELL_B"),
        help="a planned comparison, cells as the report labels them (e.g. my_cnn/relu cnn3_bn/relu); repeatable",
    )
    parser.add_argument("--questions", type=Path, default=None, help="a YAML list of planned comparisons (see above)")
    args = parser.parse_args(argv)
    if not args.results_dir.is_dir():
        sys.exit(f"error: results_dir {args.results_dir} is not a folder")
    check_margin(args.margin)
    questions = [Question(a, b) for a, b in args.compare]
    questions += read_questions(args.questions) if args.questions else []
    report, data = aggregate(args.results_dir, args.out, args.published, args.margin / 100, questions)
    for problem in data.corrupt + data.duplicates:
        print(f"warning: {problem}", file=sys.stderr)
    failed = data.runs[data.runs["status"] != "ok"]
    for run in failed.itertuples():
        print(f"warning: {run.path}: {run.status}: {run.error}", file=sys.stderr)
    print(
        f"{len(data.runs)} records ({len(failed)} not ok, {len(data.interrupted)} interrupted runs left out, "
        f"{len(data.corrupt)} corrupt, {len(data.incomplete)} folders without a record); report: {report}"
    )


if __name__ == "__main__":
    main()
