"""Trials side by side through hyperopt's ``SparkTrials``, each writing its run from its worker as a sequential one."""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import sys
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Mapping
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
from .rungs import RungExecutor
from .schedulers import Job
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
    if master and not master.startswith("local") and config.scheduled and not config.scheduler.checkpoint_dir:
        problem = "a promotion continues on any Spark worker, from the checkpoint another one left"
        raise ConfigError("scheduler.checkpoint_dir", f"{problem}; set it to a folder every worker shares (NFS, ...)")
    try:
        import hyperopt.spark  # noqa: F401
        import pyspark.sql  # noqa: F401
    except ImportError:
        raise ConfigError("parallelism", "parallel trials need pyspark: pip install 'flair-mlflow[spark]'") from None


def spark_trials(config: ExperimentConfig) -> Any:
    """hyperopt's ``SparkTrials`` on the Spark session of :func:`spark_session`."""
    from hyperopt import SparkTrials

    return SparkTrials(parallelism=config.parallelism, spark_session=spark_session(config))


def spark_session(config: ExperimentConfig) -> Any:
    """A Spark session on the given master, or on ``local[parallelism]`` whose workers run this Python."""
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
    return session


def one_task_job(context: Any, task: Callable[[], Any]) -> Any:
    """``task()`` run as a Spark job of one task; its result. The task reads its one-row input to the end: only then
    does PySpark hand its Python worker back to the pool, so the next job starts with Flair imported and the corpus
    loaded (a task that leaves its input unread, as ``SparkTrials``' do, gets a fresh Python process every job)."""
    return context.parallelize([0], 1).map(lambda _: task()).collect()[0]


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
    return {**outcome.hyperopt_result(), "outcome": plain_outcome(outcome)}


def plain_outcome(outcome: TrialOutcome) -> dict[str, Any]:
    """``outcome`` as plain values, which travel back from a Spark task whatever its parameters hold."""
    plain = dataclasses.asdict(outcome)
    plain["params"] = {k: plain_value(v) for k, v in outcome.params.items()}
    return plain


def outcome_of(plain: Mapping[str, Any]) -> TrialOutcome:
    """The outcome :func:`plain_outcome` sent."""
    return TrialOutcome(**{**plain, "status": TrialState(plain["status"])})


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
            outcomes.append(outcome_of(result["outcome"]))
        elif is_lost(doc):
            error = f"SparkTaskFailed: {_task_error(doc)}"
            outcomes.append(TrialOutcome(doc["tid"] + 1, {}, TrialState.FAILED, error=error))
    return outcomes


def _task_error(doc: dict[str, Any]) -> str:
    """One line on why Spark lost the task: the last line of the worker's traceback where SparkTrials kept one."""
    return _task_error_line(*trial_error(doc))


def _task_error_line(kind: str, detail: str) -> str:
    lines = [line.strip() for line in detail.splitlines() if line.strip()]
    if lines:
        return " ".join(f"the Spark task running this trial failed: {lines[-1]}".split())[:1000]
    cause = "its Python worker exited, was killed or ran out of memory; the Spark driver's log has the cause"
    return f"the Spark task running this trial failed ({kind or 'an error'}): {cause}"


def spark_rung(runner: TrialRunner, arguments: tuple) -> dict[str, Any]:
    """What a Spark task runs for one job of a multi-fidelity search (``runner.run``'s arguments), sent back plain."""
    runner.task_gpu = task_gpu()
    return plain_outcome(runner.run(*arguments))


class SparkRungExecutor(RungExecutor):
    """A multi-fidelity search's jobs, new trials and promotions alike, ``parallelism`` at a time: each a Spark job
    started from a driver thread. The rungs are kept on the driver, which gives the next job to the first free slot;
    a promotion's checkpoint must be where the worker that continues it can read it (``check_parallel``)."""

    def __init__(self, session: Any, *args: Any) -> None:
        super().__init__(*args)
        self.context, self.slots = session.sparkContext, self.runner.config.parallelism
        self.group = f"flair-mlflow-{self.parent.run_id}"  # cancelled together by a signal
        self.pool = ThreadPoolExecutor(self.slots, thread_name_prefix="flair-mlflow-job")
        self.futures: dict[Future, Job] = {}

    def start(self, job: Job, vals: Mapping[str, list] | None = None) -> None:
        arguments = self.prepare(job, vals)
        shipped = copy.copy(self.runner)  # with this job's keep_bar: the next job's changes the driver's
        self.futures[self.pool.submit(self._on_spark, shipped, arguments)] = job

    def _on_spark(self, runner: TrialRunner, arguments: tuple) -> dict[str, Any]:
        job = arguments[3]
        about = f"trial {job.number}, epochs {job.start + 1} to {job.stop}"
        self.context.setJobGroup(self.group, about, interruptOnCancel=True)  # this thread's jobs
        return one_task_job(self.context, functools.partial(spark_rung, runner, arguments))

    def wait(self) -> None:
        """Until a job ends, then its outcome counted; a signal here cancels every running job first."""
        try:
            done, _ = wait(self.futures, return_when=FIRST_COMPLETED)
        except BaseException:
            self.cancel()
            raise
        for future in done:
            job = self.futures.pop(future)
            self.finish(job, self._outcome(job, future))

    def _outcome(self, job: Job, future: Future) -> TrialOutcome:
        """The job's outcome; one whose Spark task failed (its worker lost) is a failed trial, its run ended so."""
        if future.exception() is None:
            return outcome_of(future.result())
        error = _task_error_line("", str(future.exception()))
        writer, earlier = self.parent.writer, next((o for o in self.outcomes if o.number == job.number), None)
        run_id = earlier.run_id if earlier is not None else None
        if run_id is None:
            where = f"tags.`{TRIAL_NUMBER_TAG}` = '{job.number}' and attributes.status = 'RUNNING'"
            runs = child_runs(writer.client, self.parent.experiment_id, self.parent.run_id, where)
            run_id = runs[0].info.run_id if runs else None
        if run_id is not None:
            writer.fail(run_id, "SparkTaskFailed", error)
        params = trial_params(self.points[job.number], self.runner.config.fixed)
        return TrialOutcome(job.number, params, TrialState.FAILED, run_id, error=f"SparkTaskFailed: {error}")

    def cancel(self) -> None:
        """Cancel the running Spark jobs; their runs are left to the search's clean-up (``kill_running_trials``)."""
        if self.futures:
            self.context.cancelJobGroup(self.group)
        self.pool.shutdown(wait=False, cancel_futures=True)

    def final_outcomes(self, settle: bool) -> list[TrialOutcome]:
        self.cancel()
        return super().final_outcomes(settle)
