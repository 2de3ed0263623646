"""Decide comparisons of two cells by adding seeds until each is decided, with error control.

    python -m mnist_pairs.decide --a model=my_cnn --b model=cnn3_bn [--margin 1.0] [--step 5] \\
        [--max-seeds 40] [--alpha 0.05] [shared overrides such as experiment_name=... launcher=joblib]
    python -m mnist_pairs.decide --questions questions.yaml [shared overrides]

Each step runs the missing seeds of every open question through the ordinary sweep (Hydra multirun
with the grid sweeper: finished runs are skipped, so seeds already in the folder count, and
launchers, SLURM and tracking work as for any sweep), then looks at the paired differences of test
accuracy (a minus b, in points, over the seeds both finished, in seed order). A question stops as
soon as it is decided ("higher", "lower", "equivalent within the margin") or at its seed budget
("undecided"). The looks are a group-sequential design (mnist_pairs.analysis.sequential): the chance
of any wrong decision stays <= alpha over all looks, shared by the questions of one command
(Bonferroni). Every look is recomputed from the records, so a killed command run again continues
where it stopped and reaches the same decision. Each question's design, looks and verdict are
written to ``<output_root>/<experiment_name>/decisions/<name>.json``."""

from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from mnist_pairs.analysis.sequential import SPENDING, Look, Plan, run_looks
from mnist_pairs.analysis.stats import detectable_dz
from mnist_pairs.results import records

NAME = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
MAX_SEEDS = 200
# margin, in points: the smallest difference the report's questions care about (its effects: 0.5-5 points);
# the --help texts repeat these
DEFAULTS = {"alpha": 0.05, "margin": 1.0, "step": 5, "max_seeds": 40, "spending": "obrien_fleming"}


class DecideError(ValueError):
    """A bad question or option: reported in one line."""


@dataclass(frozen=True)
class Question:
    name: str
    a: tuple[str, ...]
    b: tuple[str, ...]
    margin: float | None  # points of test accuracy


@dataclass(frozen=True)
class Side:
    overrides: tuple[str, ...]
    cell: str  # records.cell_hash of the composed config
    label: str


def parse_overrides(value: str | list[str], what: str) -> tuple[str, ...]:
    items = shlex.split(value) if isinstance(value, str) else [str(v) for v in value]
    if not items or any("=" not in o or o.split("=", 1)[0].lstrip("+~") == "seed" for o in items):
        raise DecideError(f"{what}={value!r} is not allowed: overrides key=value, without seed (seeds are added here)")
    return tuple(items)


def positive(value: Any, what: str, kind: type = float) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = None
    if number is None or not number > 0 or (kind is int and number != float(value)):
        raise DecideError(f"{what}={value!r} is not allowed: a positive {'integer' if kind is int else 'number'}")
    return number


def questions_from(args: argparse.Namespace) -> tuple[list[Question], dict[str, Any]]:
    """The questions and the design options, from the command line or a YAML file of questions
    (``questions: [{name, a, b, margin}]`` plus optional alpha, margin, step, max_seeds, spending,
    overrides); options given on the command line win."""
    spec: dict[str, Any] = {}
    if args.questions:
        path = Path(args.questions)
        try:
            spec = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise DecideError(f"--questions={path} cannot be read: {str(error).splitlines()[0]}") from None
        if not isinstance(spec, dict) or not isinstance(spec.get("questions"), list) or not spec["questions"]:
            raise DecideError(f"--questions={path} is not allowed: a mapping with a non-empty list 'questions'")
    elif not (args.a and args.b):
        raise DecideError("--a and --b (the two cells' overrides) or --questions FILE are needed")
    options = {k: spec.get(k, v) if getattr(args, k) is None else getattr(args, k) for k, v in DEFAULTS.items()}
    options["overrides"] = [*spec.get("overrides", []), *args.overrides]
    alpha = positive(options["alpha"], "alpha")
    if alpha >= 0.5:
        raise DecideError(f"alpha={alpha} is not allowed: a number in (0, 0.5)")
    options["step"] = positive(options["step"], "step", int)
    options["max_seeds"] = positive(options["max_seeds"], "max_seeds", int)
    if not 5 <= options["max_seeds"] <= MAX_SEEDS:
        raise DecideError(f"max_seeds={options['max_seeds']} is not allowed: from 5 to {MAX_SEEDS}")
    if options["spending"] not in SPENDING:
        raise DecideError(f"spending={options['spending']!r} is not allowed: one of {', '.join(SPENDING)}")
    raw = spec["questions"] if args.questions else [{"name": args.name, "a": args.a, "b": args.b}]
    out = []
    for i, q in enumerate(raw):
        if not isinstance(q, dict) or "a" not in q or "b" not in q:
            raise DecideError(f"question {i + 1} is not allowed: a mapping with a and b (overrides)")
        a, b = parse_overrides(q["a"], "a"), parse_overrides(q["b"], "b")
        name = q.get("name") or "_vs_".join("-".join(o.split("=", 1)[1] for o in side) for side in (a, b))
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(name))[:80]
        if not NAME.match(name) or name in {x.name for x in out}:
            raise DecideError(f"name={name!r} is not allowed: letters, digits, _ . -, unique among the questions")
        margin = q.get("margin", options["margin"])
        out.append(Question(name, a, b, None if margin in (None, 0) else positive(margin, f"{name}: margin")))
    return out, options


def side(overrides: tuple[str, ...], shared: list[str]) -> tuple[Side, Path]:
    """A side's cell identity, label and results folder, composed as its runs will be."""
    from mnist_pairs.config.checks import task_config
    from mnist_pairs.config.compose import compose_config

    try:
        config = task_config(compose_config(*shared, *overrides))
    except Exception as error:  # Hydra's and ours: one line naming the side
        raise DecideError(f"{' '.join(overrides)}: {str(error).splitlines()[0]}") from None
    label = f"{config['model']['name']}/{config['activation']['name']}"
    extra = [o for o in overrides if not o.startswith(("model=", "activation="))]
    label += f" [{' '.join(extra)}]" if extra else ""
    return Side(overrides, records.cell_hash(config), label), Path(config["output_root"]) / config["experiment_name"]


def scores(results_dir: Path, cells: set[str]) -> dict[str, dict[int, float]]:
    """Test accuracy by seed of every run of ``cells`` in the folder: NaN for a run that failed or
    diverged (a lost seed); an interrupted run is left out, as a seed not run yet (the sweep trains it)."""
    out: dict[str, dict[int, float]] = {c: {} for c in cells}
    for path in results_dir.rglob(records.RECORD_FILE):
        try:
            record = records.read_record(path)
        except Exception:  # corrupt records are the aggregation's to report
            continue
        if record.get("status") == "interrupted":
            continue
        metrics = record.get("metrics") or {}
        cell = records.cell_hash(record["config"])
        if cell in out:
            ok = record.get("status") == "ok" and "test_acc" in metrics
            out[cell][int(record["seed"])] = float(metrics["test_acc"]) if ok else math.nan
    return out


def paired_points(a: dict[int, float], b: dict[int, float], budget: int) -> tuple[list[int], list[float]]:
    """The seeds below the budget that both sides finished, in order, and a - b in points."""
    seeds = sorted(s for s in set(a) & set(b) if 0 <= s < budget and not math.isnan(a[s] - b[s]))
    return seeds, [100.0 * (a[s] - b[s]) for s in seeds]


def seeds_for_next_look(plan: Plan, paired: list[int], a: dict[int, float], b: dict[int, float]) -> int:
    """How many seeds (0..n-1) both sides must run for the next planned look: its size plus the seeds
    lost to a run that failed or diverged on either side, within the budget."""
    target = next((n for n in plan.looks() if n > len(paired)), plan.max_seeds)
    lost = {s for side in (a, b) for s, acc in side.items() if math.isnan(acc)}
    n = target
    while n < plan.max_seeds and n - len({s for s in lost if s < n}) < target:
        n += 1
    return n


def verdict_line(q: Question, a: Side, b: Side, looks: list[Look], plan: Plan, n: int) -> tuple[str, str]:
    """(verdict, one line saying it and why the question stopped or goes on)."""
    last = looks[-1] if looks else None
    if last and last.verdict:
        what = (
            f"equivalent within ±{plan.margin:g} pts ({last.mean:+.2f})"
            if last.verdict == "equivalent"
            else f"{last.verdict} by {last.mean:+.2f} pts"
        )
        ci = f"repeated {100 * (1 - plan.alpha):g}% CI {last.ci_low:+.2f} to {last.ci_high:+.2f}"
        return last.verdict, f"{q.name}: {a.label} vs {b.label}: {what} at {last.n} seeds ({ci}); decided"
    if last and last.n >= plan.max_seeds:
        # the smallest difference a fixed design of n seeds detects with 80 % power at alpha
        mde = detectable_dz(last.n, plan.alpha) * last.sd if last.sd > 0 else math.nan
        return "undecided", (
            f"{q.name}: {a.label} vs {b.label}: undecided at {last.n} seeds ({last.mean:+.2f} pts, "
            f"MDE {mde:.2f} pts at 80% power); seed budget reached"
        )
    where = f"{last.mean:+.2f} pts at {last.n} seeds, |t| {abs(last.t):.2f} < {last.c:.2f}" if last else "no look yet"
    return "open", f"{q.name}: {a.label} vs {b.label}: {where} ({n} paired seeds so far); more seeds"


def decision_file(results_dir: Path, name: str) -> Path:
    return results_dir / "decisions" / f"{name}.json"


def check_plan(path: Path, q: Question, plan: Plan, a: Side, b: Side) -> None:
    """A question asked again must keep its design: looks already taken under one design cannot be
    re-read under another without voiding the error control."""
    try:
        stored = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):  # none yet (or unreadable): nothing to keep
        return
    now = {**asdict(plan), "a": a.cell, "b": b.cell}
    then = {**(stored.get("plan") or {}), "a": stored.get("a", {}).get("cell"), "b": stored.get("b", {}).get("cell")}
    changed = [f"{k} {then.get(k)!r} -> {v!r}" for k, v in now.items() if then.get(k) != v]
    if changed:
        raise DecideError(
            f"{q.name}: {path} holds this question under another design ({', '.join(changed)}); looks taken "
            "under one design cannot be re-read under another: give a new design another --name"
        )


def write_decision(path: Path, q: Question, plan: Plan, a: Side, b: Side, looks: list[Look], line: str, v: str) -> None:
    body = {
        "question": q.name,
        "a": {"overrides": list(a.overrides), "cell": a.cell, "label": a.label},
        "b": {"overrides": list(b.overrides), "cell": b.cell, "label": b.label},
        "plan": asdict(plan),
        "design": "group-sequential paired t-test, Lan-DeMets spending, boundaries calibrated on the t law; "
        "alpha shared by the questions of one command (Bonferroni)",
        "looks": [lk.as_dict() for lk in looks],
        "verdict": v,
        "summary": line,
        "decided_at": records.now(),
    }
    records.write_atomically(path, lambda f: f.write(json.dumps(body, indent=1).encode()))


def launch(overrides: tuple[str, ...], shared: list[str], seeds: int) -> int:
    """Seeds 0..seeds-1 of one side through the ordinary sweep (finished runs are skipped)."""
    cmd = [sys.executable, "-m", "mnist_pairs.train", "-m", *shared, *overrides]
    cmd += ["hydra.sweeper.grids=null", f"seed=range(0,{seeds})"]
    print("$ " + shlex.join(cmd[1:]), flush=True)
    return subprocess.run(cmd).returncode


def decide(questions: list[Question], options: dict[str, Any]) -> dict[str, str]:
    shared = list(options["overrides"])
    alpha = float(options["alpha"]) / len(questions)
    sides: dict[str, tuple[Side, Side]] = {}
    plans: dict[str, Plan] = {}
    folder = None
    for q in questions:
        (a, where_a), (b, where_b) = side(q.a, shared), side(q.b, shared)
        if a.cell == b.cell:
            raise DecideError(f"{q.name}: a and b are the same cell ({a.label}): nothing to compare")
        if where_a != where_b or (folder is not None and where_a != folder):
            raise DecideError(f"{q.name}: the questions' runs must share one results folder ({where_a}, {where_b})")
        folder = where_a
        sides[q.name] = (a, b)
        plans[q.name] = Plan(alpha, q.margin, options["step"], options["max_seeds"], spending=options["spending"])
    assert folder is not None
    for q in questions:
        check_plan(decision_file(folder, q.name), q, plans[q.name], *sides[q.name])
    verdicts: dict[str, str] = {}
    launched: dict[tuple[str, ...], int] = {}
    while True:
        cells = {s.cell for pair in sides.values() for s in pair}
        found = scores(folder, cells)
        wanted: dict[tuple[str, ...], int] = {}
        for q in questions:
            if q.name in verdicts:
                continue
            a, b = sides[q.name]
            plan = plans[q.name]
            seeds, diffs = paired_points(found[a.cell], found[b.cell], plan.max_seeds)
            looks = run_looks(diffs, plan)
            v, line = verdict_line(q, a, b, looks, plan, len(seeds))
            write_decision(decision_file(folder, q.name), q, plan, a, b, looks, line, v)
            print(line, flush=True)
            if v != "open":
                verdicts[q.name] = v
                continue
            need = seeds_for_next_look(plan, seeds, found[a.cell], found[b.cell])
            for s in (a, b):
                wanted[s.overrides] = max(wanted.get(s.overrides, 0), need)
        if len(verdicts) == len(questions):
            return verdicts
        if any(launched.get(o, 0) >= n for o, n in wanted.items()):  # asked for these seeds already: runs failed
            for q in questions:
                if q.name not in verdicts:
                    verdicts[q.name] = "undecided"
                    print(
                        f"{q.name}: undecided: runs failed (the sweep names them above); the same command retries them"
                    )
            return verdicts
        for overrides, n in wanted.items():
            launch(overrides, shared, n)
            launched[overrides] = n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnist_pairs.decide", description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", help="overrides of the first cell, e.g. 'model=my_cnn'")
    parser.add_argument("--b", help="overrides of the second cell, e.g. 'model=cnn3_bn'")
    parser.add_argument("--name", help="the question's name (default: from the overrides)")
    parser.add_argument("--questions", help="a YAML file of questions (name, a, b, margin) and options")
    parser.add_argument(
        "--margin", type=float, help="the smallest difference that matters, in points (1.0; 0: no equivalence)"
    )
    parser.add_argument("--alpha", type=float, help="family-wise error rate over looks and questions (0.05)")
    parser.add_argument("--step", type=int, help="seeds added between looks (5)")
    parser.add_argument("--max-seeds", dest="max_seeds", type=int, help="the seed budget per question (40)")
    parser.add_argument("--spending", choices=SPENDING, help="alpha spending (obrien_fleming)")
    parser.add_argument("overrides", nargs="*", help="overrides shared by both cells (experiment_name=..., ...)")
    args = parser.parse_args(argv)
    try:
        questions, options = questions_from(args)
        verdicts = decide(questions, options)
    except DecideError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for name, v in verdicts.items():
        print(f"{name}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
