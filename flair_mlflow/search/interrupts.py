"""Ctrl-C and SIGTERM as exceptions that Flair's trainer (it swallows KeyboardInterrupt) and hyperopt let through."""

from __future__ import annotations

import signal
import threading
from typing import Callable

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Interrupted(BaseException):
    """A signal arrived while a search ran; unwinds through Flair's and hyperopt's handlers."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(f"interrupted by {signal_name(self.signum)}")


class SearchInterrupted(Interrupted, KeyboardInterrupt):
    """What a search raises once its runs are KILLED (a KeyboardInterrupt to its caller, as a Ctrl-C is);
    ``exit_code`` is the shell's 128 + the signal's number."""

    def __init__(self, signum: int, parent_run_id: str | None) -> None:
        super().__init__(signum)
        self.parent_run_id = parent_run_id

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def signal_name(self) -> str:
        return signal_name(self.signum)


def catch_signals(exception: Callable[[int], BaseException] = Interrupted) -> Callable[[], None]:
    """SIGINT and SIGTERM raise ``exception`` (main thread only); returns the undo, which the first signal runs."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {number: signal.getsignal(number) for number in SIGNALS}

    def restore() -> None:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)

    def handler(signum: int, frame: object) -> None:
        restore()
        raise exception(signum)

    for number in SIGNALS:
        signal.signal(number, handler)
    return restore
