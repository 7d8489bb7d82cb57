"""Torch threads per training: a number the experiment fixes, or the faster of one thread and the training's
share of the cores, timed on its first batches.

Torch's default (a thread per core) pays for large models on an idle machine; for the models a search
usually trains it buys little, and where other work shares the cores (a second search, trials side by
side) its threads wait on each other, spinning: a search that takes 1.5 minutes alone took 8. So a
training times a few batches at each count, alternating, and keeps more threads only when they are
clearly faster. Every training the package runs (trial, register, range test) chooses this way.
"""

from __future__ import annotations

import os
import time
from statistics import median
from typing import Any, Sequence

from flair.trainers.plugins.base import TrainerPlugin

#: more threads must make a batch this much faster to be kept: the second thread costs a whole core
MIN_SPEEDUP = 1.25
#: batches timed at each count, after one left out at each (a first batch allocates and starts a thread pool)
PROBE_BATCHES = 3
#: batches this fast at one thread hold too little arithmetic for more to pay: after SMALL_BATCHES of them, 1
SMALL_BATCH_S = 0.02
SMALL_BATCHES = 5


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and ``taskset`` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def faster_thread_count(seconds_per_token: dict[int, Sequence[float]], min_speedup: float = MIN_SPEEDUP) -> int:
    """The count to keep from batches timed at each (seconds per token): the fewest threads, unless more are
    ``min_speedup`` times faster by their medians."""
    medians = {threads: median(times) for threads, times in seconds_per_token.items() if times}
    chosen = min(medians, default=1)
    for threads in sorted(medians):
        if medians[threads] * min_speedup <= medians[chosen]:
            chosen = threads
    return chosen


def probe_done(seconds_per_token: dict[int, Sequence[float]], batches_each: int, clearly: float = 2.0) -> bool:
    """``batches_each`` timed at every count; or one at every count and more threads ``clearly`` slower than the
    fewest (a busy machine). One batch is too few to believe that more threads pay, so only that way is early."""
    counts = [len(times) for times in seconds_per_token.values()]
    if all(count >= batches_each for count in counts):
        return True
    if not all(counts):
        return False
    fewest = median(seconds_per_token[min(seconds_per_token)])
    return all(median(t) >= clearly * fewest for n, t in seconds_per_token.items() if n != min(seconds_per_token))


class ThreadProbe(TrainerPlugin):
    """Runs batches at each candidate count in turn, timing them, until the rule decides; ``chosen`` is None
    until then. Batches run at the fewest threads until one takes ``SMALL_BATCH_S`` or longer."""

    def __init__(self, candidates: Sequence[int], batches_each: int = PROBE_BATCHES) -> None:
        super().__init__()
        self.candidates = tuple(candidates)
        self.batches_each = batches_each
        self.seconds_per_token: dict[int, list[float]] = {count: [] for count in self.candidates}
        self.chosen: int | None = self.candidates[0] if len(self.candidates) == 1 else None
        self._warmed: set[int] = set()
        self._small = 0
        self._timing: tuple[int, float, int] | None = None

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

        threads = self.candidates[sum(map(len, self.seconds_per_token.values())) % len(self.candidates)]
        torch.set_num_threads(threads)
        if threads not in self._warmed:
            self._warmed.add(threads)
            return
        self._timing = (threads, time.perf_counter(), sum(len(point) for point in batch) or 1)

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
        if probe_done(self.seconds_per_token, self.batches_each):
            self.decide()

    def decide(self) -> int:
        """The count to keep from what has been timed (training may end before every count was)."""
        import torch

        self._timing = None
        if self.chosen is None:
            self.chosen = faster_thread_count(self.seconds_per_token)
        torch.set_num_threads(self.chosen)
        return self.chosen

    @property
    def attach_to_all_processes(self) -> bool:
        return True


class TrialThreads:
    """One training's torch threads (a trial's, over all its training runs): set as it starts, probed on its
    first batches where ``setting`` is ``auto``, and the process's own count restored when it ends.
    ``parallelism``: how many trainings run side by side on this machine's cores."""

    def __init__(self, setting: int | str = "auto", parallelism: int = 1) -> None:
        most = max(1, available_cores() // max(1, parallelism))
        self.candidates = ((1, most) if most > 1 else (1,)) if setting == "auto" else (int(setting),)
        self.probe = ThreadProbe(self.candidates)
        self._previous: int | None = None

    @property
    def chosen(self) -> int | None:
        return self.probe.chosen

    def __enter__(self) -> TrialThreads:
        import torch

        self._previous = torch.get_num_threads()
        torch.set_num_threads(self.candidates[0])
        return self

    def __exit__(self, *exc: Any) -> None:
        import torch

        if self.probe.chosen is None:
            self.probe.decide()
        torch.set_num_threads(self._previous or torch.get_num_threads())

    def plugins(self) -> list[TrainerPlugin]:
        """The probe, while the count is undecided; nothing after."""
        return [self.probe] if self.probe.chosen is None else []
