"""Trials side by side on Spark, through hyperopt's own ``SparkTrials``: the loop's Spark executor.

Each trial runs in a Spark task and writes its child run from the worker, by explicit parent run
id (the fluent API's active-run stack does not cross processes). The trial's number and point
reach the task through the space (see :mod:`.hyperopt_adapter`), so the worker names, numbers and
tags its run as a sequential search would. Outcomes come back in hyperopt's trial documents; the
parent hears of them when the search ends.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import threading
from typing import Any, Mapping
from urllib.parse import urlparse

from ..adapters.models import value_text
from ..core.config import ExperimentConfig
from ..core.errors import ConfigError
from ..core.interrupts import SignalInterrupt
from ..core.outcome import TrialOutcome, TrialState
from ..store.runs import child_runs
from ..store.tags import STATUS_TAG, TRIAL_NUMBER_TAG
from .hyperopt_adapter import every_trial, is_cancelled, is_lost, reusing_workers, sampled_point, trial_error
from .resume import has_result, restored_outcome
from .trial import TrialRunner, trial_params

LOCAL_STORE_SCHEMES = ("", "file", "sqlite")

log = logging.getLogger("flair_mlflow")


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


def spark_session(parallelism: int, spark_master: str | None = None):
    """The Spark session trials run on, started if none is running."""
    _check_pyspark()
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("flair-mlflow").master(spark_master or f"local[{parallelism}]")
    builder = builder.config("spark.ui.enabled", "false").config("spark.python.worker.reuse", "true")
    if not is_local_master(spark_master):
        return builder.getOrCreate()
    return _with_local_python(builder.config("spark.python.daemon.module", "flair_mlflow.search.spark_daemon"))


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

    def __init__(self, runner: TrialRunner) -> None:
        self.runner = runner

    def __call__(self, sampled: dict[str, Any]) -> dict[str, Any]:
        outcome = self.runner.run_suggested(sampled)  # its torch threads: the runner's settings, per trial
        return {**outcome.hyperopt_result(), "outcome": _plain_outcome(outcome)}


def _plain_outcome(outcome: TrialOutcome) -> dict[str, Any]:
    data = dataclasses.asdict(outcome)
    data["params"] = {
        k: v if isinstance(v, (str, int, float, bool, type(None))) else value_text(v) for k, v in outcome.params.items()
    }
    return data


def _check_pyspark() -> None:
    try:
        import hyperopt.spark  # noqa: F401
        import pyspark.sql  # noqa: F401
    except ImportError:
        raise ConfigError("parallelism", "parallel trials need pyspark: pip install 'flair-mlflow[spark]'") from None


def start_spark(config: ExperimentConfig, tracking_uri: str | None, resume: str | None, warm: bool) -> "SparkStart":
    """Spark for a parallel search, starting in the background; a ConfigError for what a parallel
    search cannot do, raised at once.

    Called before the search prepares and before any run exists, so a refusal leaves nothing behind.
    ``warm``: the workers can load the corpus themselves (it comes from the experiment file).
    """
    import mlflow

    if resume:
        raise ConfigError("resume", "a parallel search cannot be resumed in parallel; resume it with --parallelism 1")
    if config.pruning is not None:
        raise ConfigError("pruning", "the median stopping rule learns from trials in one process; use parallelism 1")
    tracking_uri = tracking_uri or mlflow.get_tracking_uri()
    check_reachable_from_workers(tracking_uri, config.spark_master)
    _check_pyspark()
    return SparkStart(config, tracking_uri, warm)


class SparkStart:
    """Spark starting, and its Python workers doing their first trial's work, while this process
    prepares the search (loads the corpus, checks the embeddings, opens the parent run).

    A worker's first trial would otherwise begin by importing Flair, loading the corpus and the
    embeddings and opening the tracking store: seconds of every worker's time that the driver
    spends preparing anyway. One warm-up task per slot runs that work now; Spark gives each trial
    an idle, warmed worker after it (see :func:`.hyperopt_adapter.reusing_workers`).
    """

    def __init__(self, config: ExperimentConfig, tracking_uri: str, warm: bool) -> None:
        self.config = config
        self.tracking_uri = tracking_uri
        self.warm = warm
        self._trials: Any = None
        self._error: BaseException | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._start, name="flair-mlflow-spark-start", daemon=True).start()

    def trials(self) -> Any:
        """The ``SparkTrials``, once Spark has started; what stopped it from starting is raised here."""
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self._trials

    def _start(self) -> None:
        from hyperopt import SparkTrials

        slots = self.config.parallelism
        try:  # on the given master, or local[parallelism]
            session = spark_session(slots, self.config.spark_master)
            self._trials = SparkTrials(parallelism=slots, spark_session=reusing_workers(session))
        except BaseException as error:  # raised in the search's own thread, by trials()
            self._error = error
            return
        finally:
            self._ready.set()
        if self.warm:
            try:
                session.sparkContext.parallelize(range(slots), slots).map(self._warm_up).collect()
            except Exception as error:  # the trials themselves will do the work, and report what fails
                log.debug("warming the Spark workers failed: %s", error)

    def _warm_up(self, slot: int) -> int:
        """In a worker: what its first trial would do before training, into the process's caches."""
        from ..store.writer import RunWriter
        from .checks import check_embeddings
        from .trial import TrialSettings

        runner = TrialRunner(TrialSettings.from_config(self.config), self.config)
        check_embeddings(self.config, runner.corpus)  # built once per process: the trials take them
        RunWriter(self.tracking_uri).client.search_experiments(max_results=1)
        return slot

    def __getstate__(self) -> dict[str, Any]:
        """What a warm-up task needs: not the Spark objects or the thread's bookkeeping."""
        return {"config": self.config, "tracking_uri": self.tracking_uri, "warm": self.warm}


class SparkExecutor:
    """Trials side by side as Spark tasks; the run tree and parent reports are a sequential search's."""

    interrupt = SignalInterrupt  # SparkTrials cancels its Spark jobs on a KeyboardInterrupt

    def __init__(
        self,
        trials: Any,
        runner: TrialRunner,
        parent: Any,
        space: Mapping[str, Any],
        show_progress: bool,
    ) -> None:
        self.trials = trials
        self.objective = SparkObjective(runner)
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
    writer.close(run_id, TrialState.CANCELLED.run_status, {STATUS_TAG: TrialState.CANCELLED.value})


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
