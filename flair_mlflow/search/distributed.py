"""Trials side by side on Spark, through hyperopt's own ``SparkTrials``: the loop's Spark executor.

Each trial runs in a Spark task and writes its child run from the worker, by explicit parent run
id (the fluent API's active-run stack does not cross processes). The trial's number and point
reach the task through the space (see :mod:`.hyperopt_adapter`), so the worker names, numbers and
tags its run as a sequential search would. Outcomes come back in hyperopt's trial documents; the
parent hears of them when the search ends.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any, Mapping
from urllib.parse import urlparse

from ..adapters.models import value_text
from ..core.config import ExperimentConfig
from ..core.errors import ConfigError
from ..core.interrupts import SignalInterrupt
from ..core.outcome import TrialOutcome, TrialState
from ..store.runs import child_runs
from ..store.tags import STATUS_TAG, TRIAL_NUMBER_TAG
from .hyperopt_adapter import every_trial, is_cancelled, is_lost, sampled_point, trial_error
from .resume import has_result, restored_outcome
from .trial import TrialRunner, trial_params

LOCAL_STORE_SCHEMES = ("", "file", "sqlite")


def is_local_master(master: str | None) -> bool:
    return master is None or master.startswith("local")


def check_reachable_from_workers(tracking_uri: str, spark_master: str | None) -> None:
    """Refuse a tracking store that only this machine can see when workers run on other hosts."""
    if is_local_master(spark_master):
        return
    scheme = urlparse(tracking_uri).scheme
    if scheme in LOCAL_STORE_SCHEMES or len(scheme) == 1:  # a Windows drive letter is a local path too
        raise ConfigError(
            "tracking_uri",
            f"'{tracking_uri}' is a store on this machine, which Spark workers on other hosts cannot reach; "
            "run an MLflow tracking server and pass --tracking-uri http://<host>:<port>",
        )


def torch_threads_per_trial(parallelism: int) -> int:
    """Threads each trial may use so that trials side by side do not oversubscribe the cores."""
    return max(1, (os.cpu_count() or 1) // max(1, parallelism))


def spark_trials(parallelism: int, spark_master: str | None = None):
    """A ``SparkTrials`` on the given master (``local[parallelism]`` when none is running)."""
    try:
        from hyperopt import SparkTrials
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError("parallelism", "parallel trials need pyspark: pip install 'flair-mlflow[spark]'") from None
    builder = SparkSession.builder.appName("flair-mlflow").master(spark_master or f"local[{parallelism}]")
    builder = builder.config("spark.ui.enabled", "false").config("spark.python.worker.reuse", "true")
    session = _with_local_python(builder) if is_local_master(spark_master) else builder.getOrCreate()
    return SparkTrials(parallelism=parallelism, spark_session=session)


def _with_local_python(builder: Any) -> Any:
    """The session, its local workers running this environment's Python.

    PySpark reads the workers' interpreter from ``PYSPARK_PYTHON`` once, when the context starts
    (no Spark setting does it from Python); the variable is set for that moment only.
    """
    before = os.environ.get("PYSPARK_PYTHON")
    os.environ["PYSPARK_PYTHON"] = before or sys.executable
    try:
        return builder.getOrCreate()
    finally:
        if before is None:
            del os.environ["PYSPARK_PYTHON"]


class SparkObjective:
    """The function hyperopt ships to Spark workers: one trial, its outcome sent back whole."""

    def __init__(self, runner: TrialRunner, threads: int) -> None:
        self.runner = runner
        self.threads = threads

    def __call__(self, sampled: dict[str, Any]) -> dict[str, Any]:
        import torch

        torch.set_num_threads(self.threads)
        outcome = self.runner.run_suggested(sampled)
        return {**outcome.hyperopt_result(), "outcome": _plain_outcome(outcome)}


def _plain_outcome(outcome: TrialOutcome) -> dict[str, Any]:
    data = dataclasses.asdict(outcome)
    data["params"] = {
        k: v if isinstance(v, (str, int, float, bool, type(None))) else value_text(v) for k, v in outcome.params.items()
    }
    return data


def start_spark(config: ExperimentConfig, tracking_uri: str, resume: str | None):
    """The SparkTrials of a parallel search, or a ConfigError for what a parallel search cannot do.

    Called before any run exists, so a refusal leaves nothing behind.
    """
    if resume:
        raise ConfigError("resume", "a parallel search cannot be resumed in parallel; resume it with --parallelism 1")
    if config.pruning is not None:
        raise ConfigError("pruning", "the median stopping rule learns from trials in one process; use parallelism 1")
    check_reachable_from_workers(tracking_uri, config.spark_master)
    return spark_trials(config.parallelism, config.spark_master)


class SparkExecutor:
    """Trials side by side as Spark tasks; the run tree and parent reports are a sequential search's."""

    interrupt = SignalInterrupt  # SparkTrials cancels its Spark jobs on a KeyboardInterrupt

    def __init__(
        self,
        trials: Any,
        runner: TrialRunner,
        parent: Any,
        space: Mapping[str, Any],
        parallelism: int,
        show_progress: bool,
    ) -> None:
        self.trials = trials
        self.objective = SparkObjective(runner, torch_threads_per_trial(parallelism))
        self.show_progressbar = show_progress
        self.parent = parent
        self.space = space
        self.fixed = runner.settings.fixed

    def outcomes_so_far(self, trials: Any) -> list[TrialOutcome]:
        return outcomes_of_trials(trials)

    def final_outcomes(self, settle: bool) -> list[TrialOutcome]:
        """Every trial's outcome; with ``settle`` (not after a signal) also those whose result never came back."""
        outcomes = outcomes_of_trials(self.trials)
        if settle:
            outcomes = self._settle(outcomes)
        for index in range(len(outcomes)):
            self.parent.log_score(outcomes[: index + 1])
        return outcomes

    def _settle(self, outcomes: list[TrialOutcome]) -> list[TrialOutcome]:
        """Account for the trials whose result never reached the driver; returns every outcome.

        SparkTrials cancels the trials still running when a search stops early (no improvement, time
        budget) and drops the result of one that finished in the same instant; a trial whose Spark
        task failed (its Python worker killed, out of memory, its host lost) leaves its run RUNNING.
        A run that FINISHED (or FAILED) with its metrics becomes its trial's outcome, so no completed
        training is lost; one cut off by a cancellation ends KILLED, tagged ``cancelled``; one cut
        off by a failed task ends FAILED with ``error.class`` ``SparkTaskFailed``. Any other run left
        RUNNING (a failed attempt of a task Spark retried) ends KILLED, tagged ``cancelled``.
        """
        writer = self.parent.writer
        by_number = {outcome.number: outcome for outcome in outcomes}
        runs = child_runs(writer.client, self.parent.experiment_id, self.parent.run_id)
        settled: set[str] = set()
        for doc in every_trial(self.trials):
            if not (is_cancelled(doc) or is_lost(doc)) or "outcome" in (doc.get("result") or {}):
                continue
            number = doc["tid"] + 1
            attempts = sorted(
                (r for r in runs if r.data.tags.get(TRIAL_NUMBER_TAG) == str(number)),
                key=lambda r: r.info.start_time or 0,
            )
            if not attempts:
                continue  # cut off before the trial created its run; a lost one's outcome says so
            run = attempts[-1]
            settled.add(run.info.run_id)
            params = trial_params(sampled_point(self.space, doc["misc"]["vals"]), self.fixed)
            if has_result(run):
                by_number[number] = restored_outcome(writer.client, run, number, params, None)
            elif is_cancelled(doc):
                _cancel(writer, run.info.run_id)
            else:
                error = _task_error(doc)
                writer.fail(run.info.run_id, "SparkTaskFailed", error)
                by_number[number] = TrialOutcome(
                    number=number,
                    params=params,
                    status=TrialState.FAILED,
                    run_id=run.info.run_id,
                    error=f"SparkTaskFailed: {error}",
                )
        for run in runs:
            if run.info.status == "RUNNING" and run.info.run_id not in settled:
                _cancel(writer, run.info.run_id)
        return sorted(by_number.values(), key=lambda o: o.number)


def outcomes_of_trials(trials: Any) -> list[TrialOutcome]:
    """The outcomes Spark trials hold, in trial-id order: those returned, and a failed one for each
    trial whose Spark task itself failed. Cancelled and running trials have none."""
    outcomes: list[TrialOutcome] = []
    for doc in every_trial(trials):
        result = doc.get("result") or {}
        if "outcome" in result:
            outcomes.append(TrialOutcome(**result["outcome"]))
        elif is_lost(doc):
            error = f"SparkTaskFailed: {_task_error(doc)}"
            outcomes.append(TrialOutcome(number=doc["tid"] + 1, params={}, status=TrialState.FAILED, error=error))
    return outcomes


def _cancel(writer: Any, run_id: str) -> None:
    writer.set_tags(run_id, {STATUS_TAG: TrialState.CANCELLED.value})
    writer.end(run_id, TrialState.CANCELLED.run_status)


def _task_error(doc: dict[str, Any]) -> str:
    """One line on why Spark lost the task: the last line of the worker's traceback where SparkTrials kept one."""
    kind, detail = trial_error(doc)
    lines = [line.strip() for line in detail.splitlines() if line.strip()]
    if lines:
        return " ".join(f"the Spark task running this trial failed: {lines[-1]}".split())[:1000]
    return (
        f"the Spark task running this trial failed ({kind or 'an error'}): its Python worker exited, was killed "
        "or ran out of memory; the Spark driver's log has the cause"
    )
