"""The one trial loop: ``fmin`` over a sequential search, else the driver's own (rungs.py); whatever ends it, a
``finally`` ends the parent."""

from __future__ import annotations

import enum
import signal
import time
from typing import Any, Callable, Mapping, Sequence

import hyperopt

from ..config import ExperimentConfig, OptimizationValue
from ..training.models import plain_value
from .hyperopt_internals import continued_rng, keyed_space, keyed_suggest
from .interrupts import Interrupted, SearchInterrupted, catch_signals
from .outcome import TrialOutcome, TrialState, best_outcome, trials_since_best


class StopReason(str, enum.Enum):
    """Why a search ended (the parent's ``stop_reason`` tag), and the status its parent run ends with."""

    MAX_EVALS = "max_evals"
    NO_IMPROVEMENT = "no_improvement"
    TIME_BUDGET = "time_budget"
    INTERRUPTED = "interrupted"
    ALL_TRIALS_FAILED = "all_trials_failed"
    ERROR = "error"

    @property
    def run_status(self) -> str:
        return {"interrupted": "KILLED", "all_trials_failed": "FAILED", "error": "FAILED"}.get(self.value, "FINISHED")


def run_trials(executor: Any, parent: Any, space: Mapping[str, Any], suggest: Callable, config: ExperimentConfig, done: int = 0) -> list[TrialOutcome]:  # fmt: skip
    """Trials until a stop, then the parent finished; a signal kills the running ones and raises SearchInterrupted."""
    budget, patience, started = (config.time_budget_minutes or 0) * 60, config.early_stop_trials, time.time()
    stalled: list[bool] = []
    reason: StopReason | None = None

    def no_new_best(outcomes: list[TrialOutcome]) -> bool:  # after each trial: none better in the last ``patience``?
        stalled.append(bool(patience) and trials_since_best(outcomes) >= patience)
        return stalled[-1]

    def early_stop(trials: Any, *state: Any) -> tuple[bool, list]:
        return no_new_best(executor.outcomes), []

    restore_signals = catch_signals(executor.interrupt)
    try:
        if getattr(executor, "scheduler", None) is not None:  # jobs the driver starts itself (rungs.py)
            executor.run_rungs(suggest, continued_rng(config.seed, done), started, no_new_best)
        else:
            hyperopt.fmin(
                fn=executor.objective,
                space=keyed_space(space),
                algo=keyed_suggest(suggest, space),
                trials=executor.trials,
                rstate=continued_rng(config.seed, done),
                show_progressbar=executor.show_progressbar,
                max_evals=config.max_evals,
                timeout=budget or None,
                early_stop_fn=early_stop,
            )
    except hyperopt.exceptions.AllTrialsFailed:
        pass  # the outcomes say so below
    except (KeyboardInterrupt, Interrupted) as error:
        reason = StopReason.INTERRUPTED
        restore_signals()  # a second signal during the clean-up acts at once
        executor.cancel()  # jobs on Spark first: none may end its run after the parent killed it
        parent.kill_running_trials()
        raise SearchInterrupted(getattr(error, "signum", signal.SIGINT), parent.run_id) from None
    except BaseException:
        reason = StopReason.ERROR
        raise
    finally:
        restore_signals()
        outcomes = executor.final_outcomes(settle=reason is None)
        if reason is None:  # fmin returns quietly at its timeout: the budget is checked here
            ran_out = bool(budget) and len(outcomes) < config.max_evals and time.time() - started >= budget
            reason = _why_it_ended(outcomes, any(stalled), ran_out)
        parent.finish(outcomes, reason)
    return outcomes


def _why_it_ended(outcomes: Sequence[TrialOutcome], stalled: bool, ran_out: bool) -> StopReason:
    if outcomes and not any(o.ok for o in outcomes):
        return StopReason.ALL_TRIALS_FAILED
    if stalled:
        return StopReason.NO_IMPROVEMENT
    return StopReason.TIME_BUDGET if ran_out else StopReason.MAX_EVALS


def score_name(objective: OptimizationValue, main_evaluation_metric: Sequence[str]) -> str:
    """What a trial's score is, in words: ``dev micro-F1``, ``dev macro-F1``, ``dev accuracy``, ``dev loss``."""
    kind, metric = main_evaluation_metric[0].split()[0], main_evaluation_metric[1]
    if objective is OptimizationValue.DEV_LOSS:
        return "dev loss"
    return f"dev {kind}-F1" if metric == "f1-score" else f"dev {metric}" if kind == "micro" else f"dev {kind} {metric}"


def trial_line(outcome: TrialOutcome, best: TrialOutcome | None, score: str, shown: Sequence[str], total: int) -> str:
    """One finished trial, for the console: its score, the best so far, its time and sampled values."""
    head = f"trial {outcome.number}/{total}"
    if not outcome.ok:
        return f"{head}: failed ({' '.join(str(outcome.error).split())[:160]})"
    sampled = ((n, outcome.params.get(n)) for n in shown)
    values = ", ".join(f"{n}={v:.4g}" if isinstance(v, float) else f"{n}={plain_value(v)}" for n, v in sampled)
    pruned = f", pruned at epoch {outcome.pruned_at}" if outcome.pruned else ""
    pruned += f", rung {outcome.rung} ({outcome.epochs} epochs)" if outcome.epochs else ""
    so_far = f" (best {best.final_score:.4f}, trial {best.number})" if best is not None else ""
    return f"{head}: {score} {outcome.final_score:.4f}{so_far}{pruned}, {outcome.duration_s:.0f}s  {values}"


class SequentialExecutor:
    """Trials one after another in this process; the parent hears of each as it ends, ``progress`` gets a line."""

    interrupt = Interrupted  # not a KeyboardInterrupt: Flair's trainer would swallow that one
    show_progressbar = False

    def __init__(self, runner: Any, parent: Any, trials: Any, restored: Sequence[TrialOutcome], progress: Callable[[str], None] | None, kept: Any) -> None:  # fmt: skip
        self.runner, self.parent, self.trials, self.progress = runner, parent, trials, progress
        self.outcomes, self.kept = list(restored), kept

    def objective(self, sampled: Mapping[str, Any]) -> dict[str, Any]:
        self.runner.keep_bar = self.kept.bar(self.outcomes)
        outcome = self.runner.run_suggested(sampled)
        self.outcomes.append(outcome)
        self.kept.prune(self.outcomes)
        if self.runner.stopping_rule is not None and outcome.status is TrialState.COMPLETE:
            self.runner.stopping_rule.record(outcome.epoch_values)
        self.parent.after_trial(self.outcomes)
        self.show(outcome)
        return outcome.hyperopt_result()

    def show(self, outcome: TrialOutcome) -> None:
        """``outcome``'s line to ``progress``, with the best so far."""
        if self.progress is not None:
            config = self.runner.config
            shown = [name for name in outcome.params if name not in config.fixed]
            score = score_name(config.objective, config.main_evaluation_metric)
            self.progress(trial_line(outcome, best_outcome(self.outcomes), score, shown, config.max_evals))

    def cancel(self) -> None:
        """Stop what runs elsewhere: nothing here, where the one trial under way is this process's own."""

    def final_outcomes(self, settle: bool) -> list[TrialOutcome]:
        return list(self.outcomes)
