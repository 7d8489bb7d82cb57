"""Reading and starting runs: one way to reach a store, to adopt or create a run, to read a search back.

Knows MLflow and nothing of Flair. A probe checks the store before anything is written, so a
mistyped URI or wrong credentials stop a command in seconds, with one line, and no run.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking.registry import UnsupportedModelRegistryStoreURIException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from ..core.errors import ConfigError
from ..core.quiet import quiet_loggers
from .sqlite_store import ensure_sqlite_store
from .tags import RESOLVED_EXPERIMENT_FILE, SEARCH_TAG, TRIAL_NUMBER_TAG
from .writer import RunWriter, redact_uri

#: The probe alone retries once, briefly: MLflow's default (7 retries with backoff, minutes in all)
#: is right for a running search's writes, which must outlast a server restart, but would make
#: a mistyped URI hang for minutes.
PROBE_RETRIES = {"max_retries": 1, "backoff_factor": 1, "timeout": 10}


def connect(tracking_uri: str | None = None) -> RunWriter:
    """A writer for ``tracking_uri`` (MLflow's default when None), probed: raises ConfigError when
    the store cannot be reached, refuses the credentials or is not one MLflow knows. A local sqlite
    store is created (or upgraded) whole first, one command at a time (:mod:`.sqlite_store`).
    Changes no process-wide setting."""
    tracking_uri = tracking_uri or mlflow.get_tracking_uri()
    try:
        ensure_sqlite_store(tracking_uri)
        writer = RunWriter(tracking_uri)
        with quiet_loggers(("urllib3.connectionpool",), logging.ERROR):  # its "Retrying ..." of the probe's retry
            _probe(writer)
    except ConfigError:
        raise
    except Exception as error:
        raise _unreachable(tracking_uri, error) from None
    return writer


def _probe(writer: RunWriter) -> None:
    if not writer.tracking_uri.startswith(("http://", "https://")):
        writer.client.search_experiments(max_results=1)
        return
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    endpoint = "/api/2.0/mlflow/experiments/search"
    response = http_request(
        get_default_host_creds(writer.tracking_uri), endpoint, "POST", json={"max_results": 1}, **PROBE_RETRIES
    )
    verify_rest_response(response, endpoint)


def _unreachable(tracking_uri: str, error: Exception) -> ConfigError:
    where = redact_uri(tracking_uri)
    code = str(getattr(error, "error_code", ""))
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED") or re.search(r"\b40[13]\b", str(error)):
        return ConfigError(
            "tracking_uri",
            f"the tracking server '{where}' refused the credentials ({code or 'HTTP 401/403'}); "
            "check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)",
        )
    if isinstance(error, UnsupportedModelRegistryStoreURIException) or "unsupported uri" in str(error).lower():
        return ConfigError(
            "tracking_uri",
            f"'{where}' is not a store MLflow knows: give a folder, sqlite:///FILE, http(s)://HOST "
            "or a database URL (postgresql://, mysql://, mssql://)",
        )
    message = redact_uri(" ".join(str(error).split())[:200])
    return ConfigError("tracking_uri", f"cannot reach the tracking store '{where}': {message}")


@dataclass(frozen=True)
class AdoptedRun:
    """The run a command writes into, and whether the command created it (and so must end it)."""

    run_id: str
    experiment_id: str
    created: bool


def adopt_or_create_run(
    writer: RunWriter,
    experiment: str | None,
    run_name: str,
    tags: Mapping[str, Any] | None = None,
    parent_run_id: str | None = None,
    refuse: str | None = None,
) -> AdoptedRun:
    """The run ``mlflow run`` opened (``MLFLOW_RUN_ID``) or the caller's active run, else a new one:
    nested under ``parent_run_id`` when given, else in the named experiment. ``refuse`` is a run id
    that must not be adopted (the search a registration reads from)."""
    active = mlflow.active_run()
    run_id = os.environ.get("MLFLOW_RUN_ID") or (active.info.run_id if active else None)
    if run_id and run_id == refuse:
        raise ConfigError("search_run_id", "is the active MLflow run; end it, or register into a new run")
    if run_id:
        adopted = AdoptedRun(run_id, writer.client.get_run(run_id).info.experiment_id, False)
    elif parent_run_id:
        experiment_id = writer.client.get_run(parent_run_id).info.experiment_id
        run_id = writer.create_child(
            experiment_id, parent_run_id, run_name, tags={k: str(v) for k, v in (tags or {}).items()}
        )
        return AdoptedRun(run_id, experiment_id, True)
    else:
        experiment_id = experiment_id_for(writer.client, experiment)
        run = writer.client.create_run(
            experiment_id, run_name=run_name, tags={k: str(v) for k, v in (tags or {}).items()}
        )
        return AdoptedRun(run.info.run_id, experiment_id, True)
    if tags:
        writer.set_tags(adopted.run_id, tags)
    return adopted


@contextmanager
def ending(writer: RunWriter, run: AdoptedRun) -> Iterator[None]:
    """Around a command's work in ``run``: KILLED on Ctrl-C, FAILED with the error's tags on any other
    error, FINISHED when the work is done and the command created the run (an adopted one is its owner's)."""
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
    """The id of the named experiment, created if needed; MLflow's default experiment without a name."""
    if not name:
        env_id = os.environ.get("MLFLOW_EXPERIMENT_ID")
        if env_id:
            return env_id
        env_name = os.environ.get("MLFLOW_EXPERIMENT_NAME")
        if not env_name:
            return "0"
        name = env_name
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


def get_search_run(client: mlflow.MlflowClient, run_id: str, field: str) -> Any:
    """The parent run of a search, or a one-line error on ``field`` that says what the id is instead.

    Shared by ``--resume`` and ``register``: a user who pastes a trial's id, a deleted run's or
    a mistyped one learns which, and a store that cannot be read is named as such.
    """
    run_id = str(run_id or "").strip()
    if not run_id:
        raise ConfigError(field, "is empty; give the run id of a search (its parent run)")
    where = redact_uri(client.tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException as error:
        if (
            error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")
            or "not found" in str(error).lower()
        ):
            raise ConfigError(field, f"no run '{run_id}' in the tracking store '{where}'") from None
        message = redact_uri(" ".join(str(error).split())[:200])
        raise ConfigError("tracking_uri", f"cannot read run '{run_id}' from '{where}': {message}") from None
    except Exception as error:  # connection errors surface as requests or OS errors
        message = redact_uri(" ".join(str(error).split())[:200])
        raise ConfigError("tracking_uri", f"cannot reach the tracking store '{where}': {message}") from None
    tags = run.data.tags
    if run.info.lifecycle_stage == "deleted":
        raise ConfigError(field, f"run '{run_id}' is deleted; restore it in MLflow first")
    if tags.get(SEARCH_TAG) != "true":
        parent = tags.get(MLFLOW_PARENT_RUN_ID)
        if parent and TRIAL_NUMBER_TAG in tags:
            problem = f"run '{run_id}' is trial {tags[TRIAL_NUMBER_TAG]} of search '{parent}'; give the search's id"
            raise ConfigError(field, problem)
        raise ConfigError(field, f"run '{run_id}' is not a search (it has no tag {SEARCH_TAG}=true)")
    return run


def child_runs(client: mlflow.MlflowClient, experiment_id: str, parent_run_id: str) -> list[Any]:
    """Every child run of the parent, all pages."""
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
            max_results=1000,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def artifact_text(client: mlflow.MlflowClient, run_id: str, name: str) -> str | None:
    """A small text artefact of a run, or None where it is absent or unreadable."""
    try:
        with tempfile.TemporaryDirectory(prefix="flair-mlflow-artifact-") as folder:
            return Path(client.download_artifacts(run_id, name, folder)).read_text(encoding="utf-8")
    except Exception:  # absent artefacts raise differently per store
        return None


def resolved_experiment_text(client: mlflow.MlflowClient, run_id: str) -> str | None:
    """The search's experiment as it ran (after overrides): its parent's ``experiment_resolved.yaml``."""
    return artifact_text(client, run_id, RESOLVED_EXPERIMENT_FILE)
