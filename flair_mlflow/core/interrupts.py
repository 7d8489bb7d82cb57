"""Ctrl-C and SIGTERM during a search: the running trial and the parent end KILLED, exit 130/143.

Flair's trainer catches ``KeyboardInterrupt``, ends the training as if it had finished and
returns, so a plain Ctrl-C would only cut one trial short and the search would go on with the
next. While a search runs, both signals therefore raise :class:`Interrupted`, which is neither
an ``Exception`` nor a ``KeyboardInterrupt``: nothing in Flair or hyperopt catches it, and the
search's own handlers mark the runs KILLED on its way out.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any, Callable

SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: how long after Python dropped a signal's exception it is sent again (see deliver_lost_signals)
RESEND_DELAY_S = 0.05


class Interrupted(BaseException):
    """A signal arrived while a search ran; unwinds through Flair's and hyperopt's handlers."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(f"interrupted by {signal_name(self.signum)}")


class SignalInterrupt(KeyboardInterrupt):
    """A signal as a KeyboardInterrupt, for driver code that cancels its work on one (SparkTrials:
    training runs in the workers there, so Flair's handler is not in the way)."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(f"interrupted by {signal_name(self.signum)}")


class SearchInterrupted(KeyboardInterrupt):
    """What :meth:`Search.run` raises once its runs are KILLED; a KeyboardInterrupt for Python callers.

    ``exit_code`` is the shell's convention: 128 + the signal's number (130 for SIGINT, 143 for SIGTERM).
    """

    def __init__(self, signum: int, parent_run_id: str | None) -> None:
        self.signum = int(signum)
        self.parent_run_id = parent_run_id
        super().__init__(f"interrupted by {signal_name(self.signum)}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def signal_name(self) -> str:
        return signal_name(self.signum)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _restore(previous: dict[int, object]) -> None:
    for number, handler in previous.items():
        signal.signal(number, handler if handler is not None else signal.SIG_DFL)


def catch_signals(exception: Callable[[int], BaseException] = Interrupted) -> Callable[[], None]:
    """From now on SIGINT and SIGTERM raise ``exception`` (:class:`Interrupted`); returns the undo.

    Only in the main thread (Python delivers signals there); elsewhere it does nothing. The first
    signal puts the previous handlers back, so a second Ctrl-C or SIGTERM during the clean-up
    acts as it normally would instead of being swallowed.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {number: signal.getsignal(number) for number in SIGNALS}

    def handler(signum: int, frame: object) -> None:
        _restore(previous)
        raise exception(signum)

    for number in SIGNALS:
        signal.signal(number, handler)
    return lambda: _restore(previous)


def deliver_lost_signals() -> None:
    """From now on a signal whose exception Python had to drop is sent again.

    A signal's exception is raised in whatever Python code runs when it arrives; in code Python
    runs for itself (a weakref callback of the import system, a ``__del__``) it cannot propagate:
    Python prints "Exception ignored in ..." and goes on, so a Ctrl-C while a command loads its
    modules would be lost and the search would start after all. The signal raised again lands in
    the command's own code a moment later. Idempotent; for the command line's process.
    """
    if getattr(sys.unraisablehook, "delivers_lost_signals", False):
        return
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        error = unraisable.exc_value
        signum = getattr(error, "signum", signal.SIGINT if isinstance(error, KeyboardInterrupt) else None)
        if signum is None or threading.current_thread() is not threading.main_thread():
            previous(unraisable)
            return
        # sent a moment later from another thread: sent from here (raise_signal, os.kill), its exception
        # would be raised inside this hook, where Python drops it again
        threading.Timer(RESEND_DELAY_S, os.kill, (os.getpid(), signum)).start()

    hook.delivers_lost_signals = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook
