"""What became of a trial, in one vocabulary: its state, its scores, and which trial is best.

:class:`TrialState` is the only place where a state is spelt: hyperopt's result status, the MLflow
run status a trial's run ends with and the ``flair_mlflow.status`` tag are all read off it.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

#: a training run's score is the mean of its last epochs' scores (the tutorial's rule)
LAST_EPOCHS_SCORED = 3


class TrialState(str, enum.Enum):
    """A trial's state. ``COMPLETE``, ``PRUNED`` and ``FAILED`` have a result hyperopt learns from;
    the others are runs cut off before they had one, and run again on ``--resume``."""

    COMPLETE = "ok"
    PRUNED = "pruned"
    FAILED = "fail"
    KILLED = "killed"  # a signal interrupted it
    CANCELLED = "cancelled"  # SparkTrials cancelled it as the search stopped early
    ABANDONED = "abandoned"  # found RUNNING on resume: the process that ran it was killed

    def __str__(self) -> str:
        return self.value

    @property
    def has_result(self) -> bool:
        return self in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED)

    @property
    def run_status(self) -> str:
        """The MLflow run status a trial's run ends with."""
        if self in (TrialState.COMPLETE, TrialState.PRUNED):
            return "FINISHED"
        return "FAILED" if self is TrialState.FAILED else "KILLED"

    @property
    def hyperopt_status(self) -> str:
        """hyperopt's ``STATUS_OK`` / ``STATUS_FAIL`` (plain strings in hyperopt too)."""
        return "fail" if self is TrialState.FAILED else "ok"


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
    pruned_at: int | None = None  # epoch at which the median stopping rule ended the trial
    epoch_values: list[list[float]] = field(default_factory=list)  # the optimised value per epoch, per run

    @property
    def ok(self) -> bool:
        """A trial with a score (complete or pruned), as opposed to one that failed."""
        return self.status in (TrialState.COMPLETE, TrialState.PRUNED)

    @property
    def pruned(self) -> bool:
        return self.status is TrialState.PRUNED

    def hyperopt_result(self) -> dict[str, Any]:
        """The dict an objective returns to hyperopt."""
        result = {"status": self.status.hyperopt_status, "trial_number": self.number, "run_id": self.run_id}
        if not self.ok:
            return {**result, "failure": self.error}
        return {
            **result,
            "loss": self.loss,
            "loss_variance": self.final_variance,
            "final_score": self.final_score,
            "pruned": self.pruned,
        }


def score_of_training_run(history: list[float]) -> float:
    """A training run's score: the mean of its last three epochs, which damps a lucky last epoch."""
    if not history:
        return math.nan
    last = history[-LAST_EPOCHS_SCORED:]
    return float(sum(last) / len(last))


def best_outcome(outcomes: Sequence[TrialOutcome]) -> TrialOutcome | None:
    """The trial with the lowest loss (the earliest on a tie); pruned and failed trials never are."""
    finished = [o for o in outcomes if o.status is TrialState.COMPLETE and math.isfinite(o.loss)]
    return min(finished, key=lambda o: (o.loss, o.number)) if finished else None


def trials_since_best(outcomes: Sequence[TrialOutcome]) -> int:
    """Finished trials after the best one: what the no-improvement stop counts."""
    best = best_outcome(outcomes)
    return sum(1 for o in outcomes if best is None or o.number > best.number)
