"""The one trial loop, ``fmin`` over a sequential or Spark executor; whatever ends it, a ``finally`` ends the parent."""

from __future__ import annotations

import enum
import math
import shutil
import signal
import time
from typing import Any, Callable, Mapping, Sequence

import hyperopt
import numpy as np

from ..config import ExperimentConfig, OptimizationValue
from ..tracking.tags import VALS_TAG
from ..training.models import plain_value
from .hyperopt_internals import continued_rng, keyed_space, keyed_suggest, restored_trials, sampled_point, vals_json
from .interrupts import Interrupted, SearchInterrupted, catch_signals
from .outcome import TrialOutcome, TrialState, as_loss, best_outcome, rung_summary, trials_since_best


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

    def early_stop(trials: Any, *state: Any) -> tuple[bool, list]:  # after each trial: no new best in ``patience``?
        stalled.append(bool(patience) and trials_since_best(executor.outcomes_so_far(trials)) >= patience)
        return stalled[-1], []

    restore_signals = catch_signals(executor.interrupt)
    try:
        if getattr(executor, "scheduler", None) is not None:
            run_rungs(executor, space, suggest, config, continued_rng(config.seed, done), done, started)
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


def run_rungs(executor: Any, space: Mapping[str, Any], suggest: Callable, config: ExperimentConfig, rng: Any,
              done: int, started: float) -> None:  # fmt: skip
    """Asynchronous successive halving: a promotion whenever one is due, else the algorithm's next point, learnt from
    one rung's scores (``executor.scheduler`` decides both); ends at ``max_evals`` points, none left to promote."""
    scheduler, domain = executor.scheduler, hyperopt.Domain(lambda point: 0.0, dict(space))
    rng, budget, sampled = rng or np.random.default_rng(), (config.time_budget_minutes or 0) * 60, done
    enough = len(config.search_space) + 2  # BOHB's: one more result than dimensions, and one to spare
    while not budget or time.time() - started < budget:
        job = scheduler.promotion()
        if job is not None:
            executor.run_job(job)
            continue
        if sampled >= config.max_evals:
            return
        losses = scheduler.losses_at(scheduler.model_budget(enough))
        learnt = [(n - 1, executor.vals[n], {"status": "ok", "loss": loss}) for n, loss in losses.items()]
        doc = suggest([sampled], domain, restored_trials(space, learnt), int(rng.integers(2**31 - 1)))[0]
        sampled += 1
        executor.run_job(scheduler.new_trial(sampled), doc["misc"]["vals"])


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


class RungExecutor(SequentialExecutor):
    """A multi-fidelity search's trials, one rung at a time: each rung of a trial continues its run and its training
    from the checkpoint the last rung left; checkpoints no promotion can need any more are deleted."""

    def __init__(self, scheduler: Any, space: Mapping[str, Any], *args: Any) -> None:
        super().__init__(*args)
        self.scheduler, self.space, self.vals, self.points = scheduler, space, {}, {}
        self.checkpoint_peak_bytes = 0

    def restore(self, vals: Sequence[Mapping[str, list]]) -> None:
        """A resumed search: the restored trials' points (``vals``, in their order) and the rungs they finished, so
        promotions and new trials go on as if never interrupted; a failed rung is one after the last finished."""
        maximise = self.runner.config.maximise
        for outcome, trial_vals in zip(self.outcomes, vals):
            self.vals[outcome.number] = trial_vals
            self.points[outcome.number] = sampled_point(self.space, trial_vals)
            self.scheduler.new_trial(outcome.number)
            rungs = self.scheduler.rungs_of(outcome.number)
            finished = [rungs.index(e) for e in outcome.rung_scores if e in rungs]
            for rung in finished:
                self.scheduler.report(outcome.number, rung, as_loss(outcome.rung_scores[rungs[rung]], maximise))
            failed_at = max(finished, default=-1) + 1
            if not outcome.ok and failed_at < len(rungs):
                self.scheduler.report(outcome.number, failed_at, math.inf)
                outcome.rung_scores = {**outcome.rung_scores, rungs[failed_at]: math.nan}
        self._drop_checkpoints()

    def run_job(self, job: Any, vals: Mapping[str, list] | None = None) -> TrialOutcome:
        if vals is not None:
            self.vals[job.number] = vals
            self.points[job.number] = sampled_point(self.space, vals)
        earlier = next((o for o in self.outcomes if o.number == job.number), None)
        top = [o for o in self.outcomes if o.epochs == self.runner.config.max_epochs]
        self.runner.keep_bar = self.kept.bar(top)
        tags = {VALS_TAG: vals_json(vals)} if vals is not None else {}
        outcome = self.runner.run(job.number, self.points[job.number], tags, job, earlier and earlier.run_id)
        self.scheduler.report(job.number, job.rung, outcome.loss if outcome.ok else math.inf)
        outcome.rung_scores = {
            **(earlier.rung_scores if earlier else {}),
            job.stop: outcome.final_score if outcome.ok else math.nan,
        }
        self.outcomes = sorted([o for o in self.outcomes if o.number != job.number] + [outcome], key=lambda o: o.number)
        self.kept.prune(self.outcomes)
        self._drop_checkpoints()
        others = [o for o in self.outcomes if o is not outcome]
        self.parent.after_trial([*others, outcome])
        if self.progress is not None:
            config = self.runner.config
            shown = [name for name in outcome.params if name not in config.fixed]
            score = score_name(config.objective, config.main_evaluation_metric)
            self.progress(trial_line(outcome, best_outcome(self.outcomes), score, shown, config.max_evals))
        return outcome

    def _drop_checkpoints(self) -> None:
        """Delete what no promotion can need; note the most disk the rest held."""
        held = 0
        for number in self.scheduler.bracket_of:
            folder = self.runner.checkpoint_folder(number)
            if folder.is_dir() and not self.scheduler.can_be_promoted(number):
                shutil.rmtree(folder, ignore_errors=True)
            elif folder.is_dir():
                held += sum(f.stat().st_size for f in folder.iterdir())
        self.checkpoint_peak_bytes = max(self.checkpoint_peak_bytes, held)

    def final_outcomes(self, settle: bool) -> list[TrialOutcome]:
        """The trials, the rungs logged; the checkpoints are deleted, unless a signal or an error stopped the search
        (``settle`` False): ``--resume`` continues its trials from them."""
        if settle:
            shutil.rmtree(self.runner.checkpoints, ignore_errors=True)
        maximise = self.runner.config.maximise
        writer, run_id = self.parent.writer, self.parent.run_id
        for epochs, (count, score) in rung_summary(self.outcomes, maximise).items():
            best = {"rung_best_score": score} if math.isfinite(score) else {}
            writer.log_metrics(run_id, {"rung_trials": count, **best}, step=epochs)
        writer.log_metrics(run_id, {"checkpoint_peak_mb": self.checkpoint_peak_bytes / 2**20})
        return list(self.outcomes)
