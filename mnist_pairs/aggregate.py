"""Aggregate a results folder: run records -> runs table -> summary -> comparison with the
published numbers -> figures -> report.md. Reads only record.json files.

    python -m mnist_pairs.aggregate outputs/benchmark [--out DIR] [--published gpu|cpu]
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mnist_pairs import figures, records
from mnist_pairs.reference import PEERS, published
from mnist_pairs.stats import holm, t_interval, welch

REPORT_ORDER = [
    "fcnn", "fcnn_dropout", "fcnn_bn", "fcnn_bn_dropout", "cnn3", "cnn4", "cnn3_bn", "cnn4_bn",
    "resnet", "siamese_cnn", "siamese_cnn_aux", "siamese_resnet", "siamese_resnet_aux",
]  # fmt: skip
KEYS = ["model", "activation", "variant"]
ALPHA = 0.05
LN2 = math.log(2)  # the cross-entropy of two equal logits: a collapsed (dead-logit) classifier


@dataclass
class Collected:
    runs: pd.DataFrame
    history: pd.DataFrame
    corrupt: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)


def collect(results_dir: Path) -> Collected:
    """Read every record under ``results_dir``. Corrupt records and run folders without a record
    (killed or still running) are listed, not fatal."""
    rows, history, corrupt = [], [], []
    record_paths = sorted(results_dir.rglob(records.RECORD_FILE))
    for path in record_paths:
        try:
            rec = records.read_record(path)
        except records.CorruptRecordError as error:
            corrupt.append(str(error))
            continue
        metrics = rec["metrics"] or {}
        rows.append({
            **{k: rec[k] for k in ("model", "activation", "variant", "seed", "status", "error", "n_params",
                                   "train_time_s", "device", "device_name")},
            **{k: metrics.get(k, math.nan) for k in ("test_acc", "train_acc", "test_loss", "train_loss", "val_acc")},
            "path": str(path.parent.relative_to(results_dir)),
        })  # fmt: skip
        for epoch, values in enumerate(zip(*(rec["history"] or {}).values()), start=1):
            history.append({**{k: rec[k] for k in (*KEYS, "seed")}, "epoch": epoch, **dict(zip(rec["history"], values))})
    with_record = {p.parent for p in record_paths}
    incomplete = sorted(str(d.parent.relative_to(results_dir)) for d in results_dir.rglob(".hydra") if d.parent not in with_record)
    runs = pd.DataFrame(rows, columns=[*KEYS, "seed", "status", "error", "n_params", "train_time_s", "device", "device_name",
                                       "test_acc", "train_acc", "test_loss", "train_loss", "val_acc", "path"])  # fmt: skip
    return Collected(runs, pd.DataFrame(history), corrupt, incomplete)


def model_order(models: pd.Series) -> list[str]:
    """The report's order, then any other model alphabetically."""
    present = set(models)
    return [m for m in REPORT_ORDER if m in present] + sorted(present - set(REPORT_ORDER))


def figure_label(model: str, variant: str) -> str:
    """A model's name in figures: with its variant's keys below it, one per line, when it has one."""
    return model if not variant else model + "\n" + variant.replace(",", "\n")


def apart_by_variant(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with ``model`` relabelled by ``figure_label``, so that figures show each variant
    apart instead of pooling its runs with the base runs of the same model."""
    if table.empty:
        return table
    return table.assign(model=[figure_label(m, v) for m, v in zip(table["model"], table["variant"])])


def variant_order(runs: pd.DataFrame) -> list[str]:
    """Figure labels in the report's model order, each model's variants after its base runs."""
    rank = {m: i for i, m in enumerate(model_order(runs["model"]))}
    cells = sorted({(m, v) for m, v in zip(runs["model"], runs["variant"])}, key=lambda c: (rank[c[0]], c[1]))
    return [figure_label(m, v) for m, v in cells]


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per model x activation x variant: counts by status, finished runs whose classifier
    collapsed (test loss ln 2: equal logits, as dead ReLU logits give), and over finished runs the
    mean, SD (n-1) and 95% CI of test accuracy, train accuracy and time, and parameters."""
    out = []
    for key, group in runs.groupby(KEYS, sort=False):
        ok = group[group["status"] == "ok"]
        n = len(ok)
        mean, sd = ok["test_acc"].mean(), ok["test_acc"].std(ddof=1)
        low, high = t_interval(mean, sd, n)
        out.append({
            **dict(zip(KEYS, key)), "n": n, "n_failed": int((group["status"] == "failed").sum()),
            "n_diverged": int((group["status"] == "diverged").sum()),
            "n_collapsed": int(((ok["test_loss"] - LN2).abs() < 2e-3).sum()),
            "test_acc_mean": mean, "test_acc_sd": sd, "test_acc_ci_low": low, "test_acc_ci_high": high,
            "train_acc_mean": ok["train_acc"].mean(), "train_acc_sd": ok["train_acc"].std(ddof=1),
            "time_mean_s": ok["train_time_s"].mean(), "time_sd_s": ok["train_time_s"].std(ddof=1),
            "n_params": int(group["n_params"].iloc[0]),
            # with data.n_val > 0: what model selection may read (the test columns are for reporting only)
            "val_acc_mean": ok["val_acc"].mean(), "val_acc_sd": ok["val_acc"].std(ddof=1),
        })  # fmt: skip
    summary = pd.DataFrame(out)
    if summary.empty:
        return summary
    rank = {m: i for i, m in enumerate(model_order(summary["model"]))}
    return summary.sort_values(KEYS, key=lambda s: s.map(rank) if s.name == "model" else s).reset_index(drop=True)


def compare_with_published(summary: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Per published row that we ran (base runs, no overridden keys): both means and SDs, our
    difference with its 95% CI, Welch's p and the Holm-corrected p over all compared rows, the
    verdict at alpha 0.05, and training-time ratios."""
    merged = summary[(summary["n"] > 0) & (summary["variant"] == "")].merge(reference, on=["model", "activation"], suffixes=("", "_pub"))
    rows = []
    for _, r in merged.iterrows():
        test = welch(r["test_acc_mean"], r["test_acc_sd"], r["n"], r["test_acc_mean_pub"], r["test_acc_std"], r["n_pub"])
        rows.append({
            "model": r["model"], "activation": r["activation"], "variant": r["variant"],
            "pub_n": r["n_pub"], "pub_mean": r["test_acc_mean_pub"], "pub_sd": r["test_acc_std"],
            "n": r["n"], "mean": r["test_acc_mean"], "sd": r["test_acc_sd"],
            "ci_low": r["test_acc_ci_low"], "ci_high": r["test_acc_ci_high"], **test,
            "pub_time_s": r["time_mean_s_pub"], "time_s": r["time_mean_s"],
        })  # fmt: skip
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table = add_time_ratios(table)
    table["p_holm"] = holm(table["p"].to_numpy())
    table["verdict"] = np.where(table["p_holm"].isna(), "n/a", np.where(table["p_holm"] < ALPHA, "differs", "consistent"))
    return table


def add_time_ratios(comparison: pd.DataFrame, reference: tuple[str, str] = ("fcnn", "relu")) -> pd.DataFrame:
    """Training time relative to the ``reference`` row, ours and published: absolute times of a
    2019 laptop GPU cannot match, their ratios can."""
    base = comparison[(comparison["model"] == reference[0]) & (comparison["activation"] == reference[1])]
    if base.empty:
        return comparison.assign(time_ratio=math.nan, pub_time_ratio=math.nan)
    return comparison.assign(
        time_ratio=comparison["time_s"] / base["time_s"].iloc[0],
        pub_time_ratio=comparison["pub_time_s"] / base["pub_time_s"].iloc[0],
    )


def beyond_table(summary: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Our models beyond the report (tuned configs, or models the report does not have) next to the
    report's published best and its ResNet, and the peers' claims (reference.PEERS)."""
    ours = summary[summary["variant"].str.contains("tuned=") | ~summary["model"].isin(REPORT_ORDER)]
    if ours.empty:
        return pd.DataFrame()
    rows = [
        {"source": "ours", "model": r.model, "variant": r.variant, "n": r.n, "mean": r.test_acc_mean, "sd": r.test_acc_sd,
         "ci_low": r.test_acc_ci_low, "ci_high": r.test_acc_ci_high}
        for r in ours.itertuples()
    ]  # fmt: skip
    best = reference.loc[reference["test_acc_mean"].idxmax()]
    resnet = reference[(reference["model"] == "resnet") & (reference["activation"] == "relu")]
    for label, row in [("report (published best)", best), *[("report (published)", r) for _, r in resnet.iterrows()]]:
        low, high = t_interval(row["test_acc_mean"], row["test_acc_std"], int(row["n"]))
        rows.append({"source": label, "model": row["model"], "variant": "", "n": int(row["n"]), "mean": row["test_acc_mean"],
                     "sd": row["test_acc_std"], "ci_low": low, "ci_high": high})  # fmt: skip
    for peer in PEERS.itertuples():
        rows.append({"source": peer.source, "model": "", "variant": "", "n": peer.n, "mean": peer.mean, "sd": peer.sd,
                     "ci_low": math.nan, "ci_high": math.nan})  # fmt: skip
    return pd.DataFrame(rows)


def compare_variants(summary: pd.DataFrame) -> pd.DataFrame:
    """Each variant (overridden keys) against the base runs of its model and activation in the
    same folder: difference of mean test accuracy with its 95% CI and Welch's p, time ratio."""
    base = summary[summary["variant"] == ""].set_index(["model", "activation"])
    rows = []
    for _, r in summary[summary["variant"] != ""].iterrows():
        if (r["model"], r["activation"]) not in base.index:
            continue
        b = base.loc[(r["model"], r["activation"])]
        test = welch(r["test_acc_mean"], r["test_acc_sd"], r["n"], b["test_acc_mean"], b["test_acc_sd"], b["n"])
        rows.append({
            "model": r["model"], "activation": r["activation"], "variant": r["variant"],
            "base_n": b["n"], "base_mean": b["test_acc_mean"], "n": r["n"], "mean": r["test_acc_mean"],
            "diff": test["diff"], "diff_ci_low": test["diff_ci_low"], "diff_ci_high": test["diff_ci_high"], "p": test["p"],
            "time_ratio": r["time_mean_s"] / b["time_mean_s"],
        })  # fmt: skip
    return pd.DataFrame(rows)


def markdown_table(df: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub markdown table; floats rounded to ``digits`` significant places."""

    def cell(v: object) -> str:
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.{digits}g}"
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def shown_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary without the columns that say nothing here (no variants, no validation pairs)."""
    empty = [c for c in ("val_acc_mean", "val_acc_sd") if summary[c].isna().all()]
    return summary.drop(columns=empty + (["variant"] if (summary["variant"] == "").all() else []))


def write_report(
    out: Path, name: str, data: Collected, summary: pd.DataFrame, comparison: pd.DataFrame, variants: pd.DataFrame,
    figs: dict[str, Path], beyond: pd.DataFrame | None = None,
) -> Path:
    runs = data.runs
    status = runs["status"].value_counts()
    lines = [
        f"# {name}: results",
        "",
        f"{len(runs)} run records: {status.get('ok', 0)} ok, {status.get('failed', 0)} failed, "
        f"{status.get('diverged', 0)} diverged; {len(data.corrupt)} corrupt records; "
        f"{len(data.incomplete)} run folders without a record (killed or running).",
        f"Devices: {', '.join(sorted(runs['device_name'].dropna().unique())) or 'none'}. "
        f"Total training time {runs['train_time_s'].sum():.0f} s.",
        "",
        "## Summary",
        "",
        "Test accuracy over finished runs: mean, SD (n-1) and 95% t confidence interval; time is the "
        "training wall time of PROTOCOL.md (50 epochs unless the experiment says otherwise); n_collapsed "
        "counts finished runs whose test loss is ln 2 (equal logits: the dead-logit mode).",
        "",
        markdown_table(shown_summary(summary)),
        "",
        "## Figures",
        "",
        *[f"![{k}]({p.relative_to(out)})" for k, p in figs.items()],
        "",
        "## Against the published numbers",
        "",
    ]
    if comparison.empty:
        lines.append("No run matches a published row.")
    else:
        differs = int((comparison["verdict"] == "differs").sum())
        lines += [
            "Published: the authors' aggregated GPU results (1 SD; the report's '±' is 2 SD). They come from the "
            "authors' code, which differs from the report's text (PROTOCOL.md): under the report's protocol "
            "(our default) rows such as the plain CNNs are expected to differ; the `replication` experiment "
            "runs the authors' protocol. Welch's t-test from the aggregates, Holm correction over the "
            f"{len(comparison)} rows, alpha {ALPHA}: {differs} of {len(comparison)} rows differ.",
            "",
            markdown_table(comparison[["model", "activation", "pub_n", "pub_mean", "pub_sd", "n", "mean", "sd",
                                       "diff", "diff_ci_low", "diff_ci_high", "p", "p_holm", "verdict"]]),
            "",
            "Training time relative to fcnn/relu (absolute times: a 2019 laptop GPU for the published ones):",
            "",
            markdown_table(comparison[["model", "activation", "pub_time_s", "time_s", "pub_time_ratio", "time_ratio"]]),
        ]  # fmt: skip
    if not variants.empty:
        lines += [
            "",
            "## Variants against their base runs",
            "",
            "Runs with overridden keys (the variant) against the runs of the same model and activation "
            "without them: difference of mean test accuracy, 95% CI, Welch's p (uncorrected), time ratio.",
            "",
            markdown_table(variants),
        ]
    if beyond is not None and not beyond.empty:
        lines += [
            "",
            "## Beyond the report",
            "",
            "Models the report does not have and tuned configs (`tuned=<name>`, chosen by experiment=tune on "
            "validation pairs held out of the training pairs; the test pairs took no part in any choice), next "
            "to the report's published numbers (1 SD, 95% t CI) and the claims of other public reports on this "
            "task (PROTOCOL.md; their n is mostly not given).",
            "",
            markdown_table(beyond),
        ]
    problems = runs[runs["status"] != "ok"]
    if len(problems) or data.corrupt or data.incomplete:
        lines += ["", "## Runs that did not finish", ""]
        lines += [f"- `{r.path}`: {r.status}: {r.error}" for r in problems.itertuples()]
        lines += [f"- corrupt record: {c}" for c in data.corrupt]
        lines += [f"- no record: `{p}`" for p in data.incomplete]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def aggregate(results_dir: Path, out: Path | None = None, source: str = "gpu") -> tuple[Path, Collected]:
    """Write tables/, figures/ and report.md for ``results_dir`` (into ``out``, default the same);
    returns the report's path and what was read."""
    out = out or results_dir
    data = collect(results_dir)
    if data.runs.empty:
        raise SystemExit(f"error: no run records (record.json) under {results_dir}" + (f"; corrupt: {data.corrupt}" if data.corrupt else ""))
    summary = summarize(data.runs)
    reference = published(source)
    comparison = compare_with_published(summary, reference)
    variants = compare_variants(summary)
    beyond = beyond_table(summary, reference)
    tables = out / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    data.runs.to_csv(tables / "runs.csv", index=False)
    data.history.to_csv(tables / "history.csv", index=False)
    summary.to_csv(tables / "summary.csv", index=False)
    comparison.to_csv(tables / "published_comparison.csv", index=False)
    variants.to_csv(tables / "variants.csv", index=False)
    if not beyond.empty:
        beyond.to_csv(tables / "beyond.csv", index=False)
    ok = data.runs[data.runs["status"] == "ok"]
    ok, history, order = apart_by_variant(ok), apart_by_variant(data.history), variant_order(data.runs)
    figs: dict[str, Path] = {}
    if not ok.empty:
        figs["accuracy"] = figures.accuracy(ok, order, out / "figures" / "accuracy.png")
        figs["training time"] = figures.training_time(ok, order, out / "figures" / "training_time.png")
    if not history.empty:
        figs["convergence"] = figures.convergence(history, order, out / "figures" / "convergence.png")
    if not comparison.empty:
        figs["versus published"] = figures.versus_published(comparison, out / "figures" / "versus_published.png")
    return write_report(out, results_dir.name, data, summary, comparison, variants, figs, beyond), data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results_dir", type=Path, help="a folder with run records (e.g. outputs/benchmark)")
    parser.add_argument("--out", type=Path, default=None, help="where to write tables/, figures/, report.md (default: results_dir)")
    parser.add_argument("--published", choices=["gpu", "cpu"], default="gpu", help="which published results to compare with")
    args = parser.parse_args(argv)
    if not args.results_dir.is_dir():
        sys.exit(f"error: results_dir {args.results_dir} is not a folder")
    report, data = aggregate(args.results_dir, args.out, args.published)
    for problem in data.corrupt:
        print(f"warning: {problem}", file=sys.stderr)
    failed = data.runs[data.runs["status"] != "ok"]
    for run in failed.itertuples():
        print(f"warning: {run.path}: {run.status}: {run.error}", file=sys.stderr)
    print(f"{len(data.runs)} records ({len(failed)} not ok, {len(data.corrupt)} corrupt, "
          f"{len(data.incomplete)} folders without a record); report: {report}")


if __name__ == "__main__":
    main()
