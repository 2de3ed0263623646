"""Aggregation end to end: tables, figures and the report from a folder of real run records
(the statistics and tables by value: tests/test_analysis.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mnist_pairs.aggregate import aggregate
from mnist_pairs.analysis.collect import collect
from mnist_pairs.analysis.published import PEERS, beyond_table, published
from mnist_pairs.analysis.stats import t_interval
from mnist_pairs.analysis.summary import REPORT_ORDER, summarize
from mnist_pairs.config import compose_config
from mnist_pairs.results import records
from mnist_pairs.train import run
from tests.conftest import MODELS, run_cli, training_crashes

SMALL = ("data.n_train=100", "data.n_test=50", "train.epochs=2")


@pytest.fixture(scope="module")
def results(tmp_path_factory, synthetic_root):
    """A results folder: 3 + 2 finished runs, a failed run, a corrupt record, a killed run."""
    root = tmp_path_factory.mktemp("results") / "exp"
    for model, seeds in (("cnn3", (0, 1, 2)), ("siamese_cnn_aux", (0, 1))):
        for seed in seeds:
            cfg = compose_config(
                f"model={model}", f"seed={seed}", f"data.root={synthetic_root}", "data.download=false", *SMALL
            )
            run(cfg, root / model / "relu" / f"seed={seed}")
    crashing = compose_config("model=fcnn", f"data.root={synthetic_root}", "data.download=false", *SMALL)
    with training_crashes(), pytest.raises(RuntimeError):  # a model that cannot be built is refused before any record
        run(crashing, root / "fcnn" / "relu" / "seed=0")
    collapsed = records.read_record(
        root / "cnn3" / "relu" / "seed=2" / records.RECORD_FILE
    )  # as dead logits give: one class
    n_test = len(collapsed["test_pairs"]["predicted"])
    records.write_record(
        root / "cnn3" / "relu" / "seed=2",
        {
            **collapsed,
            "metrics": {**collapsed["metrics"], "test_loss": math.log(2)},
            "test_pairs": {**collapsed["test_pairs"], "predicted": "0" * n_test},
        },
    )
    (root / "fcnn" / "tanh" / "seed=0").mkdir(parents=True)
    (root / "fcnn" / "tanh" / "seed=0" / records.RECORD_FILE).write_text('{"model": "fcnn", "stat')
    (root / "cnn3" / "relu" / "seed=3" / ".hydra").mkdir(parents=True)
    records.mark_started(
        root / "cnn3" / "relu" / "seed=4", [3, 4]
    )  # the second seed of a killed vectorised batch: no .hydra
    return root


def test_collect_reads_good_records_and_reports_bad_ones(results):
    data = collect(results)
    assert len(data.runs) == 6
    assert data.runs["status"].value_counts().to_dict() == {"ok": 5, "failed": 1}
    assert len(data.corrupt) == 1 and "fcnn/tanh/seed=0" in data.corrupt[0]
    assert data.incomplete == ["cnn3/relu/seed=3", "cnn3/relu/seed=4"]
    assert len(data.history) == 5 * 2  # 2 epochs of each finished run


def test_aggregate_writes_consistent_tables_figures_and_report(results, tmp_path):
    for stale in (
        tmp_path / "figures" / "versus_published.png",
        tmp_path / "tables" / "variants.csv",
    ):  # an earlier aggregation's
        stale.parent.mkdir(parents=True, exist_ok=True)
        stale.write_text("stale")
    report, _ = aggregate(results, out=tmp_path)
    assert not (tmp_path / "tables" / "variants.csv").exists()  # no variant now: the old table is gone
    summary = pd.read_csv(tmp_path / "tables" / "summary.csv", keep_default_na=False, na_values=[""])
    runs = pd.read_csv(tmp_path / "tables" / "runs.csv")
    assert len(runs) == 6
    recs = [records.read_record(p) for p in results.glob("cnn3/relu/seed=*/record.json")]
    accs = [r["metrics"]["test_acc"] for r in recs]
    cnn3 = summary[summary["model"] == "cnn3"].iloc[0]
    assert cnn3["n"] == 3 and cnn3["test_acc_mean"] == pytest.approx(np.mean(accs)) and cnn3["n_collapsed"] == 1
    assert cnn3["test_acc_sd"] == pytest.approx(np.std(accs, ddof=1))
    assert (cnn3["test_acc_ci_low"], cnn3["test_acc_ci_high"]) == pytest.approx(
        t_interval(np.mean(accs), np.std(accs, ddof=1), 3)
    )
    fcnn = summary[summary["model"] == "fcnn"].iloc[0]
    assert (
        fcnn["n"] == 0 and fcnn["n_failed"] == 1 and math.isnan(fcnn["n_params"])
    )  # no parameter count from a failed run
    assert not (
        tmp_path / "figures" / "versus_published.png"
    ).exists()  # 2 epochs of 100 pairs: no row to set beside the published
    for name in (
        "accuracy",
        "training_time",
        "convergence",
        "errors_by_digit_pair",
        "errors_by_difference",
        "aux_digits",
    ):
        png = tmp_path / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    text = report.read_text()
    assert (
        "6 run records in 3 cells (a cell: one config, its seeds aside): 5 ok (1 of them collapsed to one class), 1 "
        "failed, 0 diverged; 1 corrupt records; 2 run folders without a record" in text
    )
    assert "fcnn/relu/seed=0`: failed: RuntimeError" in text and "corrupt record:" in text
    assert "![accuracy](figures/accuracy.png)" in text
    comparison = pd.read_csv(tmp_path / "tables" / "published_comparison.csv")
    assert set(comparison["model"]) == {"cnn3", "siamese_cnn_aux", "fcnn"}
    fcnn_row = comparison[comparison["model"] == "fcnn"].iloc[0]  # listed with its failed run, not hidden
    assert (fcnn_row["n"], fcnn_row["n_failed"]) == (0, 1) and fcnn_row["verdict"].startswith("n/a: protocol differs")


def test_aggregate_cli_on_an_empty_folder_is_one_clear_error(tmp_path):
    done = run_cli(str(tmp_path), module="mnist_pairs.aggregate")
    assert (
        done.returncode != 0
        and "error: no finished run records (record.json) under" in done.stderr
        and "Traceback" not in done.stderr
    )


def test_published_reference_maps_to_our_models():
    gpu = published("gpu")
    assert len(gpu) == 12 + 7 + 7 and set(gpu["model"]) <= set(MODELS)  # ReLU: 12 models; Tanh, LeakyReLU: 7 basic
    best = gpu[gpu["model"] == "siamese_resnet_aux"].iloc[0]
    assert (best["test_acc_mean"], best["test_acc_std"], best["n"]) == (0.8693, 0.02521, 10)
    with pytest.raises(ValueError, match="allowed are"):
        published("tpu")


def test_beyond_section_sets_our_models_beside_the_report_and_the_peers(tmp_path, synthetic_root):
    root = tmp_path / "beyond"
    for seed in (0, 1):
        cfg = compose_config(
            "model=siamese_lenet_mlp",
            f"seed={seed}",
            f"data.root={synthetic_root}",
            "data.download=false",
            "train.eval_interval=2",
            *SMALL,
        )
        run(cfg, root / "siamese_lenet_mlp" / "relu" / f"seed={seed}")
    data = collect(root)
    assert data.history["test_acc"].isna().sum() == 2  # epoch 1 of 2 has no test pass with eval_interval=2
    table = beyond_table(summarize(data.runs), published(), REPORT_ORDER)
    ours = table[table["source"] == "ours"]
    assert list(ours["model"]) == ["siamese_lenet_mlp/relu"] and ours["n"].iloc[0] == 2
    assert ours["mean"].iloc[0] == pytest.approx(data.runs["test_acc"].mean())
    best = table[table["source"] == "report (published best)"].iloc[0]
    assert (best["model"], best["mean"]) == ("siamese_resnet_aux", 0.8693)
    assert table[table["source"] == "report (published)"]["mean"].tolist() == [0.7571]  # the report's ResNet
    assert set(PEERS["source"]) <= set(table["source"])
    report, _ = aggregate(root)
    assert "## Beyond the report" in report.read_text() and (root / "tables" / "beyond.csv").is_file()
    assert beyond_table(
        summarize(collect(root).runs.assign(model="cnn3")), published(), REPORT_ORDER
    ).empty  # report models alone: no section


def test_figures_keep_variants_apart():
    from mnist_pairs.analysis.figures import group_label
    from mnist_pairs.analysis.summary import cell_order

    runs = pd.DataFrame(
        {
            "cell": ["cnn3/relu a=1,b=2", "cnn3/relu", "fcnn/relu", "zeta/relu"],
            "model": ["cnn3", "cnn3", "fcnn", "zeta"],
            "activation": "relu",
            "variant": ["a=1,b=2", "", "", ""],
            "experiment": "x",
        }
    )
    assert [group_label(c, "relu") for c in runs["cell"]] == ["cnn3\na=1\nb=2", "cnn3", "fcnn", "zeta"]
    assert cell_order(runs) == [
        "fcnn/relu",
        "cnn3/relu",
        "cnn3/relu a=1,b=2",
        "zeta/relu",
    ]  # report order, variants after their base
