"""Pure rules a search follows: the median stopping rule, and the learning-rate range around a suggestion.

The median rule (as in Google Vizier and Optuna's ``MedianPruner``): after a warm-up, a training
run whose dev score at an epoch is worse than the median of earlier trials' scores at the same
epoch stops there. Its trial still reports its score so far to hyperopt, so the sampler learns
where not to look, but it is marked pruned and can never be the best trial.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from statistics import median
from typing import Any


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
        return median_says_stop(self.history.get(epoch, []), value, self.maximise)


def median_says_stop(earlier: list[float], value: float, maximise: bool) -> bool:
    """Worse than the median of earlier trials at the same epoch (no earlier trials: never)."""
    if not earlier:
        return False
    middle = median(earlier)
    return value < middle if maximise else value > middle


#: the range a search takes around a finder's suggestion: [suggestion / f, suggestion * f]
LR_RANGE_FACTOR = 10.0
#: Flair stops training once annealing takes the rate below min_learning_rate (1e-4 by
#: default); with a range starting lower than that, trials would stop at once.
MIN_LR_HEADROOM = 1e-3
FLAIR_MIN_LEARNING_RATE = 1e-4


def learning_rate_range(suggested: float, factor: float = LR_RANGE_FACTOR) -> tuple[float, float]:
    """The log-uniform range a search fed by a finder run searches: a decade either side by default."""
    return suggested / factor, suggested * factor


def with_learning_rate_range(config: Any, suggested: float) -> Any:
    """``config`` searching ``learning_rate`` log-uniformly around ``suggested`` (a new config).

    Flair's ``min_learning_rate`` is lowered (never raised) so annealing from the bottom of the
    range does not end training at once.
    """
    low, high = learning_rate_range(suggested)
    search_space = {
        **config.search_space,
        "learning_rate": {"loguniform": {"low": math.log(low), "high": math.log(high)}},
    }
    fixed = {k: v for k, v in config.fixed.items() if k != "learning_rate"}
    current_min = float(fixed.get("min_learning_rate", FLAIR_MIN_LEARNING_RATE))
    fixed["min_learning_rate"] = min(current_min, low * MIN_LR_HEADROOM)
    return dataclasses.replace(config, search_space=search_space, fixed=fixed)
