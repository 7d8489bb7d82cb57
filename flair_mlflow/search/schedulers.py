"""Asynchronous successive halving over epochs (ASHA, Li et al. 2018; HyperBand's brackets as Ray Tune's
AsyncHyperBandScheduler runs them): rung bookkeeping only, no training and no hyperopt."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def rung_epochs(min_epochs: int, reduction_factor: int, max_epochs: int) -> tuple[int, ...]:
    """The epochs at each rung's end: ``min_epochs * reduction_factor**k`` below ``max_epochs``, then ``max_epochs``."""
    rungs, epochs = [], min_epochs
    while epochs < max_epochs:
        rungs.append(epochs)
        epochs *= reduction_factor
    return (*rungs, max_epochs)


@dataclass
class Bracket:
    """One bracket's rungs: each rung's losses by trial number, the trials already promoted from it, and how many new
    trials can ever start in it."""

    rungs: tuple[int, ...]
    arrivals: int
    losses: list[dict[int, float]] = field(default_factory=list)
    promoted: list[set[int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.losses = [{} for _ in self.rungs]
        self.promoted = [set() for _ in self.rungs]


@dataclass(frozen=True)
class Job:
    """Train trial ``number`` from epoch ``start`` (0: a new trial) to the end of rung ``rung`` (its epochs)."""

    number: int
    start: int
    stop: int
    rung: int


class SuccessiveHalving:
    """Which trial trains next: the best unpromoted trial in the top ``1/reduction_factor`` of a rung (at least its best),
    the highest rung first; else a new trial, in brackets taken in turn. One bracket is ASHA; several are HyperBand's."""

    def __init__(self, min_epochs: int, reduction_factor: int, max_epochs: int, brackets: int, max_trials: int) -> None:
        self.reduction_factor = reduction_factor
        all_rungs = rung_epochs(min_epochs, reduction_factor, max_epochs)
        count = min(brackets, len(all_rungs))  # new trials go round the brackets
        self.brackets = [Bracket(all_rungs[s:], len(range(s, max_trials, count))) for s in range(count)]
        self.bracket_of: dict[int, int] = {}

    def new_trial(self, number: int) -> Job:
        bracket = self.bracket_of.setdefault(number, (number - 1) % len(self.brackets))
        return Job(number, 0, self.brackets[bracket].rungs[0], 0)

    def rungs_of(self, number: int) -> tuple[int, ...]:
        """The epochs at each rung of trial ``number``'s bracket."""
        return self.brackets[self.bracket_of[number]].rungs

    def start(self, job: Job) -> None:
        """``job`` is under way: a promotion's trial is promoted now, so no other worker is handed it while it runs."""
        if job.rung > 0:
            self.brackets[self.bracket_of[job.number]].promoted[job.rung - 1].add(job.number)

    def report(self, number: int, rung: int, loss: float) -> None:
        """Trial ``number`` ended rung ``rung`` with ``loss`` (NaN or inf: failed, never promoted)."""
        bracket = self.brackets[self.bracket_of[number]]
        bracket.losses[rung][number] = loss if math.isfinite(loss) else math.inf
        if rung > 0:
            bracket.promoted[rung - 1].add(number)

    def promotion(self) -> Job | None:
        """The next promotion (the highest rung's first), or None: every promotable trial is promoted."""
        best: tuple[int, Job] | None = None
        for bracket in self.brackets:
            for rung in range(len(bracket.rungs) - 2, -1, -1):
                number = self._promotable(bracket, rung)
                if number is not None:
                    job = Job(number, bracket.rungs[rung], bracket.rungs[rung + 1], rung + 1)
                    if best is None or job.stop > best[0]:
                        best = (job.stop, job)
                    break
        return best[1] if best else None

    def slots(self, reported: int) -> int:
        """How many of a rung's best go on once ``reported`` trials ended it: the top ``1/reduction_factor``, and at
        least the best one, so the first trial runs straight to the top rung (Optuna's SuccessiveHalvingPruner and
        Ray Tune's ASHA let the first trials through alike) instead of waiting for ``reduction_factor`` others."""
        return max(1, reported // self.reduction_factor) if reported else 0

    @staticmethod
    def _ranked(losses: dict[int, float]) -> list[tuple[float, int]]:
        """A rung's trials best first, ties by trial number, failed ones left out: the order promotions take."""
        return sorted((loss, n) for n, loss in losses.items() if math.isfinite(loss))

    def _promotable(self, bracket: Bracket, rung: int) -> int | None:
        top = self._ranked(bracket.losses[rung])[: self.slots(len(bracket.losses[rung]))]
        return next((n for _, n in top if n not in bracket.promoted[rung]), None)

    def awaiting_promotion(self) -> set[int]:
        """The trials a later promotion may still need the checkpoint of; every other trial's can go."""
        waiting: set[int] = set()
        for bracket in self.brackets:
            most = bracket.arrivals  # the most trials that can ever end this rung, from what has happened so far
            for rung in range(len(bracket.rungs) - 1):
                losses, promoted = bracket.losses[rung], bracket.promoted[rung]
                # trials ending the rung only push others down _ranked: none outside today's top can ever go on
                rising = {n for _, n in self._ranked(losses)[: self.slots(most)] if n not in promoted}
                waiting |= rising
                most = len(promoted) + len(rising) + max(0, most - len(losses))
        return waiting

    def losses_at(self, epochs: int) -> dict[int, float]:
        """Every trial's loss at the rung ending after ``epochs``, over all brackets."""
        found: dict[int, float] = {}
        for bracket in self.brackets:
            if epochs in bracket.rungs:
                found.update(bracket.losses[bracket.rungs.index(epochs)])
        return {n: loss for n, loss in found.items() if math.isfinite(loss)}

    def model_budget(self, enough: int) -> int:
        """The epochs whose results the algorithm learns from: the highest rung with ``enough`` of them (BOHB's rule),
        else the lowest, so scores of different budgets are never mixed."""
        budgets = sorted({epochs for bracket in self.brackets for epochs in bracket.rungs})
        return next((e for e in reversed(budgets) if len(self.losses_at(e)) >= enough), budgets[0])
