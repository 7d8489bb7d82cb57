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

from .errors import ConfigError
from .objective import TrialOutcome, TrialRunner
from .resume import VALS_TAG, vals_json

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
    from .tracking import param_value

    data = dataclasses.asdict(outcome)
    data["params"] = {
        k: v if isinstance(v, (str, int, float, bool, type(None))) else param_value(v) for k, v in outcome.params.items()
    }
    return data


def collect_outcomes(trials: Any, writer: Any) -> list[TrialOutcome]:
    """Outcomes in trial-id order, each child run renamed ``trial-NNN`` by that order."""
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

    outcomes: list[TrialOutcome] = []
    for trial in sorted(trials.trials, key=lambda t: t["tid"]):
        number = trial["tid"] + 1
        result = trial.get("result") or {}
        if "outcome" in result:
            outcome = TrialOutcome(**result["outcome"])
        else:  # the task itself failed (worker lost, cancelled): no run may exist
            error = trial.get("misc", {}).get("error")
            outcome = TrialOutcome(number=number, params={}, status="fail", error=str(error or "the Spark task failed"))
        outcome.number = number
        if outcome.run_id:  # hyperopt's own record of the point lets a sequential --resume continue
            writer.set_tags(outcome.run_id, {
                MLFLOW_RUN_NAME: f"trial-{number:03d}",
                "flair_mlflow.trial_number": str(number),
                VALS_TAG: vals_json(trial.get("misc", {}).get("vals", {})),
            })  # fmt: skip
        outcomes.append(outcome)
    return outcomes
