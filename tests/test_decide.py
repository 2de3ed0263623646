"""python -m mnist_pairs.decide: questions decided by adding seeds through real sweeps (synthetic
MNIST), the decision file, a kill and a re-run, and bad input refused in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnist_pairs.results import records
from tests.conftest import ROOT, make_synthetic_mnist, run_cli

QUESTIONS = """
alpha: 0.05
step: 5
max_seeds: 20
questions:
  - name: trained_vs_untrained     # 5 epochs against an optimizer that barely moves: clearly higher
    a: model=fcnn train.epochs=5
    b: model=fcnn optimizer.lr=1e-7
  - name: same_model               # the same net; a small weight decay moves every run a little
    a: model=fcnn
    b: model=fcnn optimizer.weight_decay=1e-2
    margin: 2
"""


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_mnist(tmp_path_factory.mktemp("mnist"), n_train=1000, n_test=600)


def shared(out: Path, data_root: Path) -> list[str]:
    return [
        f"output_root={out}",
        "experiment_name=decide",
        f"data.root={data_root}",
        "data.download=false",
        "data.n_train=200",
        "data.n_test=200",
        "train.epochs=3",
    ]


def decisions(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((out / "decide" / "decisions").glob("*.json"))}


def record_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob(records.RECORD_FILE)}


@pytest.mark.slow
def test_questions_are_decided_killed_and_resumed_to_the_same_decision(tmp_path, data_root):
    questions = tmp_path / "questions.yaml"
    questions.write_text(QUESTIONS)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mnist_pairs.decide", "--questions", str(questions), *shared(out, data_root)]

    # killed once its first sweep has finished some runs
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while len(record_bytes(out)) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)
    # a run stopped mid-training is recorded as interrupted, and the same command trains it again
    before = {k: v for k, v in record_bytes(out).items() if b'"status": "interrupted"' not in v}
    assert before, "the first sweep finished no run before the kill"

    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    after = record_bytes(out)
    assert {k: after[k] for k in before} == before, "finished seeds are not trained again"

    decided = decisions(out)
    clear, same = decided["trained_vs_untrained"], decided["same_model"]
    assert clear["verdict"] == "higher"
    assert clear["looks"][-1]["n"] < 20, "a clear difference stops well before the budget"
    assert [lk["n"] for lk in clear["looks"]] == [5, 10, 15, 20][: len(clear["looks"])]
    assert clear["plan"]["alpha"] == pytest.approx(0.025), "alpha shared by the two questions"
    assert same["verdict"] in ("equivalent", "undecided"), same["summary"]
    assert "trained_vs_untrained: higher" in done.stdout

    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "Launching" not in again.stdout + again.stderr
    assert {k: v["looks"] for k, v in decisions(out).items()} == {k: v["looks"] for k, v in decided.items()}


def test_bad_questions_are_refused_in_one_line(tmp_path, data_root):
    base = shared(tmp_path, data_root)
    cases = [
        (["--a", "model=fcnn", "--b", "model=fcnn"], "a and b are the same cell (fcnn/relu)"),
        (["--a", "model=fcnn", "--b", "model=cnn3", "--max-seeds", "3"], "max_seeds=3 is not allowed: from 5 to 200"),
        (["--a", "model=fcnn seed=3", "--b", "model=cnn3"], "without seed"),
        (["--a", "model=nope", "--b", "model=cnn3"], "model=nope"),
        (["--a", "model=fcnn"], "--a and --b"),
        (["--a", "model=fcnn", "--b", "model=cnn3", "--alpha", "0.7"], "alpha=0.7 is not allowed"),
    ]
    for args, message in cases:
        done = run_cli(*args, *base, module="mnist_pairs.decide")
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith("error: ") and message in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "decide").exists(), "nothing written for a refused question"


def test_a_question_asked_again_under_another_design_is_refused(tmp_path, data_root):
    folder = tmp_path / "decide" / "decisions"
    folder.mkdir(parents=True)
    (folder / "q.json").write_text(
        json.dumps({"plan": {"alpha": 0.05, "margin": 1.0, "step": 5, "max_seeds": 40, "first": 5}, "a": {}, "b": {}})
    )
    done = run_cli(
        "--a",
        "model=fcnn",
        "--b",
        "model=cnn3",
        "--name",
        "q",
        "--max-seeds",
        "30",
        *shared(tmp_path, data_root),
        module="mnist_pairs.decide",
    )
    assert done.returncode == 2 and "max_seeds 40 -> 30" in done.stderr, done.stderr


def test_the_aggregation_reads_every_decision_file(tmp_path):
    from mnist_pairs.analysis.decisions import read_decisions, section
    from mnist_pairs.analysis.sequential import Plan, run_looks
    from mnist_pairs.decide import Question, Side, decision_file, write_decision

    plan = Plan(alpha=0.05, margin=1.0, step=5, max_seeds=20)
    looks = run_looks([3.0, 3.2, 2.9, 3.1, 3.0, 2.8, 3.3, 3.0, 2.9, 3.1], plan)
    q = Question("q1", ("model=cnn3",), ("model=fcnn",), 1.0)
    a, b = Side(q.a, "a" * 16, "cnn3/relu"), Side(q.b, "b" * 16, "fcnn/relu")
    write_decision(decision_file(tmp_path, "q1"), q, plan, a, b, looks, "line", looks[-1].verdict)
    (tmp_path / "decisions" / "broken.json").write_text("{")
    table = read_decisions(tmp_path).set_index("question")
    assert table.loc["q1", "verdict"] == "higher" and table.loc["q1", "n"] == looks[-1].n
    assert table.loc["q1", "diff_pts"] == pytest.approx(looks[-1].mean)
    assert table.loc["broken", "verdict"] == "unreadable"
    text = "\n".join(section(table.reset_index()))
    assert f"| q1 | cnn3/relu | fcnn/relu | higher | {looks[-1].n} of 20 |" in text
    assert section(read_decisions(tmp_path / "none")) == []


def test_the_next_look_asks_for_its_seeds_and_replaces_lost_ones_only():
    import math

    from mnist_pairs.analysis.sequential import Plan
    from mnist_pairs.decide import paired_points, seeds_for_next_look

    plan = Plan(alpha=0.05, margin=1.0, step=5, max_seeds=20)
    a = {s: 0.8 for s in range(15)}  # one side already ran more seeds (another question): none is lost
    b = {s: 0.7 for s in range(10)}
    assert seeds_for_next_look(plan, paired_points(a, b, 20)[0], a, b) == 15
    b[3] = math.nan  # a failed run: the look at 10 pairs needs seed 10 too
    seeds, diffs = paired_points(a, b, 20)
    assert len(seeds) == 9 and 3 not in seeds and diffs[0] == pytest.approx(10.0)
    assert seeds_for_next_look(plan, seeds, a, b) == 11
    assert seeds_for_next_look(plan, list(range(19)), a, {**b, 19: math.nan}) == 20  # never past the budget
