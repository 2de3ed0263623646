"""The sweep's ETA: one number of seconds, from a predicted cost of every run known before launch.

A run's predicted seconds are, from the best source at hand:

1. the mean measured seconds of finished runs of its cell (the same config but the seed:
   ``records.cell_hash``), from this sweep's folder or this session;
2. its work (FLOP of its training steps and evaluations, counted once per model config, see
   mnist_pairs.results.session) times the seconds per FLOP of the finished runs of its model
   (another activation or data size of the same architecture);
3. its work times the seconds per FLOP of all finished runs (the machine's running rate), or
   ``DEFAULT_RATE`` before any run finished.

The remaining jobs are then dealt to the workers as the launchers do (joblib dispatches jobs in
launch order to whichever worker is free): list scheduling in launch order, each worker free once
its job in flight has run its predicted seconds (less what it has run already). Pure Python:
``scripts/eta_replay.py`` and tests/test_eta.py replay a real sweep's timings through it."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# FLOP/s of one worker before any run finished: the slowest rate of the report's models measured
# on one core of the development machine (cnn3: 53 GFLOP/s with its per-step overhead; the ResNets
# 90-95; `make bench`), so the first estimate errs long rather than short.
DEFAULT_RATE = 50e9


@dataclass(frozen=True)
class Run:
    """One run of a sweep: ``key`` its folder relative to the sweep's, ``cell`` its config's hash
    without the seed, ``work`` its FLOP (0 when unknown)."""

    key: str
    cell: str
    model: str
    work: float


@dataclass(frozen=True)
class Finished:
    """A run's measured wall ``seconds`` and when it ended (``time.time()``)."""

    seconds: float
    end: float


class Costs:
    """Predicted seconds of a run, learned from measured runs (see the module's docstring)."""

    def __init__(self, default_rate: float = DEFAULT_RATE) -> None:
        self.default_rate = default_rate
        self.by_cell: dict[str, list[float]] = {}
        self.by_model: dict[str, list[float]] = {}  # [seconds, work] of its runs with a known work
        self.total = [0.0, 0.0]

    def learn(self, run: Run, seconds: float) -> None:
        """Add one finished run's measured ``seconds``."""
        self.by_cell.setdefault(run.cell, []).append(seconds)
        if run.work > 0:
            model = self.by_model.setdefault(run.model, [0.0, 0.0])
            model[0] += seconds
            model[1] += run.work
            self.total[0] += seconds
            self.total[1] += run.work

    def predict(self, run: Run) -> float:
        """Seconds the run is expected to take."""
        if run.cell in self.by_cell:
            measured = self.by_cell[run.cell]
            return sum(measured) / len(measured)
        seconds, work = self.by_model.get(run.model, self.total)
        if work <= 0:
            seconds, work = self.total
        return run.work * (seconds / work if work > 0 else 1 / self.default_rate)


def job_starts(n_jobs: int, job_ends: Sequence[float], workers: int, start: float) -> list[float | None]:
    """When each job (in launch order) started, for a launcher that hands job ``i`` to the worker
    freed by the ``i - workers``-th job to end: the first ``workers`` jobs at ``start``, later
    ones at an end time, None for jobs not started yet."""
    ends = sorted(job_ends)
    return [start if i < workers else (ends[i - workers] if i - workers < len(ends) else None) for i in range(n_jobs)]


def remaining_seconds(
    jobs: Sequence[Sequence[Run]],
    finished: Mapping[str, Finished],
    costs: Costs,
    workers: int,
    start: float,
    now: float,
) -> float:
    """Seconds until the last of ``jobs`` (launched in this order, over ``workers`` workers since
    ``start``) ends, given the runs ``finished`` by ``now`` and ``costs`` learned from them."""
    workers = max(1, workers)
    done = [all(r.key in finished for r in job) for job in jobs]
    job_ends = [max(finished[r.key].end for r in job) for job, d in zip(jobs, done) if d and job]
    free: list[float] = []  # when each worker is free, as seconds from now
    pending: list[Sequence[Run]] = []
    for job, is_done, began in zip(jobs, done, job_starts(len(jobs), job_ends, workers, start)):
        if is_done:
            continue
        if began is None:
            pending.append(job)
            continue
        ended = [finished[r.key].end for r in job if r.key in finished]
        busy_since = max([began, *ended])
        left = sum(costs.predict(r) for r in job if r.key not in finished)
        free.append(max(0.0, left - (now - busy_since)))
    free = sorted(free)[-workers:] + [0.0] * max(0, workers - len(free))
    heapq.heapify(free)
    for job in pending:
        heapq.heappush(free, heapq.heappop(free) + sum(costs.predict(r) for r in job))
    return max(free)
