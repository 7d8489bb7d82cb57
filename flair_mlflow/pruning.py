"""Stopping work that will not pay: the median stopping rule for training runs, and the search's own stops.

The median rule (as in Google Vizier and Optuna's ``MedianPruner``): after a warm-up, a training
run whose dev score at an epoch is worse than the median of earlier trials' scores at the same
epoch stops there. Its trial still reports its score so far to hyperopt, so the sampler learns
where not to look, but it is marked pruned and can never be the best trial.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import median
from typing import Any

from flair.trainers.plugins.base import TrainerPlugin, TrainingInterrupt


@dataclass
class MedianStoppingRule:
    """Epoch-by-epoch record of finished trials, and the verdict on a running one.

    ``maximise`` is True for the dev score, False for the dev loss.
    """

    warmup_epochs: int = 2
    startup_trials: int = 3
    maximise: bool = True
    history: dict[int, list[float]] = field(default_factory=dict)
    trials_recorded: int = 0

    def record(self, epoch_values: list[list[float]]) -> None:
        """Add one finished trial: the per-epoch values of each of its training runs."""
        for values in epoch_values:
            for epoch, value in enumerate(values, start=1):
                self.history.setdefault(epoch, []).append(value)
        self.trials_recorded += 1

    def should_stop(self, epoch: int, value: float) -> bool:
        if epoch <= self.warmup_epochs or self.trials_recorded < self.startup_trials:
            return False
        earlier = self.history.get(epoch)
        if not earlier:
            return False
        middle = median(earlier)
        return value < middle if self.maximise else value > middle

    def to_dict(self) -> dict[str, Any]:
        return {"warmup_epochs": self.warmup_epochs, "startup_trials": self.startup_trials}


class MedianStoppingPlugin(TrainerPlugin):
    """Stops a Flair training run when the rule says so; ``pruned_at`` tells the caller where."""

    def __init__(self, rule: MedianStoppingRule, max_epochs: int) -> None:
        super().__init__()
        self.rule = rule
        self.max_epochs = max_epochs
        self.pruned_at: int | None = None

    @TrainerPlugin.hook
    def after_evaluation(self, epoch: int, validation_scores: tuple = (), **kw: Any) -> None:
        if len(validation_scores) < 2:
            return
        score, loss = validation_scores[0], validation_scores[1]
        value = float(score if self.rule.maximise else loss)
        # stopping after the last epoch saves nothing and would only bar the trial from being best
        if epoch < self.max_epochs and self.rule.should_stop(epoch, value):
            self.pruned_at = epoch
            raise TrainingInterrupt(f"pruned by the median stopping rule at epoch {epoch}")
