"""The sweep's ETA: one number of seconds, from a predicted cost of every run known before launch.

A run's predicted seconds are, from the best source at hand:

1. the mean measured seconds of finished runs of its cell (the same config but the seed:
   ``records.cell_hash``), from this sweep's folder or this session;
2. its work (the seconds its training steps and evaluations take on one quiet worker, from a
   few steps of its model timed before launch: mnist_pairs.results.session.run_work) times the
   measured seconds per work of the finished runs of its model (another activation or data
   size of the same architecture), or while its model has not run, of all finished runs (the
   workers beside each other and the sweep's own costs slow every model alike);
3. its work alone before any run finished.

A run too short to be worth timing before launch (``session.PROBE_MIN_STEPS`` steps) costs its
cell's mean, else nothing besides its job's overhead, which is then most of its cost (the mean of
all finished runs would price ``make smoke``'s 3-step runs at its ResNets', which run first).

A job also costs its launcher's set-up besides its runs (the mean of the last jobs' measured
overheads).

The remaining jobs are then dealt to the workers as the launchers do (joblib dispatches jobs in
launch order to whichever worker is free): list scheduling in launch order, each worker free once
its job in flight has run its predicted seconds (less what it has run already). Pure Python:
``scripts/eta_replay.py`` and tests/test_eta.py replay a real sweep's timings through it."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Seconds a job costs besides its runs before one was measured: `make smoke`'s 29 jobs of tiny runs
# take 14-16 s on 2 workers (docs/performance.md), about 1 s a job.
DEFAULT_JOB_OVERHEAD = 1.0
RECENT_JOBS = 8  # the job overhead is the mean of the last that many jobs'


@dataclass(frozen=True)
class Run:
    """One run of a sweep: ``key`` its folder relative to the sweep's, ``cell`` its config's hash
    without the seed, ``work`` its seconds on one quiet worker as timed before launch (0 when
    unknown)."""

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

    def __init__(self) -> None:
        self.by_cell: dict[str, list[float]] = {}
        self.by_model: dict[str, list[float]] = {}  # [seconds, work] of its runs with a known work
        self.overheads: list[float] = []

    def learn_overhead(self, seconds: float) -> None:
        """Add one job's measured seconds outside its runs: from its worker's previous job's end to
        its own start (the launcher's setup, composing the job's config)."""
        self.overheads.append(max(0.0, seconds))

    def job_overhead(self) -> float:
        """Seconds a job is expected to cost besides its runs."""
        recent = self.overheads[-RECENT_JOBS:]  # the launcher's setup follows the machine's load
        return sum(recent) / len(recent) if recent else DEFAULT_JOB_OVERHEAD

    def learn(self, run: Run, seconds: float) -> None:
        """Add one finished run's measured ``seconds``."""
        self.by_cell.setdefault(run.cell, []).append(seconds)
        if run.work > 0:
            model = self.by_model.setdefault(run.model, [0.0, 0.0])
            model[0] += seconds
            model[1] += run.work

    def predict(self, run: Run) -> float:
        """Seconds the run is expected to take."""
        if run.cell in self.by_cell:
            measured = self.by_cell[run.cell]
            return sum(measured) / len(measured)
        if run.work <= 0:  # too short to be timed: its job's overhead is most of its cost
            return 0.0
        seconds, work = self.by_model.get(run.model, (0.0, 0.0))
        if work <= 0 and self.by_model:
            seconds, work = (sum(m[i] for m in self.by_model.values()) for i in (0, 1))
        return run.work * seconds / work if work > 0 else run.work


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
    # when each job started: the launcher hands job i to the worker freed by the (i - workers)-th
    # job to end, the first ``workers`` jobs at ``start``; a job past the list has not started
    began = [start] * workers + sorted(max(finished[r.key].end for r in job) for job, d in zip(jobs, done) if d and job)
    free: list[float] = []  # when each worker is free, as seconds from now
    pending: list[Sequence[Run]] = []
    for i, (job, is_done) in enumerate(zip(jobs, done)):
        if is_done:
            continue
        if i >= len(began):
            pending.append(job)
            continue
        ended = [finished[r.key].end for r in job if r.key in finished]
        busy_since = max([began[i], *ended])
        left = (0.0 if ended else costs.job_overhead()) + sum(costs.predict(r) for r in job if r.key not in finished)
        free.append(max(0.0, left - (now - busy_since)))
    free = sorted(free)[-workers:] + [0.0] * max(0, workers - len(free))
    heapq.heapify(free)
    for job in pending:
        heapq.heappush(free, heapq.heappop(free) + costs.job_overhead() + sum(costs.predict(r) for r in job))
    return max(free)


@dataclass(frozen=True)
class TimedRun:
    """A finished run of a past sweep, for a replay: its job (launched in order of first start),
    its run, and its start and end in seconds."""

    job: int
    run: Run
    start: float
    end: float
    worker: str = ""


def replay(timed: Sequence[TimedRun], workers: int, fractions: Sequence[float]) -> list[tuple[int, float, float]]:
    """(runs finished, predicted seconds left, actual seconds left) at the moment the given
    ``fractions`` of a past sweep's runs had finished, the estimator knowing only those runs."""
    by_job: dict[int, list[TimedRun]] = {}
    for t in sorted(timed, key=lambda t: (t.job, t.start)):
        by_job.setdefault(t.job, []).append(t)
    jobs = [[t.run for t in job] for job in sorted(by_job.values(), key=lambda job: (job[0].start, job[0].job))]
    ends = sorted(timed, key=lambda t: t.end)
    start, last = min(t.start for t in timed), ends[-1].end
    spans = worker_spans(ends)
    out: list[tuple[int, float, float]] = []
    for fraction in fractions:
        n = max(1, min(len(ends), round(fraction * len(ends))))
        now = ends[n - 1].end
        costs = Costs()
        finished: dict[str, Finished] = {}
        for t in ends[:n]:
            seconds, overhead = spans[t.run.key]
            costs.learn(t.run, seconds)
            if overhead is not None:
                costs.learn_overhead(overhead)
            finished[t.run.key] = Finished(seconds, t.end)
        out.append((n, remaining_seconds(jobs, finished, costs, workers, start, now), last - now))
    return out


def worker_spans(ends: Sequence[TimedRun]) -> dict[str, tuple[float, float | None]]:
    """Each run's (seconds, job overhead) as its worker spent them (runs sorted by end): a job's
    first run from its own start, its overhead from the end of the worker's previous job (None
    for a worker's first job, whose overhead is the worker's start); a later run of a job from the
    end of the run before it."""
    previous: dict[str, tuple[int, float]] = {}
    spans: dict[str, tuple[float, float | None]] = {}
    for t in ends:
        job, end = previous.get(t.worker, (None, None))
        if job == t.job and end is not None:
            spans[t.run.key] = (t.end - end, None)
        else:
            spans[t.run.key] = (t.end - t.start, None if end is None else t.start - end)
        previous[t.worker] = (t.job, t.end)
    return spans
