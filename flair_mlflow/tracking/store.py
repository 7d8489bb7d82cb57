"""A store probed before anything is written (a bad URI fails in seconds, no run made), and the run a command writes."""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import mlflow
from mlflow.exceptions import MlflowException

from ..errors import ConfigError, one_line
from .mlflow_internals import probe_server
from .writer import RunWriter, check_creatable, redact_uri, sqlite_path

log = logging.getLogger("flair_mlflow")


def connect(tracking_uri: str | None = None) -> RunWriter:
    """A probed writer for ``tracking_uri`` (None: MLflow's default); a ConfigError when the store is not usable."""
    writer = RunWriter(tracking_uri)
    uri, path = writer.tracking_uri, sqlite_path(writer.tracking_uri)
    try:
        if path is not None and not (path.is_file() and path.stat().st_size > 0):
            check_creatable(path)  # built when the first run is
        elif uri.startswith(("http://", "https://")):
            probe_server(uri)
        else:
            writer.client.search_experiments(max_results=1)
    except ConfigError:
        raise
    except Exception as error:
        raise _unreachable(uri, error) from None
    return writer


def _unreachable(tracking_uri: str, error: Exception) -> ConfigError:
    where, message = redact_uri(tracking_uri), redact_uri(one_line(error, 200))
    code = str(getattr(error, "error_code", ""))
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED") or re.search(r"\b40[13]\b", str(error)):
        refused = f"the tracking server '{where}' refused the credentials ({code or 'HTTP 401/403'})"
        advice = "check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)"
        return ConfigError("tracking_uri", f"{refused}; {advice}")
    if "unsupported uri" in str(error).lower() or "could not find a registered" in str(error).lower():
        known = "give sqlite:///FILE, http(s)://HOST or a database URL (postgresql://, mysql://, mssql://)"
        return ConfigError("tracking_uri", f"'{where}' is not a store MLflow knows: {known}")
    path = sqlite_path(tracking_uri)
    if path is not None:
        return ConfigError("tracking_uri", f"cannot open the sqlite store '{path}': {message}; {_advice(path)}")
    return ConfigError("tracking_uri", f"cannot reach the tracking store '{where}': {message}")


def _advice(path: Any) -> str:
    """What to do with a sqlite file MLflow cannot open (not a database, or left half-migrated)."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
            runs = int(connection.execute("SELECT count(*) FROM runs").fetchone()[0])
    except sqlite3.Error:
        return "it is not an MLflow store: give another file"
    if runs:
        return f"it holds {runs} runs: keep a copy, then try 'mlflow db upgrade sqlite:///{path}'"
    return f"it holds no runs: delete it ({path}) and run the command again"


@dataclass(frozen=True)
class AdoptedRun:
    """The run a command writes into, and whether the command created it (and so must end it)."""

    run_id: str
    experiment_id: str
    created: bool


def adopt_or_create_run(writer: RunWriter, experiment: str | None, run_name: str, tags: Mapping[str, Any] = {},
                        parent_run_id: str | None = None, refuse: str | None = None) -> AdoptedRun:  # fmt: skip
    """The run ``mlflow run`` opened or the active one, else a new one; ``refuse``: a run id not to be adopted."""
    active = mlflow.active_run()
    run_id = os.environ.get("MLFLOW_RUN_ID") or (active.info.run_id if active else None)
    if run_id and run_id == refuse:
        raise ConfigError("search_run_id", "is the active MLflow run; end it, or register into a new run")
    if run_id:
        writer.set_tags(run_id, {"mlflow.runName": run_name, **tags})
        return AdoptedRun(run_id, writer.client.get_run(run_id).info.experiment_id, False)
    if parent_run_id:
        experiment_id = writer.client.get_run(parent_run_id).info.experiment_id
        return AdoptedRun(writer.create_child(experiment_id, parent_run_id, run_name, tags), experiment_id, True)
    experiment_id = experiment_id_for(writer.client, experiment)
    run = writer.client.create_run(experiment_id, run_name=run_name, tags={k: str(v) for k, v in tags.items()})
    return AdoptedRun(run.info.run_id, experiment_id, True)


@contextmanager
def ending(writer: RunWriter, run: AdoptedRun) -> Iterator[None]:
    """Around a command's work: KILLED on Ctrl-C, FAILED on an error, FINISHED when done if the command created it."""
    try:
        yield
    except KeyboardInterrupt:
        writer.end(run.run_id, "KILLED")
        raise
    except BaseException as error:
        writer.fail(run.run_id, type(error).__name__, error)
        raise
    if run.created:
        writer.end(run.run_id, "FINISHED")


def experiment_id_for(client: mlflow.MlflowClient, name: str | None) -> str:
    """The named experiment's id, created or restored if need be; without a name, MLflow's variables', else "0"."""
    if not name and os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return os.environ["MLFLOW_EXPERIMENT_ID"]
    name = name or os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if not name:
        return "0"
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException:  # another command created it a moment ago
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def say_where(writer: RunWriter, experiment_id: str, wanted: str | None) -> None:
    """One line when the run was made elsewhere (``mlflow run`` creates it first) than the file's experiment."""
    found = writer.client.get_experiment(experiment_id).name
    if wanted and found != wanted:
        message = "the run is in experiment '%s', where `mlflow run` created it, not in the experiment file's '%s'; "
        log.warning(message + "to file it there: mlflow run . --experiment-name %s", found, wanted, wanted)
