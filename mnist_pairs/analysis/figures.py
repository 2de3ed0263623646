"""The benchmark's figures (seaborn, PNG). Each takes tidy tables and a path, and returns the path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scikit_posthocs as sp
import seaborn as sns

from mnist_pairs.analysis.summary import ACTIVATION_ORDER

CHANCE = 0.55  # always answering class 1 (first <= second) is right on about 55% of pairs
BAND = (10, 90)  # the convergence figure's band: percentiles across seeds (positive, so a log axis shows it)


def _save(fig: plt.Figure, path: Path, dpi: int = 120) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fig.get_layout_engine() is None:  # a figure made with layout="constrained" keeps it
        fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def group_label(cell: str, activation: str) -> str:
    """A cell's label without its activation (the activation is the hue), one key per line."""
    return cell.replace(f"/{activation}", "", 1).replace(" ", "\n").replace(",", "\n")


def with_groups(table: pd.DataFrame, order: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """``table`` with each cell's ``group`` label, and the groups in the order of ``order``'s cells."""
    table = table.assign(group=[group_label(c, a) for c, a in zip(table["cell"], table["activation"])])
    cells = [c for c in order if c in set(table["cell"])]
    return table, list(dict.fromkeys(table.set_index("cell").loc[cells, "group"]))


def accuracy(runs: pd.DataFrame, order: list[str], path: Path) -> Path:
    """Every run's test accuracy (dots) with mean and 1 SD (diamonds), per model and activation."""
    runs, groups = with_groups(runs, order)
    present = list(runs["activation"].unique())
    hue_order = [a for a in ACTIVATION_ORDER if a in present] + sorted(set(present) - set(ACTIVATION_ORDER))
    fig, ax = plt.subplots(figsize=(max(8, 0.95 * len(groups)), 5.5))
    common = dict(data=runs, x="group", y="test_acc", hue="activation", order=groups, hue_order=hue_order, ax=ax)
    sns.stripplot(**common, dodge=True, alpha=0.45, size=4, jitter=0.2, palette="deep")
    sns.pointplot(
        **common,
        dodge=0.8 - 0.8 / len(hue_order),
        errorbar="sd",
        markers="D",
        linestyle="none",
        palette="dark",
        capsize=0.08,
        legend=False,
    )
    ax.axhline(CHANCE, color="grey", linestyle=":", linewidth=1)
    ax.text(-0.45, CHANCE, "always class 1", va="bottom", ha="left", color="grey", fontsize=8)
    ax.set(xlabel="", ylabel="test accuracy", title="Test accuracy per run (dots); mean and 1 SD (diamonds)")
    ax.tick_params(axis="x", rotation=35)
    ax.legend(title="activation", loc="lower right")
    return _save(fig, path)


def training_time(runs: pd.DataFrame, order: list[str], path: Path) -> Path:
    """Training wall time per run (log scale), per model, all activations together."""
    runs, groups = with_groups(runs, order)
    fig, ax = plt.subplots(figsize=(max(8, 0.95 * len(groups)), 5))
    sns.boxplot(data=runs, x="group", y="train_time_s", order=groups, color="lightsteelblue", fliersize=0, ax=ax)
    sns.stripplot(data=runs, x="group", y="train_time_s", order=groups, color="black", alpha=0.35, size=3, ax=ax)
    ax.set_yscale("log")
    ax.set(xlabel="", ylabel="training time (s, log scale)", title="Training time per run")
    ax.tick_params(axis="x", rotation=35)
    return _save(fig, path)


def convergence(history: pd.DataFrame, order: list[str], path: Path) -> Path:
    """Test accuracy and training loss per epoch: median and the 10-90th percentile band across
    seeds per cell (ReLU cells when there are any, so that every model is shown with the same
    activation). Percentiles stay positive, so the log axis of the loss shows the whole band."""
    data = history[history["activation"] == "relu"] if (history["activation"] == "relu").any() else history
    data, groups = with_groups(data, order)
    palette = dict(zip(groups, sns.color_palette("tab20", len(groups))))
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    for ax, column, label in ((axes[0], "test_acc", "test accuracy"), (axes[1], "train_loss", "training loss (log)")):
        # test accuracy may be sparse (train.eval_interval): drop the epochs without one so the points connect
        sns.lineplot(
            data=data.dropna(subset=[column]),
            x="epoch",
            y=column,
            hue="group",
            hue_order=groups,
            palette=palette,
            estimator="median",
            errorbar=("pi", BAND[1] - BAND[0]),
            ax=ax,
            legend=ax is axes[1],
        )
        ax.set(ylabel=label, title=f"{label}: median and {BAND[0]}-{BAND[1]}th percentiles over seeds")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[1].legend(title="model (ReLU)", fontsize=8, bbox_to_anchor=(1.02, 1), loc="upper left")
    return _save(fig, path)


def versus_published(comparison: pd.DataFrame, path: Path) -> Path:
    """Per published row that our runs can be compared with (same protocol): the published mean and
    ours, each with its 95% CI of the mean (thick) and 1 SD of runs (thin), the same quantities on
    both sides; rows that differ (Welch, Holm) or are shown equivalent (TOST, Holm) are marked."""
    rows = comparison[comparison["protocol"] == "published"].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(9.5, 0.45 * len(rows) + 1.8))
    y = np.arange(len(rows))
    for offset, prefix, color, marker, who in (
        (0.15, "pub_", "grey", "o", "published"),
        (-0.15, "", "tab:blue", "D", "ours"),
    ):
        mean, sd = rows[f"{prefix}mean"], rows[f"{prefix}sd"]
        ci = [mean - rows[f"{prefix}ci_low"], rows[f"{prefix}ci_high"] - mean]
        ax.errorbar(mean, y + offset, xerr=sd, fmt="none", ecolor=color, elinewidth=1, capsize=3)
        ax.errorbar(
            mean,
            y + offset,
            xerr=ci,
            fmt=marker,
            color=color,
            ecolor=color,
            elinewidth=3.5,
            label=f"{who}: mean, 95% CI of the mean (thick), 1 SD of runs (thin)",
        )
    for word, color, label in (
        ("differs", "tab:red", "differs (Welch, Holm p < 0.05)"),
        ("equivalent", "tab:green", "equivalent within the margin (TOST, Holm)"),
    ):
        marked = rows["verdict"].str.startswith(word)
        ax.scatter(
            rows.loc[marked, "mean"],
            y[marked] - 0.15,
            s=170,
            facecolors="none",
            edgecolors=color,
            linewidths=1.5,
            label=label,
        )
    ax.set_yticks(y, [f"{c} (n={n})" for c, n in zip(rows["cell"], rows["n"])])
    low = min((rows["pub_mean"] - rows["pub_sd"]).min(), (rows["mean"] - rows["sd"]).min())
    ax.set_xlim(max(0.0, low - 0.02), 1.0)  # accuracies: intervals past 1 are cut
    ax.invert_yaxis()
    ax.set(xlabel="test accuracy", title="Ours against the published numbers (rows run under the published protocol)")
    ax.legend(fontsize=7.5, loc="lower left")
    return _save(fig, path)


def ranking(table: pd.DataFrame, significance: pd.DataFrame, path: Path, note: str) -> Path:
    """A critical-difference diagram (scikit-posthocs): each cell at its mean rank over the seeds;
    a bar over cells where ``significance`` (``paired.cd_matrix``: 1 = may be joined) joins every
    two of them."""
    fig, ax = plt.subplots(figsize=(11, 0.28 * len(table) + 2.5))
    ranks = table.set_index("cell")["mean_rank"]
    sp.critical_difference_diagram(
        ranks,
        significance.loc[ranks.index, ranks.index],
        ax=ax,
        label_props={"fontsize": 8},
        label_fmt_left="{label} ({rank:.1f})",
        label_fmt_right="({rank:.1f}) {label}",
    )
    ax.set_title(textwrap.fill(f"Mean rank over seeds (1 = best test accuracy). {note}", 130), fontsize=9)
    return _save(fig, path)


def error_heatmaps(by_pair: pd.DataFrame, cells: list[str], path: Path, columns: int = 4) -> Path:
    """Test error rate per digit pair (row: first digit, column: second), one panel per cell,
    test pairs pooled over its seeds; one colour scale for all panels."""
    columns = min(columns, len(cells))
    rows = -(-len(cells) // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(2.9 * columns + 1.2, 2.9 * rows + 0.6), squeeze=False, layout="constrained"
    )
    top = max(0.05, float(by_pair[by_pair["cell"].isin(cells)]["error_rate"].max()))
    for i, (ax, cell) in enumerate(zip(axes.flat, cells)):
        grid = by_pair[by_pair["cell"] == cell].pivot(index="d1", columns="d2", values="error_rate")
        # seaborn's heatmap draws each cell apart: 10x slower
        ax.imshow(grid.to_numpy(), vmin=0, vmax=top, cmap="rocket_r")
        ax.set_xticks(range(10), grid.columns)
        ax.set_yticks(range(10), grid.index)
        ax.set_title(cell, fontsize=8)
        ax.set(
            xlabel="second digit" if i + columns >= len(cells) else "", ylabel="first digit" if i % columns == 0 else ""
        )
        ax.tick_params(labelsize=6)
    for ax in axes.flat[len(cells) :]:
        ax.axis("off")
    fig.colorbar(
        plt.cm.ScalarMappable(norm=plt.Normalize(0, top), cmap="rocket_r"), ax=axes, shrink=0.5, label="error rate"
    )
    fig.suptitle("Test error rate by digit pair, test pairs pooled over seeds (equal digits: class 1)")
    return _save(fig, path, dpi=110)


def pairwise_matrix(pairwise: pd.DataFrame, cells: list[str], path: Path) -> Path:
    """Every two cells at a glance: the mean paired difference (row minus column, points of test
    accuracy) in colour, a dot where the paired t-test (Holm over all pairs) finds it; grey where
    the pair was not tested."""
    index = {c: i for i, c in enumerate(cells)}
    diff = np.full((len(cells), len(cells)), np.nan)
    significant = np.zeros_like(diff, dtype=bool)
    for r in pairwise[pairwise["a"].isin(index) & pairwise["b"].isin(index)].itertuples():
        i, j = index[r.a], index[r.b]
        diff[i, j], diff[j, i] = 100 * r.diff, -100 * r.diff
        significant[i, j] = significant[j, i] = bool(r.p_t_holm < 0.05)
    size = 0.32 * len(cells) + 3
    fig, ax = plt.subplots(figsize=(size + 1.5, size), layout="constrained")
    top = max(1.0, float(np.nanmax(np.abs(diff))) if np.isfinite(diff).any() else 1.0)
    ax.set_facecolor("lightgrey")
    image = ax.imshow(diff, cmap="RdBu", vmin=-top, vmax=top)
    rows, cols = np.nonzero(significant)
    ax.scatter(cols, rows, s=6, color="black")
    ax.set_xticks(range(len(cells)), cells, rotation=90, fontsize=7)
    ax.set_yticks(range(len(cells)), cells, fontsize=7)
    fig.colorbar(image, ax=ax, shrink=0.6, label="row minus column (points of test accuracy)")
    ax.set_title("Paired differences of every two cells; dot: differs (paired t, Holm)", fontsize=9)
    return _save(fig, path)


def errors_by_difference(by_diff: pd.DataFrame, cells: list[str], path: Path) -> Path:
    """Error rate against d2 - d1 per cell: a comparison is hardest where the digits are close."""
    data = by_diff[by_diff["cell"].isin(cells) & (by_diff["n"] > 0)]
    fig, ax = plt.subplots(figsize=(11, 5.5))
    sns.lineplot(
        data=data,
        x="d2_minus_d1",
        y="error_rate",
        hue="cell",
        hue_order=cells,
        palette=sns.color_palette("tab20", len(cells)),
        marker="o",
        markersize=4,
        ax=ax,
    )
    ax.axvline(0, color="grey", linestyle=":", linewidth=1)
    ax.set(
        xlabel="second digit - first digit",
        ylabel="test error rate",
        title="Test error rate by the digits' difference (pairs pooled over seeds)",
    )
    ax.set_xticks(range(-9, 10))
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    return _save(fig, path)


def aux_digits(runs: pd.DataFrame, path: Path) -> Path:
    """For models trained with the auxiliary loss: each run's digit accuracy of its branch against
    its comparison accuracy, with the share of pairs whose two digits are both named right."""
    data = runs.dropna(subset=["digit_acc", "test_acc"])
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    sns.scatterplot(data=data, x="digit_acc", y="test_acc", hue="cell", style="cell", s=45, ax=ax)
    grid = np.linspace(min(0.5, data["digit_acc"].min()), 1, 50)
    ax.plot(grid, grid**2, color="grey", linestyle=":", label="both digits named right (digit acc²)")
    ax.set(
        xlabel="digit accuracy of the branch (test images)",
        ylabel="comparison test accuracy",
        title="Auxiliary-loss models: digits named against pairs compared",
    )
    ax.legend(fontsize=7)
    return _save(fig, path)
