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
    """One bracket's rungs: each rung's losses by trial number, and the trials already promoted from it."""

    rungs: tuple[int, ...]
    losses: list[dict[int, float]] = field(default_factory=list)
    promoted: list[set[int]] = field(default_factory=list)
    capacity: list[int] = field(default_factory=list)  # the most trials that can ever reach each rung

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
    """Which trial trains next: the best unpromoted trial in the top ``1/reduction_factor`` of a rung, the highest rung
    first; else a new trial, in brackets taken in turn. One bracket is ASHA; several are HyperBand's."""

    def __init__(self, min_epochs: int, reduction_factor: int, max_epochs: int, brackets: int, max_trials: int) -> None:
        self.reduction_factor = reduction_factor
        all_rungs = rung_epochs(min_epochs, reduction_factor, max_epochs)
        self.brackets = [Bracket(all_rungs[s:]) for s in range(min(brackets, len(all_rungs)))]
        self.bracket_of: dict[int, int] = {}
        for index, bracket in enumerate(self.brackets):  # new trials go round the brackets
            arriving = len(range(index, max_trials, len(self.brackets)))
            for _ in bracket.rungs:
                bracket.capacity.append(arriving)
                arriving //= reduction_factor

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

    def _promotable(self, bracket: Bracket, rung: int) -> int | None:
        losses = bracket.losses[rung]
        top = sorted((loss, n) for n, loss in losses.items() if math.isfinite(loss))
        top = top[: len(losses) // self.reduction_factor]
        return next((n for _, n in top if n not in bracket.promoted[rung]), None)

    def can_be_promoted(self, number: int) -> bool:
        """Whether trial ``number`` may still train on: a later promotion needs its checkpoint, else it can go."""
        bracket = self.brackets[self.bracket_of[number]]
        rung = max(r for r, losses in enumerate(bracket.losses) if number in losses)
        if rung == len(bracket.rungs) - 1 or number in bracket.promoted[rung]:
            return False
        loss = bracket.losses[rung][number]
        ahead = sum(1 for other in bracket.losses[rung].values() if other < loss)
        return math.isfinite(loss) and ahead < bracket.capacity[rung] // self.reduction_factor

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
