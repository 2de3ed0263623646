"""The sweep's ETA: predicted costs learned from measured runs, list scheduling over the workers,
and a replay of a real sweep's timings (tests/data/benchmark_timings.csv)."""

from __future__ import annotations

import pytest

from mnist_pairs.results.eta import Costs, Finished, Run, remaining_seconds


def test_a_run_costs_its_cells_mean_else_its_models_rate_else_the_machines():
    costs = Costs(default_rate=1e9)
    relu, tanh, other = Run("a", "cnn-relu", "cnn", 2e9), Run("b", "cnn-tanh", "cnn", 4e9), Run("c", "mlp", "mlp", 1e9)
    assert costs.predict(relu) == pytest.approx(2.0)  # nothing measured: the default rate
    costs.learn(relu, 10.0)
    costs.learn(relu, 14.0)
    assert costs.predict(relu) == pytest.approx(12.0)  # its cell's mean (another seed)
    assert costs.predict(tanh) == pytest.approx(4e9 * 24 / 4e9)  # its model's seconds per FLOP
    costs.learn(Run("d", "big", "big", 10e9), 10.0)
    assert costs.predict(other) == pytest.approx(1e9 * 34 / 14e9)  # every run's seconds per FLOP


def test_the_remaining_jobs_are_dealt_to_whichever_worker_is_free_first():
    costs = Costs()
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
