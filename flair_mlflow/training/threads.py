"""Torch threads per training: a fixed number, or the faster of one and its share of the cores, timed on its first
batches. Torch's thread per core buys little here, and spins beside other work (a 1.5-minute search took 8)."""

from __future__ import annotations

import os
import time
from statistics import median
from typing import Any, Sequence

import torch
from flair.trainers.plugins.base import TrainerPlugin

MIN_SPEEDUP = 1.25  # more threads must make a batch this much faster to be kept: the second costs a whole core
PROBE_BATCHES = 3  # timed at each count, after one left out at each (a first batch starts a thread pool)
SMALL_BATCH_S, SMALL_BATCHES = 0.02, 5  # this many batches this fast at one thread: too little work for more


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity, which containers and ``taskset`` narrow."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def faster_thread_count(seconds_per_token: dict[int, Sequence[float]], min_speedup: float = MIN_SPEEDUP) -> int:
    """The fewest threads, unless more are ``min_speedup`` times faster by their medians (seconds per token)."""
    medians = {threads: median(times) for threads, times in seconds_per_token.items() if times}
    chosen = min(medians, default=1)
    for threads in sorted(medians):
        chosen = threads if medians[threads] * min_speedup <= medians[chosen] else chosen
    return chosen


def probe_done(seconds_per_token: dict[int, Sequence[float]], batches_each: int, clearly: float = 2.0) -> bool:
    """``batches_each`` timed at every count, or one each and more threads ``clearly`` slower (a busy machine)."""
    counts, fewest = [len(times) for times in seconds_per_token.values()], min(seconds_per_token)
    if all(count >= batches_each for count in counts) or not all(counts):
        return all(counts)  # every count timed enough, or one not timed yet
    others = [times for threads, times in seconds_per_token.items() if threads != fewest]
    return all(median(times) >= clearly * median(seconds_per_token[fewest]) for times in others)


class ThreadProbe(TrainerPlugin):
    """Times batches at each count in turn until the rule decides (``chosen``); tiny batches keep the fewest."""

    def __init__(self, candidates: Sequence[int], batches_each: int = PROBE_BATCHES) -> None:
        super().__init__()
        self.candidates, self.batches_each = tuple(candidates), batches_each
        self.seconds_per_token: dict[int, list[float]] = {count: [] for count in self.candidates}
        self.chosen: int | None = self.candidates[0] if len(self.candidates) == 1 else None
        self._warmed: set[int] = set()
        self._small = 0
        self._timing: tuple[int, float, int] | None = None

    @TrainerPlugin.hook("before_training_batch")
    def start(self, batch: Sequence[Any] = (), **kw: Any) -> None:
        if self.chosen is not None:
            return
        threads = self.candidates[sum(map(len, self.seconds_per_token.values())) % len(self.candidates)]
        torch.set_num_threads(threads)
        if threads in self._warmed:
            self._timing = (threads, time.perf_counter(), sum(len(point) for point in batch) or 1)
        self._warmed.add(threads)

    @TrainerPlugin.hook("after_training_batch")
    def stop(self, **kw: Any) -> None:
        if self._timing is None:
            return
        (threads, started, tokens), self._timing = self._timing, None
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
        self._timing, self.chosen = None, self.chosen or faster_thread_count(self.seconds_per_token)
        torch.set_num_threads(self.chosen)
        return self.chosen


class TrialThreads:
    """A trial's torch threads, probed where ``auto``; ``parallelism``: how many trainings share the cores."""

    def __init__(self, setting: int | str = "auto", parallelism: int = 1, device: str = "cpu") -> None:
        most = max(1, available_cores() // max(1, parallelism))
        if setting == "auto" and device.startswith("cuda"):  # a GPU trial's host threads are left as they are
            self.candidates: tuple[int, ...] = (torch.get_num_threads(),)
        else:
            self.candidates = ((1, most) if most > 1 else (1,)) if setting == "auto" else (int(setting),)
        self.probe = ThreadProbe(self.candidates)
        self._previous = 1

    @property
    def chosen(self) -> int | None:
        return self.probe.chosen

    def __enter__(self) -> TrialThreads:
        self._previous = torch.get_num_threads()
        torch.set_num_threads(self.candidates[0])
        return self

    def __exit__(self, *exc: Any) -> None:
        self.probe.decide()
        torch.set_num_threads(self._previous)

    def plugins(self) -> list[TrainerPlugin]:
        return [self.probe] if self.probe.chosen is None else []

    def release(self) -> None:
        """Take the probe off a finished trainer (Flair leaves plugins attached) so that a training too short to
        decide hands its timings on to the trial's next one, which attaches it again."""
        if self.probe.pluggable is not None:
            self.probe.detach()
