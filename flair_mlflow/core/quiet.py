"""Other libraries' log lines held back for a moment, so a command's own one line stands alone."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def quiet_loggers(names: tuple[str, ...], level: int) -> Iterator[None]:
    """The loggers ``names`` at ``level`` inside the block, at their own levels again after it."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, previous in zip(loggers, levels):
            logger.setLevel(previous)
