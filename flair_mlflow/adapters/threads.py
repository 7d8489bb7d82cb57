"""Torch threads per trial: a number the experiment fixes, or the faster of one thread and the trial's
share of the cores, timed on its first training batches.

Torch's default (a thread per core) pays for large models on an idle machine. For the models a
search usually trains it buys little, and where other work shares the cores (a second search, a
test run, trials side by side) its threads wait on each other, spinning: a search that takes 1.5
minutes alone took 8. So a trial times a few batches at each count, alternating, and keeps more
threads only when they are clearly faster (:func:`~flair_mlflow.core.rules.faster_thread_count`).
"""

from __future__ import annotations

import os
import time
from typing import Any, Sequence

from flair.trainers.plugins.base import TrainerPlugin

from ..core.rules import faster_thread_count, thread_probe_done, threads_per_trial

#: batches timed at each thread count, after one left out at each (first calls allocate, fill caches
#: and start torch's thread pool)
PROBE_BATCHES = 3
#: a batch done this fast at one thread holds too little arithmetic for more threads to pay, and its
#: time is mostly scheduling jitter; after ``SMALL_BATCHES`` of them the trial keeps one thread
SMALL_BATCH_S = 0.02
SMALL_BATCHES = 5


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and ``taskset`` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


class ThreadProbe(TrainerPlugin):
    """Runs training batches at each candidate thread count in turn, timing them, until the rule decides.

    Batches run at the fewest threads until one takes ``SMALL_BATCH_S`` or longer: a model whose
    batches are all smaller keeps the fewest without ever running at more, so its arithmetic is
    that of a fixed count. ``chosen`` is None until the decision; the rest of training runs at it.
    """

    def __init__(self, candidates: Sequence[int], batches_each: int = PROBE_BATCHES) -> None:
        super().__init__()
        self.candidates = tuple(candidates)
        self.batches_each = batches_each
        self.seconds_per_token: dict[int, list[float]] = {count: [] for count in self.candidates}
        self.chosen: int | None = None
        self._warmed: set[int] = set()  # counts that ran a batch: the first at each is left out
        self._small = 0  # batches too small to time, at the fewest threads, before any was timed
        self._timing: tuple[int, float, int] | None = None  # threads, start, tokens of the running batch

    @TrainerPlugin.hook
    def before_training_batch(self, batch: Sequence[Any] = (), **kw: Any) -> None:
        self.start(batch)

    @TrainerPlugin.hook
    def after_training_batch(self, **kw: Any) -> None:
        self.stop()

    def start(self, batch: Sequence[Any]) -> None:
        if self.chosen is not None:
            return
        import torch

        timed = sum(len(times) for times in self.seconds_per_token.values())
        threads = self.candidates[timed % len(self.candidates)]  # the fewest until one batch was timed
        torch.set_num_threads(threads)
        if threads not in self._warmed:  # a first batch allocates, fills caches, starts a thread pool
            self._warmed.add(threads)
            return
        tokens = sum(len(point) for point in batch) or 1
        self._timing = (threads, time.perf_counter(), tokens)

    def stop(self) -> None:
        if self._timing is None:
            return
        threads, started, tokens = self._timing
        self._timing = None
        elapsed = time.perf_counter() - started
        if elapsed < SMALL_BATCH_S and not any(self.seconds_per_token.values()):
            self._small += 1
            if self._small >= SMALL_BATCHES:
                self.decide()
            return
        self.seconds_per_token[threads].append(elapsed / tokens)
        if thread_probe_done(self.seconds_per_token, self.batches_each):
            self.decide()

    def decide(self) -> int:
        """The count to keep from what has been timed (training may end before every count was)."""
        import torch

        self._timing = None
        self.chosen = faster_thread_count(self.seconds_per_token)
        torch.set_num_threads(self.chosen)
        return self.chosen

    @property
    def attach_to_all_processes(self) -> bool:
        return True


class TrialThreads:
    """One trial's torch threads: set as it starts, probed on its first batches where ``setting`` is
    ``auto``, and the process's own count restored when it ends (a search run from Python leaves
    torch as it found it).

    ``parallelism`` is how many trials run side by side on this machine's cores.
    """

    def __init__(self, setting: int | str, parallelism: int = 1) -> None:
        if setting == "auto":
            most = threads_per_trial(available_cores(), parallelism)
            self.candidates: tuple[int, ...] = (1, most) if most > 1 else (1,)
        else:
            self.candidates = (int(setting),)
        self.chosen: int | None = self.candidates[0] if len(self.candidates) == 1 else None
        self.probe: ThreadProbe | None = None
        self._previous: int | None = None

    def __enter__(self) -> "TrialThreads":
        import torch

        self._previous = torch.get_num_threads()
        torch.set_num_threads(self.chosen or self.candidates[0])
        return self

    def __exit__(self, *exc: Any) -> None:
        import torch

        if self.chosen is None and self.probe is not None:
            self.chosen = self.probe.decide()
        if self._previous is not None:
            torch.set_num_threads(self._previous)

    def plugins(self) -> list:
        """The probe, for the next training run while the count is undecided; nothing after."""
        if self.chosen is not None:
            return []
        if self.probe is None:
            self.probe = ThreadProbe(self.candidates)
        return [self.probe]

    def after_training_run(self) -> None:
        if self.probe is not None and self.probe.chosen is not None:
            self.chosen = self.probe.chosen
