"""Trials side by side on Spark, through hyperopt's own ``SparkTrials``.

Each trial runs in a Spark task and writes its child run from the worker, by explicit parent run
id (the fluent API's active-run stack does not cross processes). hyperopt does not tell a task
its trial id, so a worker names its run ``trial-pending``; the driver gives it its number
(hyperopt's trial id + 1, the order in which trials were suggested) once results are back, so
the run tree has the same shape as a sequential search's.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from typing import Any
from urllib.parse import urlparse

from ..adapters.models import value_text
from ..core.errors import ConfigError
from ..core.outcome import TrialOutcome, TrialState
from ..store.runs import child_runs
from ..store.tags import STATUS_TAG, TRIAL_NUMBER_TAG, VALS_TAG
from ..store.writer import param_text
from .resume import has_result, restored_outcome, vals_json
from .trial import TrialRunner

log = logging.getLogger("flair_mlflow")

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
    if is_local_master(spark_master):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers use this environment
    builder = SparkSession.builder.appName("flair-mlflow").master(spark_master or f"local[{parallelism}]")
    builder = builder.config("spark.ui.enabled", "false").config("spark.python.worker.reuse", "true")
    session = builder.getOrCreate()
    return SparkTrials(parallelism=parallelism, spark_session=session)


class SparkObjective:
    """The function hyperopt ships to Spark workers: one trial, its outcome sent back whole."""

    def __init__(self, runner: TrialRunner, threads: int) -> None:
        self.runner = runner
        self.threads = threads

    def __call__(self, sampled: dict[str, Any]) -> dict[str, Any]:
        import torch

        torch.set_num_threads(self.threads)
        outcome = self.runner.run(0, sampled)
        result = outcome.hyperopt_result()
        result["outcome"] = _plain_outcome(outcome)
        return result


def _plain_outcome(outcome: TrialOutcome) -> dict[str, Any]:
    data = dataclasses.asdict(outcome)
    data["params"] = {
        k: v if isinstance(v, (str, int, float, bool, type(None))) else value_text(v) for k, v in outcome.params.items()
    }
    return data


def every_trial(trials: Any) -> list[dict[str, Any]]:
    """All of hyperopt's trial documents in trial-id order, cancelled and failed ones included.

    ``Trials.trials`` leaves out trials in the cancelled and error states, which are just the ones
    a search must account for when SparkTrials stops early or loses a task.
    """
    return sorted(getattr(trials, "_dynamic_trials", trials.trials), key=lambda t: t["tid"])


def outcomes_of_trials(trials: Any, finished_only: bool = True) -> list[TrialOutcome]:
    """The outcomes Spark trials hold, in trial-id order, numbered by it (trial id + 1).

    With ``finished_only`` a trial still running is left out; otherwise every trial counts but one
    that SparkTrials cancelled (an early stop, a time budget) before it returned, and one whose
    Spark task itself failed (a worker lost) becomes a failed outcome.
    """
    from hyperopt import STATUS_FAIL, STATUS_OK
    from hyperopt.base import JOB_STATE_CANCEL

    outcomes: list[TrialOutcome] = []
    for trial in every_trial(trials):
        number = trial["tid"] + 1
        result = trial.get("result") or {}
        if "outcome" in result:
            outcome = TrialOutcome(**result["outcome"])
        elif trial.get("state") == JOB_STATE_CANCEL or (finished_only and result.get("status") not in (STATUS_OK, STATUS_FAIL)):
            continue
        else:
            outcome = TrialOutcome(number=number, params={}, status=TrialState.FAILED, error=f"SparkTaskFailed: {_task_error(trial)}")
        outcome.number = number
        outcomes.append(outcome)
    return outcomes


def collect_outcomes(trials: Any, writer: Any) -> list[TrialOutcome]:
    """Every trial's outcome once the search ends, each child run renamed ``trial-NNN`` by trial id."""
    outcomes = outcomes_of_trials(trials, finished_only=False)
    vals = {trial["tid"] + 1: trial.get("misc", {}).get("vals", {}) for trial in every_trial(trials)}
    for outcome in outcomes:
        if outcome.run_id:  # hyperopt's own record of the point lets a sequential --resume continue
            _number_run(writer, outcome.run_id, outcome.number, vals[outcome.number])
    return outcomes


def settle_unreturned_trials(trials: Any, writer: Any, parent_run_id: str, runner: TrialRunner, space: Any,
                             outcomes: list[TrialOutcome]) -> list[TrialOutcome]:  # fmt: skip
    """Account for the trials whose result never came back to the driver; returns every outcome.

    SparkTrials cancels the trials still running when a search stops early (no improvement, time
    budget) and drops the result of one that finished in the same instant; a trial whose Spark
    task failed (its Python worker was killed, ran out of memory, lost its host) leaves its child
    run RUNNING. Each such run is matched to its trial by its logged parameters and numbered. One
    that FINISHED (or FAILED) with its metrics becomes that trial's outcome, so no completed
    training is lost; one cut off by a cancellation ends KILLED, tagged ``cancelled``; one cut off
    by a failed task ends FAILED with ``error.class`` ``SparkTaskFailed``, as a trial that raised.
    """
    import hyperopt
    from hyperopt.base import JOB_STATE_CANCEL, JOB_STATE_ERROR

    by_number = {outcome.number: outcome for outcome in outcomes}
    experiment_id = writer.client.get_run(parent_run_id).info.experiment_id
    unnumbered = [r for r in child_runs(writer.client, experiment_id, parent_run_id) if TRIAL_NUMBER_TAG not in r.data.tags]
    for trial in every_trial(trials):
        state = trial.get("state")
        if state not in (JOB_STATE_CANCEL, JOB_STATE_ERROR) or "outcome" in (trial.get("result") or {}):
            continue
        number = trial["tid"] + 1
        vals = trial.get("misc", {}).get("vals", {})
        params = runner.trial_params(hyperopt.space_eval(space, {k: v[0] for k, v in vals.items() if v}))
        logged = {k: param_text(v) for k, v in runner.logged_params(params).items()}
        run = next((r for r in unnumbered if all(r.data.params.get(k) == v for k, v in logged.items())), None)
        if run is None:
            continue  # the task failed before the trial created its run: its outcome says so
        unnumbered.remove(run)
        _number_run(writer, run.info.run_id, number, vals)
        if has_result(run):
            by_number[number] = restored_outcome(writer.client, run, number, params, None)
        elif state == JOB_STATE_CANCEL:
            writer.set_tags(run.info.run_id, {STATUS_TAG: TrialState.CANCELLED.value})
            writer.end(run.info.run_id, "KILLED")
        else:
            error = _task_error(trial)
            writer.fail(run.info.run_id, "SparkTaskFailed", error)
            by_number[number] = TrialOutcome(number=number, params=params, status=TrialState.FAILED, run_id=run.info.run_id,
                                             error=f"SparkTaskFailed: {error}")  # fmt: skip
    for run in unnumbered:  # a run no trial document accounts for: cut off as the search ended
        if run.info.status == "RUNNING":
            writer.set_tags(run.info.run_id, {STATUS_TAG: TrialState.CANCELLED.value})
            writer.end(run.info.run_id, "KILLED")
    return sorted(by_number.values(), key=lambda o: o.number)


def _number_run(writer: Any, run_id: str, number: int, vals: dict[str, Any]) -> None:
    """Give a worker's ``trial-pending`` run its trial's name, number and hyperopt point."""
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

    writer.set_tags(run_id, {MLFLOW_RUN_NAME: f"trial-{number:03d}", TRIAL_NUMBER_TAG: str(number), VALS_TAG: vals_json(vals)})


def _task_error(trial: dict[str, Any]) -> str:
    """One line on why Spark lost the task, from what SparkTrials kept: the exception's type and,
    for an exception raised in the worker's Python code, its traceback."""
    kind, detail = (list(trial.get("misc", {}).get("error") or ()) + [None, None])[:2]
    kind = str(kind or "").removeprefix("<class '").removesuffix("'>").rsplit(".", 1)[-1] or "an error"
    lines = [line.strip() for line in str(detail or "").splitlines() if line.strip()]
    if lines:
        return " ".join(f"the Spark task running this trial failed: {lines[-1]}".split())[:1000]
    return (f"the Spark task running this trial failed ({kind}): its Python worker exited, was killed or ran out "
            "of memory; the Spark driver's log has the cause")
