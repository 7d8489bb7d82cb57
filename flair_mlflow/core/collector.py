"""Start-up without Python's cyclic garbage collector, and what it built kept out of its sight.

Importing torch, Flair, hyperopt and MLflow and reading a corpus makes about 600k objects that live
as long as the process. While they are made, the collector's thresholds trip again and again and
each full collection walks all of them: 1.5 s of an 8-s start-up on two cores. None of it is
garbage, so start-up runs with the collector off; afterwards ``gc.freeze`` moves it all to the
permanent generation, where later collections (during training) no longer walk it. Turning the
collector back on without freezing made the first trial 1 s slower, as it walked everything once
per generation. :func:`thaw` hands the objects back when the search is over, so a long-lived
process (a notebook) can still collect a corpus it has dropped.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Iterator


@contextlib.contextmanager
def start_up() -> Iterator[None]:
    """Run the block with the collector off, then freeze what exists; a no-op when it is off already
    (an enclosing start-up, or a user who turned it off)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.freeze()


def thaw() -> None:
    """Let the collector see again what start-ups froze (and anything else frozen: Python keeps one
    permanent generation, so objects a user froze themselves are handed back too)."""
    gc.unfreeze()
