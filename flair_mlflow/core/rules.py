"""Pure rules a search follows: the median stopping rule, the learning-rate range around a suggestion,
and whether the trials learnt anything at all.

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
from typing import Any, Sequence

from .outcome import TrialOutcome


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


#: a best dev score no more than this above a constant predictor's cannot be told from it
CONSTANT_PREDICTOR_MARGIN = 0.01


def constant_predictor_score(most_frequent: int, labels: int, units: int) -> float:
    """Micro F1 on dev of predicting the most frequent label for each of ``units`` (tokens or sentences).

    ``most_frequent`` of the ``labels`` gold labels carry that label: precision is
    ``most_frequent / units`` and recall ``most_frequent / labels``, so F1 is
    ``2 * most_frequent / (units + labels)`` (the majority class's share with one label per unit).
    Span labels are judged against predicting no spans, which scores 0.
    """
    if most_frequent <= 0 or units + labels <= 0:
        return 0.0
    return 2.0 * most_frequent / (units + labels)


@dataclass(frozen=True)
class LearningCheck:
    """What a finished search's dev scores are held against, and the settings a warning names.

    ``baseline`` is what a constant predictor (``baseline_name``) scores on the search's dev split.
    """

    baseline: float
    baseline_name: str
    max_epochs: int
    label_type: str
    train_sentences: int

    def warning(self, outcomes: Sequence[TrialOutcome]) -> str | None:
        """None when some trial beat the constant predictor; otherwise what went wrong and why it may have.

        A trial is judged by the best dev score any of its epochs reached, so a model that learnt
        something and then lost it still counts as learning. A trial whose dev scores are unknown
        (restored from an older run) leaves the verdict open.
        """
        scored = [o for o in outcomes if o.ok]
        if not scored or any(not math.isfinite(o.peak_dev_score) for o in scored):
            return None
        best = max(o.peak_dev_score for o in scored)
        if best <= 0.0:
            verdict = f"every trial scored 0 on dev at every epoch ({len(scored)} of them)"
        elif best <= self.baseline + CONSTANT_PREDICTOR_MARGIN:
            verdict = (
                f"the best dev score of any trial ({best:.4f}) is no better than {self.baseline_name} "
                f"({self.baseline:.4f})"
            )
        else:
            return None
        return (
            f"{verdict}: the models learnt nothing usable. Likely causes: too few epochs for this data "
            f"(max_epochs {self.max_epochs}); a learning rate too low to move or too high to settle; a "
            f"label_type ('{self.label_type}') that is not the one the data is labelled with; a corpus too "
            f"small to learn from ({self.train_sentences} training sentences)."
        )


#: more threads must make a training batch at least this much faster to be kept: the second
#: thread costs a whole core that another trial, search or test could use
THREADS_MIN_SPEEDUP = 1.25


def threads_per_trial(cpu_count: int | None, parallelism: int) -> int:
    """The most torch threads one trial may use: its share of the cores when trials run side by side."""
    return max(1, (cpu_count or 1) // max(1, parallelism))


def thread_probe_done(seconds_per_token: dict[int, Sequence[float]], batches_each: int, clearly: float = 2.0) -> bool:
    """Whether batches enough are timed: ``batches_each`` at every count, or one at every count and more
    threads ``clearly`` times slower than the fewest (a busy machine: each batch more at them is lost).

    Only that direction ends the test early: one batch is too few to believe that more threads pay.
    """
    counts = [len(times) for times in seconds_per_token.values()]
    if all(count >= batches_each for count in counts):
        return True
    if not all(counts):
        return False
    fewest = median(seconds_per_token[min(seconds_per_token)])
    return all(
        median(times) >= clearly * fewest
        for count, times in seconds_per_token.items()
        if count != min(seconds_per_token)
    )


def faster_thread_count(seconds_per_token: dict[int, Sequence[float]], min_speedup: float = THREADS_MIN_SPEEDUP) -> int:
    """The thread count to keep from batches timed at each count (seconds per token, one value a batch).

    The fewest threads win unless more are ``min_speedup`` times faster by their medians: on a busy
    machine extra threads wait on each other (spinning, not sleeping), and on a quiet one they seldom
    pay for a small model, so one thread is the default a measurement has to beat.
    """
    medians = {threads: median(times) for threads, times in seconds_per_token.items() if times}
    if not medians:
        return 1
    chosen = min(medians)
    for threads in sorted(medians):
        if medians[threads] * min_speedup <= medians[chosen]:
            chosen = threads
    return chosen
