"""Pure rules of a search: median stopping, the range around a finder's suggestion, whether trials learnt anything."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import median
from typing import Sequence

from .outcome import TrialOutcome

LR_RANGE_FACTOR = 10.0  # a finder's suggestion gives the range [suggestion / f, suggestion * f]
#: Flair ends training once annealing takes the rate below min_learning_rate (1e-4 by default): it is lowered
#: to this fraction of the range's bottom, so a trial drawn there does not stop at once
MIN_LR_HEADROOM = 1e-3
FLAIR_MIN_LEARNING_RATE = 1e-4
CONSTANT_PREDICTOR_MARGIN = 0.01  # a best dev score this close to a constant predictor's is not told from it


@dataclass
class MedianStoppingRule:
    """Vizier's median stopping rule (Optuna's MedianPruner); a pruned trial still reports to hyperopt, never best."""

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
        earlier = self.history.get(epoch)
        if epoch <= self.warmup_epochs or self.trials_recorded < self.startup_trials or not earlier:
            return False
        return value < median(earlier) if self.maximise else value > median(earlier)


@dataclass(frozen=True)
class LearningCheck:
    """The dev score of a constant predictor (``baseline_name``) the trials must beat, and what a warning names."""

    baseline: float
    baseline_name: str
    max_epochs: int
    label_type: str
    train_sentences: int

    def warning(self, outcomes: Sequence[TrialOutcome]) -> str | None:
        """None when some trial's best epoch beat the constant predictor (or one has no dev scores); else why not."""
        scored = [o for o in outcomes if o.ok]
        if not scored or any(not math.isfinite(o.peak_dev_score) for o in scored):
            return None
        best = max(o.peak_dev_score for o in scored)
        if best <= 0.0:
            verdict = f"every trial scored 0 on dev at every epoch ({len(scored)} of them)"
        elif best <= self.baseline + CONSTANT_PREDICTOR_MARGIN:
            verdict = f"the best dev score of any trial ({best:.4f}) is no better than {self.baseline_name} ({self.baseline:.4f})"
        else:
            return None
        return (
            f"{verdict}: the models learnt nothing usable. Likely causes: too few epochs for this data (max_epochs "
            f"{self.max_epochs}); a learning rate too low to move or too high to settle; a label_type "
            f"('{self.label_type}') that is not the one the data is labelled with; a corpus too small to learn from "
            f"({self.train_sentences} training sentences)."
        )
