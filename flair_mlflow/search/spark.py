"""A search's jobs side by side on Spark, each writing its run from its worker as a sequential search would; the
driver keeps the trials, and each job's task reads its input so the next job reuses its Python worker."""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Mapping
from urllib.parse import urlparse

from ..config import ExperimentConfig
from ..errors import ConfigError
from ..tracking.search_runs import child_runs
from ..tracking.tags import TRIAL_NUMBER_TAG
from ..training.models import plain_value
from .outcome import TrialOutcome, TrialState
from .rungs import RungExecutor
from .schedulers import Job
from .trial import TrialRunner, trial_params

#: how long a signal's clean-up waits for the cancelled Spark tasks to end (local mode: a few seconds)
CANCEL_WAIT_S = 60


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
        import pyspark.sql  # noqa: F401
    except ImportError:
        raise ConfigError("parallelism", "parallel trials need pyspark: pip install 'flair-mlflow[spark]'") from None


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
    loaded (a task that leaves its input unread, as hyperopt's ``SparkTrials``' do, gets a new Python process each job)."""
    return context.parallelize([0], 1).map(lambda _: task()).collect()[0]


def task_gpu(resources: Any = None) -> str | None:
    """The first GPU Spark assigned the running task (its ``gpu`` resource), or None outside one or without."""
    if resources is None:
        from pyspark import TaskContext

        context = TaskContext.get()
        resources = context.resources() if context is not None else {}
    gpus = resources.get("gpu")
    return str(gpus.addresses[0]) if gpus is not None and gpus.addresses else None


def plain_outcome(outcome: TrialOutcome) -> dict[str, Any]:
    """``outcome`` as plain values, which travel back from a Spark task whatever its parameters hold."""
    plain = dataclasses.asdict(outcome)
    plain["params"] = {k: plain_value(v) for k, v in outcome.params.items()}
    return plain


def outcome_of(plain: Mapping[str, Any]) -> TrialOutcome:
    """The outcome :func:`plain_outcome` sent."""
    return TrialOutcome(**{**plain, "status": TrialState(plain["status"])})


def task_error(detail: str) -> str:
    """One line on why Spark lost a job's task: the last line of the error its job raised on the driver."""
    lines = [line.strip() for line in detail.splitlines() if line.strip()]
    if lines:
        return " ".join(f"the Spark task running this trial failed: {lines[-1]}".split())[:1000]
    cause = "its Python worker exited, was killed or ran out of memory; the Spark driver's log has the cause"
    return f"the Spark task running this trial failed: {cause}"


def spark_job(runner: TrialRunner, arguments: tuple) -> dict[str, Any]:
    """What a Spark task runs for one job, a whole trial or a rung of one (``runner.run``'s arguments), sent back plain."""
    runner.task_gpu = task_gpu()
    return plain_outcome(runner.run(*arguments))


class SparkExecutor(RungExecutor):
    """A search's jobs (whole trials; or new trials' first rungs and promotions) ``parallelism`` at a time: each a Spark
    job started from a driver thread. The trials and rungs are kept on the driver, which gives the next job to the
    first free slot; a promotion's checkpoint must be where the worker that continues it can read it
    (``check_parallel``)."""

    def __init__(self, session: Any, *args: Any) -> None:
        super().__init__(*args)
        self.context, self.slots = session.sparkContext, self.runner.config.parallelism
        self.group = f"flair-mlflow-{self.parent.run_id}"  # cancelled together by a signal
        self.pool = ThreadPoolExecutor(self.slots, thread_name_prefix="flair-mlflow-job")
        self.futures: dict[Future, Job] = {}

    def start(self, job: Job, vals: Mapping[str, list] | None = None) -> None:
        arguments = self.prepare(job, vals)
        shipped = copy.copy(self.runner)  # with this job's keep_bar: the next job's changes the driver's
        self.futures[self.pool.submit(self._on_spark, shipped, job, arguments)] = job

    def _on_spark(self, runner: TrialRunner, job: Job, arguments: tuple) -> dict[str, Any]:
        about = f"trial {job.number}, epochs {job.start + 1} to {job.stop}"
        self.context.setJobGroup(self.group, about, interruptOnCancel=True)  # this thread's jobs
        return one_task_job(self.context, functools.partial(spark_job, runner, arguments))

    def wait(self) -> None:
        """Until a job ends, then its outcome counted (a signal here is the search loop's: it cancels the jobs)."""
        done, _ = wait(self.futures, return_when=FIRST_COMPLETED)
        for future in done:
            job = self.futures.pop(future)
            self.finish(job, self._outcome(job, future))

    def _outcome(self, job: Job, future: Future) -> TrialOutcome:
        """The job's outcome; one whose Spark task failed (its worker lost) is a failed trial, its run ended so."""
        if future.exception() is None:
            return outcome_of(future.result())
        error = task_error(str(future.exception()))
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
        """Cancel the running Spark jobs and wait (at most ``CANCEL_WAIT_S``) until their tasks have ended, so that no
        worker creates or ends a run after the search's clean-up (``kill_running_trials``) has swept them: Spark fails a
        cancelled job at once, while its Python worker runs on until it is killed."""
        self.pool.shutdown(wait=False, cancel_futures=True)  # no job waiting for a thread starts
        tracker, stages, deadline = self.context.statusTracker(), set(), time.monotonic() + CANCEL_WAIT_S
        while any(not future.done() for future in self.futures) and time.monotonic() < deadline:
            stages |= self._active_stages(tracker)
            self.context.cancelJobGroup(self.group)  # again: a thread may have submitted its job after the last call
            wait(self.futures, timeout=0.5)
        while time.monotonic() < deadline and any(
            info is not None and info.numActiveTasks for info in map(tracker.getStageInfo, stages)
        ):
            time.sleep(0.2)

    def _active_stages(self, tracker: Any) -> set[int]:
        """The stages of this search's jobs that Spark still runs (Spark's status tracker)."""
        running = set(tracker.getJobIdsForGroup(self.group)) & set(tracker.getActiveJobsIds())
        return {stage for job in running if (info := tracker.getJobInfo(job)) is not None for stage in info.stageIds}

    def final_outcomes(self, settle: bool) -> list[TrialOutcome]:
        """With every job ended: a run still RUNNING is a task attempt Spark lost and retried (``spark.task.maxFailures``
        on a cluster), or one an error left: it ends KILLED."""
        self.cancel()
        self.parent.kill_running_trials()
        return super().final_outcomes(settle)
