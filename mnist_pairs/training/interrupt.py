"""Ctrl-C (SIGINT) and SIGTERM (``kill``, a SLURM time limit) as an interruption, not a failure.

``handle_stop_signals`` makes both raise ``Interrupted`` in the main thread, so a run or a sweep
can leave its work unfinished (or record it as ``interrupted``), print one line and exit with the
shell's code for the signal (130 for SIGINT, 143 for SIGTERM)."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any


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


def quiet_unraisable_interrupts() -> None:
    """No traceback for a stop signal that lands where Python cannot raise it (a weakref callback
    of the import system, a ``__del__``): the interpreter would print "Exception ignored in ...
    KeyboardInterrupt" in the middle of the sweep's one line. Other unraisable errors still reach
    the hook that was there before. A sweep's workers install it per job (``train.main``)."""
    previous = sys.unraisablehook
    if getattr(previous, "quiets_interrupts", False):
        return

    def hook(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            previous(unraisable)

    hook.quiets_interrupts = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def handle_stop_signals() -> None:
    """SIGINT and SIGTERM raise ``Interrupted`` (signal handlers can only be set in the main thread;
    elsewhere this does nothing), and none of them prints a traceback from where it cannot be raised."""
    quiet_unraisable_interrupts()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _raise_interrupted)


def exit_code(error: BaseException) -> int:
    """The shell's exit status for a process stopped by the signal behind ``error`` (a plain
    KeyboardInterrupt counts as SIGINT): 128 + the signal's number."""
    return 128 + getattr(error, "signum", int(signal.SIGINT))
