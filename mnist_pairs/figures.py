"""The benchmark's figures (seaborn, PNG). Each takes tidy tables and a path, and returns the path."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

CHANCE = 0.55  # always answering class 1 (first <= second) is right on about 55% of pairs
ACTIVATION_ORDER = ["relu", "tanh", "leakyrelu"]


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _hue_order(runs: pd.DataFrame) -> list[str]:
    present = list(runs["activation"].unique())
    return [a for a in ACTIVATION_ORDER if a in present] + sorted(set(present) - set(ACTIVATION_ORDER))


def accuracy(runs: pd.DataFrame, order: list[str], path: Path) -> Path:
    """Every run's test accuracy (dots) with mean and 1 SD (diamonds), per model and activation."""
    hue_order = _hue_order(runs)
    fig, ax = plt.subplots(figsize=(max(8, 0.95 * len(order)), 5.5))
    common = dict(data=runs, x="model", y="test_acc", hue="activation", order=order, hue_order=hue_order, ax=ax)
    sns.stripplot(**common, dodge=True, alpha=0.45, size=4, jitter=0.2, palette="deep")
    sns.pointplot(**common, dodge=0.8 - 0.8 / len(hue_order), errorbar="sd", markers="D", linestyle="none",
                  palette="dark", capsize=0.08, legend=False)  # fmt: skip
    ax.axhline(CHANCE, color="grey", linestyle=":", linewidth=1)
    ax.text(-0.45, CHANCE, "always class 1", va="bottom", ha="left", color="grey", fontsize=8)
    ax.set(xlabel="", ylabel="test accuracy", title="Test accuracy per run (dots); mean and 1 SD (diamonds)")
    ax.tick_params(axis="x", rotation=35)
    ax.legend(title="activation", loc="lower right")
    return _save(fig, path)


def training_time(runs: pd.DataFrame, order: list[str], path: Path) -> Path:
    """Training wall time per run (log scale), per model, all activations together."""
    fig, ax = plt.subplots(figsize=(max(8, 0.95 * len(order)), 5))
    sns.boxplot(data=runs, x="model", y="train_time_s", order=order, color="lightsteelblue", fliersize=0, ax=ax)
    sns.stripplot(data=runs, x="model", y="train_time_s", order=order, color="black", alpha=0.35, size=3, ax=ax)
    ax.set_yscale("log")
    ax.set(xlabel="", ylabel="training time (s, log scale)", title="Training time per run")
    ax.tick_params(axis="x", rotation=35)
    return _save(fig, path)


def convergence(history: pd.DataFrame, order: list[str], path: Path) -> Path:
    """Test accuracy and training loss per epoch: mean and 1 SD band per model (ReLU runs when
    there are any, so that every model is shown with the same activation)."""
    data = history[history["activation"] == "relu"] if (history["activation"] == "relu").any() else history
    models = [m for m in order if m in set(data["model"])]
    palette = dict(zip(models, sns.color_palette("tab20", len(models))))
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    for ax, column, label in ((axes[0], "test_acc", "test accuracy"), (axes[1], "train_loss", "training loss (log)")):
        # test accuracy may be sparse (train.eval_interval): drop the epochs without one so the points connect
        sns.lineplot(data=data.dropna(subset=[column]), x="epoch", y=column, hue="model", hue_order=models, palette=palette,
                     errorbar="sd", ax=ax, legend=ax is axes[1])  # fmt: skip
        ax.set(ylabel=label, title=f"{label}: mean and 1 SD over seeds")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[1].legend(title="model (ReLU)", fontsize=8, bbox_to_anchor=(1.02, 1), loc="upper left")
    return _save(fig, path)


def versus_published(comparison: pd.DataFrame, path: Path) -> Path:
    """Per published row: the published mean with 1 SD (thick) and 2 SD (thin) bars, and our mean
    with its 95% confidence interval; rows where Holm-corrected Welch tests differ are marked."""
    rows = comparison.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(rows) + 1.5))
    y = range(len(rows))
    ax.errorbar(rows["pub_mean"], [v + 0.15 for v in y], xerr=2 * rows["pub_sd"], fmt="none", ecolor="grey", elinewidth=1, capsize=3)
    ax.errorbar(rows["pub_mean"], [v + 0.15 for v in y], xerr=rows["pub_sd"], fmt="o", color="grey", ecolor="grey",
                elinewidth=3, label="published: mean, 1 SD (thick), 2 SD (thin)")  # fmt: skip
    ours_err = [rows["mean"] - rows["ci_low"], rows["ci_high"] - rows["mean"]]
    ax.errorbar(rows["mean"], [v - 0.15 for v in y], xerr=ours_err, fmt="D", color="tab:blue", capsize=3,
                label="ours: mean, 95% CI")  # fmt: skip
    differs = rows["verdict"] == "differs"
    ax.scatter(rows.loc[differs, "mean"], [v - 0.15 for v in rows.index[differs]], s=160, facecolors="none",
               edgecolors="tab:red", label="differs (Welch, Holm-corrected p < 0.05)")  # fmt: skip
    ax.set_yticks(list(y), [f"{m} / {a}" for m, a in zip(rows["model"], rows["activation"])])
    low = min((rows["pub_mean"] - 2 * rows["pub_sd"]).min(), rows["ci_low"].min(skipna=True), rows["mean"].min())
    ax.set_xlim(max(0.0, low - 0.02), 1.0)  # accuracies: intervals past 1 are cut
    ax.invert_yaxis()
    ax.set(xlabel="test accuracy", title="Ours against the published numbers")
    ax.legend(fontsize=8, loc="lower left")
    return _save(fig, path)
