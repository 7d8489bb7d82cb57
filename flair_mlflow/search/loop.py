"""The one trial loop: hyperopt's ``fmin`` over an executor, its stops, signals and the parent's end.

An executor runs the trials: :class:`SequentialExecutor` one after another in this process,
``spark.SparkExecutor`` side by side on Spark; both through :meth:`TrialRunner.run_suggested`. Whatever ends
the loop (its limits, every trial failing, a signal, an error), the parent run is finished with the reason,
in one ``finally``.
"""

from __future__ import annotations

import enum
import signal
import time
from typing import Any, Callable, Mapping, Protocol, Sequence

from ..config import ExperimentConfig, OptimizationValue
from ..training.models import plain_value
from .hyperopt_internals import continued_rng, keyed_space, keyed_suggest
from .interrupts import Interrupted, SearchInterrupted, catch_signals
from .outcome import TrialOutcome, TrialState, best_outcome, trials_since_best


class StopReason(str, enum.Enum):
    """Why a search ended: the parent's ``stop_reason`` tag."""

    MAX_EVALS = "max_evals"
    NO_IMPROVEMENT = "no_improvement"
    TIME_BUDGET = "time_budget"
    INTERRUPTED = "interrupted"
    ALL_TRIALS_FAILED = "all_trials_failed"
    ERROR = "error"

    @property
    def run_status(self) -> str:
        """The MLflow status the parent run ends with."""
        if self is StopReason.INTERRUPTED:
            return "KILLED"
        return "FAILED" if self in (StopReason.ALL_TRIALS_FAILED, StopReason.ERROR) else "FINISHED"


class Executor(Protocol):
    trials: Any  # hyperopt's Trials (or SparkTrials) the loop hands to fmin
    interrupt: Callable[[int], BaseException]  # what SIGINT and SIGTERM raise while trials run
    show_progressbar: bool  # hyperopt's own progress bar

    def objective(self, sampled: Mapping[str, Any]) -> dict[str, Any]: ...

    def outcomes_so_far(self, trials: Any) -> list[TrialOutcome]: ...

    def final_outcomes(self, settle: bool) -> list[TrialOutcome]: ...


class Stops:
    """fmin's stopping arguments (trial count, time budget, no-improvement rule), and afterwards why it stopped."""

    def __init__(self, config: ExperimentConfig, executor: Executor) -> None:
        self.max_evals = config.max_evals
        self.budget_s = config.time_budget_minutes * 60 if config.time_budget_minutes else None
        self.patience = config.early_stop_trials
        self.executor = executor
        self.no_improvement = False

    def fmin_arguments(self) -> dict[str, Any]:
        return {
            "max_evals": self.max_evals,
            "timeout": self.budget_s,
            "early_stop_fn": self._early_stop if self.patience else None,
        }

    def _early_stop(self, trials: Any, *state: Any) -> tuple[bool, list]:
        if trials_since_best(self.executor.outcomes_so_far(trials)) >= (self.patience or 0):
            self.no_improvement = True
        return self.no_improvement, []

    def reason(self, outcomes: Sequence[TrialOutcome], elapsed_s: float) -> StopReason:
        """Why fmin returned; it returns quietly at its timeout, so the budget is checked here."""
        if outcomes and not any(o.ok for o in outcomes):
            return StopReason.ALL_TRIALS_FAILED
        if self.no_improvement:
            return StopReason.NO_IMPROVEMENT
        if self.budget_s and len(outcomes) < self.max_evals and elapsed_s >= self.budget_s:
            return StopReason.TIME_BUDGET
        return StopReason.MAX_EVALS


def run_trials(
    executor: Executor,
    parent: Any,
    space: Mapping[str, Any],
    suggest: Callable,
    config: ExperimentConfig,
    done: int = 0,
) -> list[TrialOutcome]:
    """Trials until a stop (``done`` of them restored before); every outcome, the parent run finished. A signal
    ends the trials and the parent KILLED and raises :class:`SearchInterrupted`."""
    import hyperopt

    stops, reason, started = Stops(config, executor), None, time.time()
    restore_signals = catch_signals(executor.interrupt)
    try:
        hyperopt.fmin(
            fn=executor.objective,
            space=keyed_space(space),
            algo=keyed_suggest(suggest, space),
            trials=executor.trials,
            rstate=continued_rng(config.seed, done),
            show_progressbar=executor.show_progressbar,
            **stops.fmin_arguments(),
        )
    except hyperopt.exceptions.AllTrialsFailed:
        pass  # the outcomes say so below
    except (KeyboardInterrupt, Interrupted) as error:
        reason = StopReason.INTERRUPTED
        restore_signals()  # a second signal during the clean-up acts at once
        parent.kill_running_trials()
        raise SearchInterrupted(getattr(error, "signum", signal.SIGINT), parent.run_id) from None
    except BaseException:
        reason = StopReason.ERROR
        raise
    finally:
        restore_signals()
        outcomes = executor.final_outcomes(settle=reason is None)
        parent.finish(outcomes, reason or stops.reason(outcomes, time.time() - started))
    return outcomes


def score_name(objective: OptimizationValue, main_evaluation_metric: Sequence[str]) -> str:
    """What a trial's score is, in words: ``dev micro-F1``, ``dev macro-F1``, ``dev accuracy``, ``dev loss``."""
    if objective is OptimizationValue.DEV_LOSS:
        return "dev loss"
    kind, metric = main_evaluation_metric[0].split()[0], main_evaluation_metric[1]
    if metric == "f1-score":
        return f"dev {kind}-F1"
    return f"dev {metric}" if kind == "micro" else f"dev {kind} {metric}"


def trial_line(outcome: TrialOutcome, best: TrialOutcome | None, score: str, shown: Sequence[str], total: int) -> str:
    """One finished trial, for the console: its score, the best so far, its time and sampled values."""
    head = f"trial {outcome.number}/{total}"
    if not outcome.ok:
        return f"{head}: failed ({' '.join(str(outcome.error).split())[:160]})"
    values = ", ".join(f"{name}={_short(outcome.params.get(name))}" for name in shown)
    pruned = f", pruned at epoch {outcome.pruned_at}" if outcome.pruned else ""
    so_far = f" (best {best.final_score:.4f}, trial {best.number})" if best is not None else ""
    return f"{head}: {score} {outcome.final_score:.4f}{so_far}{pruned}, {outcome.duration_s:.0f}s  {values}"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(plain_value(value))


class SequentialExecutor:
    """Trials one after another in this process; the parent hears of each as it ends, ``progress`` (if any)
    gets a line for each."""

    interrupt = Interrupted  # not a KeyboardInterrupt: Flair's trainer would swallow that one
    show_progressbar = False

    def __init__(
        self,
        runner: Any,
        parent: Any,
        trials: Any,
        restored: Sequence[TrialOutcome],
        progress: Callable[[str], None] | None,
    ) -> None:
        self.runner, self.parent, self.trials, self.progress = runner, parent, trials, progress
        self.outcomes = list(restored)

    def objective(self, sampled: Mapping[str, Any]) -> dict[str, Any]:
        outcome = self.runner.run_suggested(sampled)
        self.outcomes.append(outcome)
        if self.runner.stopping_rule is not None and outcome.status is TrialState.COMPLETE:
            self.runner.stopping_rule.record(outcome.epoch_values)
        self.parent.after_trial(self.outcomes)
        if self.progress is not None:
            config = self.runner.config
            shown = [name for name in outcome.params if name not in config.fixed]
            score = score_name(config.objective, config.main_evaluation_metric)
            self.progress(trial_line(outcome, best_outcome(self.outcomes), score, shown, config.max_evals))
        return outcome.hyperopt_result()

    def outcomes_so_far(self, trials: Any) -> list[TrialOutcome]:
        return self.outcomes

    def final_outcomes(self, settle: bool) -> list[TrialOutcome]:
        return list(self.outcomes)
