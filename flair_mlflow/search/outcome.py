"""What became of a trial: its state (whence hyperopt's status and its run's are read), its scores, which is best."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

LAST_EPOCHS_SCORED = 3  # a training run's score is the mean of its last epochs (the tutorial's rule)
#: the scores a finished trial's run logs at its end (with ``test_score``), and a resume reads back
SCORE_METRICS = tuple("final_score final_variance last_epoch_score scored_epochs_variance peak_dev_score loss".split())


class TrialState(str, enum.Enum):
    """``COMPLETE``, ``PRUNED`` and ``FAILED`` have a result hyperopt learns from; the others run again on resume."""

    COMPLETE = "ok"
    PRUNED = "pruned"
    FAILED = "fail"
    KILLED = "killed"  # a signal interrupted it
    ABANDONED = "abandoned"  # found RUNNING on resume: the process that ran it was killed

    def __str__(self) -> str:
        return self.value

    @property
    def run_status(self) -> str:
        """The MLflow run status a trial's run ends with."""
        return {"ok": "FINISHED", "pruned": "FINISHED", "fail": "FAILED"}.get(self.value, "KILLED")


def mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else math.nan


def variance(values: Sequence[float]) -> float:
    """The population variance (numpy's ``var``, the tutorial's)."""
    return mean([(value - mean(values)) ** 2 for value in values])


@dataclass
class TrialOutcome:
    """The result of one trial, as the search and MLflow see it."""

    number: int
    params: dict[str, Any]
    status: TrialState = TrialState.COMPLETE
    run_id: str | None = None
    run_scores: list[float] = field(default_factory=list)
    final_score: float = math.nan
    final_variance: float = math.nan
    loss: float = math.nan
    test_score: float | None = None
    error: str | None = None
    duration_s: float = 0.0
    pruned_at: int | None = None  # the epoch at which the median stopping rule ended the trial
    epoch_values: list[list[float]] = field(default_factory=list)  # the optimised value per epoch, per run
    last_epoch_score: float = math.nan  # after the last epoch, mean over training runs
    scored_epochs_variance: float = math.nan  # over each run's scored epochs, mean over runs
    peak_dev_score: float = math.nan  # the highest dev score any epoch of any training run reached
    model_id: str | None = None  # its trained model, kept as a logged model (keep_models)
    epochs: int = 0  # in a multi-fidelity search, the epochs of the highest rung it reached (ranked first)
    rung: int = 0
    rung_scores: dict[int, float] = field(default_factory=dict)  # per rung it ran (its epochs): the score; NaN: failed

    @property
    def ok(self) -> bool:
        """A trial with a score (complete or pruned), as opposed to one that failed."""
        return self.status in (TrialState.COMPLETE, TrialState.PRUNED)

    @property
    def pruned(self) -> bool:
        return self.status is TrialState.PRUNED

    @property
    def epochs_scored(self) -> int:
        """How many epochs ``final_score`` averages in each training run: the last three, or all of fewer."""
        runs = [history for history in self.epoch_values if history]
        return len(runs[0][-LAST_EPOCHS_SCORED:]) if runs else LAST_EPOCHS_SCORED

    def add_training_run(self, history: Sequence[float], dev_scores: Sequence[float], scored: int = LAST_EPOCHS_SCORED) -> float:  # fmt: skip
        """Record a training run; its score, the mean of its last three epochs (``scored``), damps a lucky last one."""
        self.run_scores.append(mean(history[-scored:]))
        self.epoch_values.append(list(history))
        self.peak_dev_score = max([v for v in (self.peak_dev_score, *dev_scores) if math.isfinite(v)], default=math.nan)
        return self.run_scores[-1]

    def settle_scores(self, maximise: bool) -> None:
        """``final_score`` (what hyperopt's loss is made of), the last epoch's score, and both variances."""
        runs = [history for history in self.epoch_values if history]
        self.final_score, self.final_variance = mean(self.run_scores), variance(self.run_scores)
        self.last_epoch_score = mean([history[-1] for history in runs])
        self.scored_epochs_variance = mean([variance(history[-LAST_EPOCHS_SCORED:]) for history in runs])
        self.loss = as_loss(self.final_score, maximise)

    def score_metrics(self) -> dict[str, float]:
        """The scores a finished trial's run logs at its end (the training runs' own are logged apart)."""
        metrics = {name: getattr(self, name) for name in SCORE_METRICS}
        metrics["test_score"] = math.nan if self.test_score is None else self.test_score
        return {name: value for name, value in metrics.items() if math.isfinite(value)}

    def hyperopt_result(self) -> dict[str, Any]:
        """The dict an objective returns to hyperopt (its status strings are plain ``ok``/``fail``)."""
        result = {"status": "ok" if self.ok else "fail", "trial_number": self.number, "run_id": self.run_id}
        if not self.ok:
            return {**result, "failure": self.error}
        return {**result, "loss": self.loss, "loss_variance": self.final_variance, "final_score": self.final_score}


def as_loss(score: float, maximise: bool) -> float:
    """A score as the loss hyperopt minimises and trials are ranked by: 1 - score where higher is better."""
    return 1.0 - score if maximise else score


def ranked(outcomes: Sequence[TrialOutcome]) -> list[TrialOutcome]:
    """Complete trials, best first: most epochs (a multi-fidelity search's highest rung), lowest loss, the earliest on
    a tie; pruned and failed trials are not ranked."""
    finished = [o for o in outcomes if o.status is TrialState.COMPLETE and math.isfinite(o.loss)]
    return sorted(finished, key=lambda o: (-o.epochs, o.loss, o.number))


def best_outcome(outcomes: Sequence[TrialOutcome]) -> TrialOutcome | None:
    return next(iter(ranked(outcomes)), None)


def rung_summary(outcomes: Sequence[TrialOutcome], maximise: bool) -> dict[int, tuple[int, float]]:
    """A multi-fidelity search's rungs by their epochs: how many trials ran each, and the best score there."""
    rungs: dict[int, list[float]] = {}
    for outcome in outcomes:
        for epochs, score in outcome.rung_scores.items():
            rungs.setdefault(epochs, []).append(score)
    pick = max if maximise else min
    return {e: (len(s), pick([v for v in s if math.isfinite(v)], default=math.nan)) for e, s in sorted(rungs.items())}


def trials_since_best(outcomes: Sequence[TrialOutcome]) -> int:
    """Finished trials after the best one: what the no-improvement stop counts."""
    best = best_outcome(outcomes)
    return sum(1 for o in outcomes if best is None or o.number > best.number)
