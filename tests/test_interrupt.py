"""Ctrl-C (SIGINT) and SIGTERM of ``python -m mnist_pairs.train`` while it trains: the runs
training are recorded as ``interrupted`` (no traceback), the job prints one line and exits 130 /
143, finished seeds stay ``ok``, seeds of a batch in turn not yet started get no record, the same
command trains the interrupted runs, and neither the aggregation nor decide counts an interrupted
run as a failure or a lost seed."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnist_pairs.analysis.collect import collect
from mnist_pairs.results import records
from tests.conftest import ROOT, run_cli

SMALL = ("data.n_train=100", "data.n_test=50", "train.batch_size=50", "device.threads=1")
LONG = ("model=fcnn", "train.epochs=100")  # long enough to be stopped after its first epoch, short to resume
VARIANT = "data.n_test=50,data.n_train=100,train.batch_size=50,train.epochs=100"  # the folder's overridden keys


def cli_args(out: Path, data: Path, *extra: str) -> list[str]:
    return [f"data.root={data}", "data.download=false", f"output_root={out}", *SMALL, *LONG, *extra]


def stopped_after_first_epoch(args: list[str], signum: int, stderr_file: Path) -> tuple[int, str, str]:
    """Start the training CLI, send ``signum`` once its first epoch is logged; (exit status,
    stdout, stderr)."""
    with open(stderr_file, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mnist_pairs.train", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True
        )
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if " epoch 1/" in line:
                proc.send_signal(signum)
                break
        rest, _ = proc.communicate(timeout=300)
    return proc.returncode, "".join(seen) + rest, stderr_file.read_text()


def run_dir(out: Path, seed: int) -> Path:
    return out / "runs" / "fcnn" / "relu" / VARIANT / f"seed={seed}"


def test_sigint_records_the_run_as_interrupted_and_the_same_command_finishes_it(tmp_path, synthetic_root):
    out = tmp_path / "out"
    args = cli_args(out, synthetic_root)
    code, stdout, stderr = stopped_after_first_epoch(args, signal.SIGINT, tmp_path / "stderr")
    assert code == 130, stderr
    assert stderr.splitlines() == [
        f"interrupted (SIGINT): fcnn/relu/{VARIANT}/seed=0 not finished; the same command resumes"
    ]
    assert "Traceback" not in stdout + stderr
    record = records.read_record(run_dir(out, 0) / records.RECORD_FILE)
    assert record["status"] == "interrupted" and record["error"] == "interrupted by SIGINT"
    assert "traceback" not in record and records.finished_record(run_dir(out, 0)) is None
    data = collect(out)
    assert data.interrupted == [f"fcnn/relu/{VARIANT}/seed=0: interrupted"] and data.runs.empty

    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    finished = records.finished_record(run_dir(out, 0))
    assert finished is not None and finished["status"] == "ok"
    assert len(finished["history"]["train_loss"]) == 100


def test_sigterm_of_a_seed_batch_interrupts_the_seeds_training_and_keeps_the_finished_one(tmp_path, synthetic_root):
    out = tmp_path / "out"
    first = run_cli(*cli_args(out, synthetic_root, "seed=2"))
    assert first.returncode == 0, first.stderr
    kept = (run_dir(out, 2) / records.RECORD_FILE).read_bytes()
    args = cli_args(out, synthetic_root, "seed=0", "device.seed_batch=[0,1,2]", "device.vectorize=3")
    code, stdout, stderr = stopped_after_first_epoch(args, signal.SIGTERM, tmp_path / "stderr")
    assert code == 143, stderr
    assert stderr.splitlines() == [
        f"interrupted (SIGTERM): fcnn/relu/{VARIANT}/seed=0, fcnn/relu/{VARIANT}/seed=1 not finished; "
        "the same command resumes"
    ]
    assert "Traceback" not in stdout + stderr
    statuses = {s: records.read_record(run_dir(out, s) / records.RECORD_FILE)["status"] for s in (0, 1, 2)}
    assert statuses == {0: "interrupted", 1: "interrupted", 2: "ok"}
    assert (run_dir(out, 2) / records.RECORD_FILE).read_bytes() == kept  # the finished seed untouched
    data = collect(out)
    assert list(data.runs["status"]) == ["ok"]
    assert len(data.interrupted) == 2 and data.unfinished_seeds == {}

    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    assert [records.finished_record(run_dir(out, s)) is not None for s in (0, 1, 2)] == [True, True, True]
    assert (run_dir(out, 2) / records.RECORD_FILE).read_bytes() == kept


def test_sigint_of_seeds_in_turn_records_the_seed_training_and_leaves_the_next_unstarted(tmp_path, synthetic_root):
    out = tmp_path / "out"
    args = cli_args(out, synthetic_root, "seed=0", "device.seed_batch=[0,1]", "device.vectorize=1")
    code, stdout, stderr = stopped_after_first_epoch(args, signal.SIGINT, tmp_path / "stderr")
    assert code == 130 and "Traceback" not in stdout + stderr
    assert stderr.splitlines() == [
        f"interrupted (SIGINT): fcnn/relu/{VARIANT}/seed=0, fcnn/relu/{VARIANT}/seed=1 not finished; "
        "the same command resumes"
    ]
    assert records.read_record(run_dir(out, 0) / records.RECORD_FILE)["status"] == "interrupted"
    assert not (run_dir(out, 1) / records.RECORD_FILE).exists()  # never started: no record


# --- interrupted records in the aggregation and in decide ----------------------------------------


def as_seed(record: records.RunRecord, seed: int, status: str = "ok") -> records.RunRecord:
    out = copy.deepcopy(record)
    out["seed"], out["config"]["seed"] = seed, seed
    if status == "interrupted":
        out.update(status="interrupted", error="interrupted by SIGINT", metrics=None, history=None)
        out.pop("test_pairs", None)
    return out


def test_the_report_lists_an_interrupted_run_apart_from_failures(one_record, tmp_path):
    from mnist_pairs.aggregate import aggregate

    folder = tmp_path / "results"
    records.write_record(folder / "seed=0", as_seed(one_record, 0))
    records.write_record(folder / "seed=1", as_seed(one_record, 1, "interrupted"))
    report, data = aggregate(folder, out=tmp_path / "analysis")
    text = report.read_text()
    assert data.interrupted == ["fcnn/relu/seed=1: interrupted"]
    assert list(data.runs["seed"]) == [0] and data.unfinished_seeds == {}
    assert "0 failed" in text and "1 interrupted runs" in text
    assert "- fcnn/relu/seed=1: interrupted (the same command resumes it)" in text
    assert "seed=1`: failed" not in text


def test_the_aggregation_summary_counts_interrupted_runs_and_a_folder_of_them_alone_says_so(
    one_record, tmp_path, capsys
):
    from mnist_pairs.aggregate import main

    folder = tmp_path / "results"
    records.write_record(folder / "seed=1", as_seed(one_record, 1, "interrupted"))
    with pytest.raises(SystemExit, match=r"no finished run records .*; 1 interrupted \(the same command resumes"):
        main([str(folder), "--out", str(tmp_path / "a")])
    records.write_record(folder / "seed=0", as_seed(one_record, 0))
    main([str(folder), "--out", str(tmp_path / "b")])
    assert "1 records (0 not ok, 1 interrupted runs left out," in capsys.readouterr().out


def test_decide_counts_an_interrupted_run_as_not_run_yet_not_as_a_lost_seed(one_record, tmp_path):
    from mnist_pairs.decide import scores

    records.write_record(tmp_path / "seed=0", as_seed(one_record, 0))
    records.write_record(tmp_path / "seed=1", as_seed(one_record, 1, "interrupted"))
    failed = as_seed(one_record, 2)
    failed.update(status="failed", error="RuntimeError: boom", metrics=None)
    records.write_record(tmp_path / "seed=2", failed)
    cell = records.cell_hash(one_record["config"])
    found = scores(tmp_path, {cell})[cell]
    assert set(found) == {0, 2} and found[0] == one_record["metrics"]["test_acc"]
    assert found[2] != found[2]  # NaN: a lost seed


def test_an_error_a_stop_signal_turned_into_is_still_the_interruption():
    """A SIGTERM that lands inside a library which then fails otherwise (Hydra composing a job's
    config between two jobs raised OmegaConf's AttributeError in a CI run) is still the
    interruption: the sweep's session asks stop_requested, not the error's type."""
    from mnist_pairs.training import interrupt

    saved, hook = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}, sys.unraisablehook
    interrupt.handle_stop_signals()
    try:
        assert interrupt.stop_requested() is None
        with pytest.raises(AttributeError):
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # the handler raises Interrupted here
            except KeyboardInterrupt:
                raise AttributeError("'NoneType' object has no attribute '_invalidate_flags_cache'") from None
        stopped = interrupt.stop_requested()
        assert stopped is not None and interrupt.exit_code(stopped) == 143
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
        sys.unraisablehook = hook
        interrupt._received.clear()


UNRAISABLE = """
import gc, sys
from mnist_pairs.training.interrupt import quiet_unraisable_interrupts

class Raises:
    def __init__(self, error): self.error = error
    def __del__(self): raise self.error

quiet_unraisable_interrupts()
quiet_unraisable_interrupts()  # twice: still one hook
Raises(KeyboardInterrupt())  # Ctrl-C landing where Python cannot raise it
Raises(ValueError("a real error, still shown"))
gc.collect()
print("went on")
"""


def test_a_stop_signal_python_cannot_raise_prints_no_traceback_and_other_errors_still_show():
    """A Ctrl-C that lands in a weakref callback of the import system (seen once in a sweep's
    worker: "Exception ignored in ... KeyboardInterrupt" beside the sweep's one line) prints
    nothing; any other error there is still reported by the hook that was there before."""
    done = subprocess.run([sys.executable, "-c", UNRAISABLE], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "went on", done.stderr
    assert "KeyboardInterrupt" not in done.stderr, done.stderr
    assert done.stderr.count("Traceback") == 1 and "ValueError: a real error, still shown" in done.stderr
