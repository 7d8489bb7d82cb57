"""Trials side by side through hyperopt's ``SparkTrials``, each writing its run from its worker as a sequential one."""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from typing import Any, Mapping
from urllib.parse import urlparse

from ..config import ExperimentConfig
from ..errors import ConfigError
from ..tracking.search_runs import child_runs
from ..tracking.tags import STATUS_TAG, TRIAL_NUMBER_TAG
from ..training.models import plain_value
from .hyperopt_internals import every_trial, is_cancelled, is_lost, sampled_point, trial_error
from .interrupts import SignalInterrupt
from .outcome import TrialOutcome, TrialState
from .resume import has_result, restored_outcome
from .trial import TrialRunner, trial_params


def check_parallel(config: ExperimentConfig, tracking_uri: str, resume: str | None) -> None:
    """Refuse, before anything is written, what a parallel search cannot do."""
    if resume:
        raise ConfigError("resume", "a parallel search cannot be resumed in parallel; resume it with --parallelism 1")
    if config.pruning is not None:
        raise ConfigError("pruning", "the median stopping rule learns from trials in one process; use parallelism 1")
    master = config.spark_master
    scheme = urlparse(tracking_uri).scheme
    if master and not master.startswith("local") and (scheme in ("", "file", "sqlite") or len(scheme) == 1):
        unreachable = f"'{tracking_uri}' is a store on this machine, which Spark workers on other hosts cannot reach"
        advice = "run an MLflow tracking server and pass --tracking-uri http://<host>:<port>"
        raise ConfigError("tracking_uri", f"{unreachable}; {advice}")
    try:
        import hyperopt.spark  # noqa: F401
        import pyspark.sql  # noqa: F401
    except ImportError:
        raise ConfigError("parallelism", "parallel trials need pyspark: pip install 'flair-mlflow[spark]'") from None


def spark_trials(config: ExperimentConfig) -> Any:
    """hyperopt's ``SparkTrials`` on the given master, or ``local[parallelism]`` whose workers run this Python."""
    from hyperopt import SparkTrials
    from pyspark.sql import SparkSession

    master = config.spark_master or f"local[{config.parallelism}]"
    builder = SparkSession.builder.appName("flair-mlflow").master(master).config("spark.ui.enabled", "false")
    if config.device.startswith("cuda") and not master.startswith("local"):  # a GPU per trial, as asked for
        builder = builder.config("spark.task.resource.gpu.amount", "1")  # the workers must offer them
    unset = "PYSPARK_PYTHON" not in os.environ and master.startswith("local")  # read once, as the context starts
    if unset:
        os.environ["PYSPARK_PYTHON"] = sys.executable
    try:
        session = builder.getOrCreate()
    finally:
        if unset:
            del os.environ["PYSPARK_PYTHON"]
    return SparkTrials(parallelism=config.parallelism, spark_session=session)


def task_gpu(resources: Any = None) -> str | None:
    """The first GPU Spark assigned the running task (its ``gpu`` resource), or None outside one or without."""
    if resources is None:
        from pyspark import TaskContext

        context = TaskContext.get()
        resources = context.resources() if context is not None else {}
    gpus = resources.get("gpu")
    return str(gpus.addresses[0]) if gpus is not None and gpus.addresses else None


def spark_objective(runner: TrialRunner, sampled: dict[str, Any]) -> dict[str, Any]:
    """What hyperopt ships to Spark workers (with ``runner`` bound): one trial, its outcome sent back whole."""
    runner.task_gpu = task_gpu()
    outcome = runner.run_suggested(sampled)
    plain = dataclasses.asdict(outcome)
    plain["params"] = {k: plain_value(v) for k, v in outcome.params.items()}
    return {**outcome.hyperopt_result(), "outcome": plain}


class SparkExecutor:
    """Trials side by side as Spark tasks; the run tree and parent reports are a sequential search's."""

    interrupt = SignalInterrupt  # SparkTrials cancels its Spark jobs on a KeyboardInterrupt

    def __init__(self, trials: Any, runner: TrialRunner, parent: Any, space: Mapping[str, Any], show_progress: bool,
                 kept: Any) -> None:  # fmt: skip
        self.trials, self.parent, self.space, self.fixed = trials, parent, space, runner.config.fixed
        self.objective = functools.partial(spark_objective, runner)
        self.show_progressbar, self.kept = show_progress, kept

    def outcomes_so_far(self, trials: Any) -> list[TrialOutcome]:
        """The outcomes returned so far; a task cannot know the others, so each logs its model and extras go here."""
        outcomes = outcomes_of_trials(trials)
        self.kept.prune(outcomes)
        return outcomes

    def final_outcomes(self, settle: bool) -> list[TrialOutcome]:
        """Every trial's outcome; with ``settle`` (not after a signal) also those whose result never came back."""
        outcomes = self._settle(outcomes_of_trials(self.trials)) if settle else outcomes_of_trials(self.trials)
        self.kept.prune(outcomes)
        for index in range(len(outcomes)):
            self.parent.log_score(outcomes[: index + 1])
        return outcomes

    def _settle(self, outcomes: list[TrialOutcome]) -> list[TrialOutcome]:
        """Trials whose result never reached the driver: a run with metrics is the outcome, others end KILLED/FAILED."""
        writer = self.parent.writer
        by_number = {outcome.number: outcome for outcome in outcomes}
        runs = child_runs(writer.client, self.parent.experiment_id, self.parent.run_id)
        settled: set[str] = set()
        for doc in every_trial(self.trials):
            if not (is_cancelled(doc) or is_lost(doc)) or "outcome" in (doc.get("result") or {}):
                continue
            number = doc["tid"] + 1
            attempts = [r for r in runs if r.data.tags.get(TRIAL_NUMBER_TAG) == str(number)]
            attempts.sort(key=lambda r: r.info.start_time or 0)
            if not attempts:
                continue  # cut off before the trial created its run; a lost one's outcome says so
            run = attempts[-1]
            settled.add(run.info.run_id)
            params = trial_params(sampled_point(self.space, doc["misc"]["vals"]), self.fixed)
            if has_result(run):
                by_number[number] = restored_outcome(writer.client, run, number, params, None)
            elif is_cancelled(doc):
                writer.close(run.info.run_id, "KILLED", {STATUS_TAG: TrialState.CANCELLED})
            else:
                error = _task_error(doc)
                writer.fail(run.info.run_id, "SparkTaskFailed", error)
                by_number[number] = TrialOutcome(
                    number, params, TrialState.FAILED, run.info.run_id, error=f"SparkTaskFailed: {error}"
                )
        for run in runs:
            if run.info.status == "RUNNING" and run.info.run_id not in settled:
                writer.close(run.info.run_id, "KILLED", {STATUS_TAG: TrialState.CANCELLED})
        return sorted(by_number.values(), key=lambda o: o.number)


def outcomes_of_trials(trials: Any) -> list[TrialOutcome]:
    """In trial-id order, the outcomes returned and a failed one per lost Spark task (cancelled ones have none)."""
    outcomes: list[TrialOutcome] = []
    for doc in every_trial(trials):
        result = doc.get("result") or {}
        if "outcome" in result:
            outcomes.append(TrialOutcome(**{**result["outcome"], "status": TrialState(result["outcome"]["status"])}))
        elif is_lost(doc):
            error = f"SparkTaskFailed: {_task_error(doc)}"
            outcomes.append(TrialOutcome(doc["tid"] + 1, {}, TrialState.FAILED, error=error))
    return outcomes


def _task_error(doc: dict[str, Any]) -> str:
    """One line on why Spark lost the task: the last line of the worker's traceback where SparkTrials kept one."""
    kind, detail = trial_error(doc)
    lines = [line.strip() for line in detail.splitlines() if line.strip()]
    if lines:
        return " ".join(f"the Spark task running this trial failed: {lines[-1]}".split())[:1000]
    cause = "its Python worker exited, was killed or ran out of memory; the Spark driver's log has the cause"
    return f"the Spark task running this trial failed ({kind or 'an error'}): {cause}"
