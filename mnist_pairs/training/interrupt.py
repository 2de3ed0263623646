"""Ctrl-C (SIGINT) and SIGTERM (``kill``, a SLURM time limit) as an interruption, not a failure.

``handle_stop_signals`` makes both raise ``Interrupted`` in the main thread, so a run or a sweep
can leave its work unfinished (or record it as ``interrupted``), print one line and exit with the
shell's code for the signal (130 for SIGINT, 143 for SIGTERM)."""

from __future__ import annotations

import signal
import threading
from types import FrameType


class Interrupted(KeyboardInterrupt):
    """The process was asked to stop by ``signum``."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


_received: list[int] = []  # the stop signals this process has received


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    raise Interrupted(signum)


def stop_requested() -> Interrupted | None:
    """The interruption of the first stop signal this process received, None when none came. A
    signal can land inside a library that then fails otherwise (Hydra composing a job's config
    raises an AttributeError from OmegaConf's half-updated state): the error is the interruption."""
    return Interrupted(_received[0]) if _received else None


def handle_stop_signals() -> None:
    """SIGINT and SIGTERM raise ``Interrupted`` (signal handlers can only be set in the main thread;
    elsewhere this does nothing)."""
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _raise_interrupted)


def exit_code(error: BaseException) -> int:
    """The shell's exit status for a process stopped by the signal behind ``error`` (a plain
    KeyboardInterrupt counts as SIGINT): 128 + the signal's number."""
    return 128 + getattr(error, "signum", int(signal.SIGINT))
