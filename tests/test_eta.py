"""The sweep's ETA: predicted costs learned from measured runs, list scheduling over the workers,
and a replay of a real sweep's timings (tests/data/benchmark_timings.csv)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnist_pairs.results.eta import Costs, Finished, Run, TimedRun, remaining_seconds, replay
from tests.conftest import ROOT

DATA = Path(__file__).parent / "data"
REPLAYED = sorted(p.name for p in DATA.glob("*_timings.csv"))


def test_a_run_costs_its_cells_mean_else_its_models_rate_else_every_models():
    costs = Costs()
    relu, tanh, other = Run("a", "cnn-relu", "cnn", 2.0), Run("b", "cnn-tanh", "cnn", 4.0), Run("c", "mlp", "mlp", 1.0)
    assert costs.predict(relu) == pytest.approx(2.0)  # nothing measured: its work (seconds timed before launch)
    costs.learn(relu, 10.0)
    costs.learn(relu, 14.0)
    assert costs.predict(relu) == pytest.approx(12.0)  # its cell's mean (another seed)
    assert costs.predict(tanh) == pytest.approx(4.0 * 24 / 4.0)  # its model's measured seconds per work
    costs.learn(Run("d", "big", "big", 10.0), 6.0)
    assert costs.predict(other) == pytest.approx(1.0 * (24 + 6) / (4 + 10))  # all measured runs' seconds per work


def test_a_run_too_short_to_be_timed_costs_its_cells_mean_else_only_its_jobs_overhead():
    costs = Costs()
    untimed = Run("a", "tiny", "cnn", 0.0)
    costs.learn(Run("b", "big", "big", 10.0), 6.0)
    assert costs.predict(untimed) == 0.0
    costs.learn(Run("c", "tiny", "cnn", 0.0), 2.0)
    assert costs.predict(untimed) == pytest.approx(2.0)


def test_the_remaining_jobs_are_dealt_to_whichever_worker_is_free_first():
    costs = Costs()
    costs.learn_overhead(0.0)  # jobs cost their runs alone
    cells = {"long": 30.0, "short": 10.0}
    for cell, seconds in cells.items():
        costs.learn(Run("", cell, cell, 0.0), seconds)
    jobs = [[Run(f"{i}", cell, cell, 0.0)] for i, cell in enumerate(["long", "short", "short", "short", "short"])]
    # nothing finished at start: worker 1 runs long (30), worker 2 the four shorts (40)
    assert remaining_seconds(jobs, {}, costs, workers=2, start=0.0, now=0.0) == pytest.approx(40.0)
    # at t=15 the first short ended at 10; the second started then and has 5 s left
    finished = {"1": Finished(10.0, 10.0)}
    assert remaining_seconds(jobs, finished, costs, workers=2, start=0.0, now=15.0) == pytest.approx(5 + 10 + 10)
    # a job running longer than predicted counts as ending now, never as negative
    assert remaining_seconds(jobs[:1], {}, costs, workers=2, start=0.0, now=100.0) == 0.0
    everything = {str(i): Finished(1.0, 50.0) for i in range(5)}
    assert remaining_seconds(jobs, everything, costs, workers=2, start=0.0, now=60.0) == 0.0


def load_replay_script():
    """scripts/eta_replay.py as a module (scripts/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("eta_replay", ROOT / "scripts" / "eta_replay.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Tables whose replay at 10 % is known to miss 25 %: what the estimator does not yet do.
LONG_AT_10 = {
    "smoke_timings.csv": "-32 %: runs of 3 steps are not timed before launch (it would cost as much as the run), "
    "so at 10 % an unmeasured model costs only its job's overhead (2-3 s a job on that loaded machine)",
}


def replayed(table: str, fractions: tuple[float, ...]) -> list[tuple[float, float, float]]:
    """(fraction, predicted, actual seconds left) of a frozen table's replay."""
    replay_script = load_replay_script()
    rows = replay_script.read_table(DATA / table)
    workers = len({r["pid"] for r in rows})
    found = replay(replay_script.timed_runs(rows), workers, fractions)
    assert [n for n, _, _ in found] == [round(f * len(rows)) for f in fractions]
    return [(f, predicted, actual) for f, (_, predicted, actual) in zip(fractions, found)]


@pytest.mark.parametrize("table", REPLAYED)
def test_a_real_sweeps_timings_replayed_give_the_time_left_within_a_quarter(table):
    """The estimator sees only the runs finished when 25 and 50 % of a real sweep had finished
    (its jobs in launch order, its workers); its ETA is within 25 % of the time the sweep then took."""
    for fraction, predicted, actual in replayed(table, (0.25, 0.50)):
        assert abs(predicted / actual - 1) <= 0.25, f"{table} at {fraction:.0%}: {predicted:.0f} s vs {actual:.0f} s"


@pytest.mark.parametrize(
    "table",
    [
        pytest.param(t, marks=pytest.mark.xfail(strict=True, reason=LONG_AT_10[t])) if t in LONG_AT_10 else t
        for t in REPLAYED
    ],
)
def test_at_a_tenth_of_a_real_sweep_the_eta_is_within_a_quarter(table):
    """At 10 % most models have not run yet: their cost is their steps timed before launch, at the
    seconds per timed second of the runs finished so far (the tables' ``work`` column: run_work on
    the development machine; a fully connected net runs twice the FLOP/s of a small conv net, so
    FLOP alone missed by +46 % here)."""
    ((fraction, predicted, actual),) = replayed(table, (0.10,))
    assert abs(predicted / actual - 1) <= 0.25, f"{table} at {fraction:.0%}: {predicted:.0f} s vs {actual:.0f} s"


def test_the_replay_knows_only_the_runs_finished_so_far():
    """A run's cost comes from runs finished before the moment replayed: a sweep whose later runs
    turn slow is predicted from the early ones, so its ETA falls short."""
    fast = [TimedRun(i, Run(f"r{i}", "cell", "m", 1.0), i * 10.0, i * 10.0 + 10.0, "w") for i in range(5)]
    slow = [TimedRun(5 + i, Run(f"s{i}", "cell", "m", 1.0), 50.0 + i * 30, 80.0 + i * 30, "w") for i in range(5)]
    ((n, predicted, actual),) = replay(fast + slow, workers=1, fractions=(0.5,))
    assert n == 5 and actual == pytest.approx(150.0) and predicted == pytest.approx(50.0, rel=0.05)
