"""A search read back from the store, one way for ``register``, ``trials`` and ``--resume`` alike."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any, Mapping

import mlflow
import yaml
from mlflow.exceptions import MlflowException

from ..config import ExperimentConfig
from ..errors import ConfigError, one_line
from .tags import NOT_REBUILDABLE_TAG, PARENT_RUN_ID_TAG, RESOLVED_EXPERIMENT_FILE, SEARCH_TAG, TRIAL_NUMBER_TAG
from .writer import redact_uri

FINAL_SCORE = "final_score"


def get_search_run(client: mlflow.MlflowClient, run_id: str, field: str) -> Any:
    """The parent run of a search, or one line on ``field`` saying what the id is instead (a trial's, none, ...)."""
    run_id = str(run_id or "").strip()
    if not run_id:
        raise ConfigError(field, "is empty; give the run id of a search (its parent run)")
    where = redact_uri(client.tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE") or "not found" in str(error):
            raise ConfigError(field, f"no run '{run_id}' in the tracking store '{where}'") from None
        reason = one_line(error, 200)
        raise ConfigError("tracking_uri", f"cannot read run '{run_id}' from '{where}': {reason}") from None
    except Exception as error:  # connection errors surface as requests or OS errors
        reason = one_line(error, 200)
        raise ConfigError("tracking_uri", f"cannot reach the tracking store '{where}': {reason}") from None
    tags = run.data.tags
    if run.info.lifecycle_stage == "deleted":
        raise ConfigError(field, f"run '{run_id}' is deleted; restore it in MLflow first")
    if tags.get(SEARCH_TAG) != "true":
        if tags.get(PARENT_RUN_ID_TAG) and TRIAL_NUMBER_TAG in tags:
            trial, parent = tags[TRIAL_NUMBER_TAG], tags[PARENT_RUN_ID_TAG]
            raise ConfigError(field, f"run '{run_id}' is trial {trial} of search '{parent}'; give the search's id")
        raise ConfigError(field, f"run '{run_id}' is not a search (it has no tag {SEARCH_TAG}=true)")
    return run


def child_runs(client: mlflow.MlflowClient, experiment_id: str, parent_run_id: str, where: str = "") -> list[Any]:
    """Every child run of the parent (``where``: more of the filter, such as ``attributes.status = 'RUNNING'``)."""
    query = f"tags.{PARENT_RUN_ID_TAG} = '{parent_run_id}'" + (f" and {where}" if where else "")
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string=query, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def artifact_text(client: mlflow.MlflowClient, run_id: str, name: str = RESOLVED_EXPERIMENT_FILE) -> str | None:
    """A small text artefact of a run (by default the search's ``experiment_resolved.yaml``), or None."""
    try:
        with tempfile.TemporaryDirectory(prefix="flair-mlflow-artifact-") as folder:
            return Path(client.download_artifacts(run_id, name, folder)).read_text(encoding="utf-8")
    except Exception:  # absent artefacts raise differently per store
        return None


def trial_number(run: Any) -> int:
    """The trial's number from its tag; 0 where it has none."""
    text = run.data.tags.get(TRIAL_NUMBER_TAG, "")
    return int(text) if text.isdigit() else 0


def has_final_score(run: Any) -> bool:
    """A trial that finished with a finite ``final_score``: one that can be ranked."""
    return run.info.status == "FINISHED" and math.isfinite(run.data.metrics.get(FINAL_SCORE, math.nan))


def ranked_trial_runs(client: mlflow.MlflowClient, search_run: Any) -> list[Any]:
    """The search's trial runs: those with a final score best first, then the rest; ties in trial order."""
    maximises = search_run.data.params.get("optimization_value", "dev_score") in ("dev_score", "score")
    sign = -1.0 if maximises else 1.0

    def key(run: Any) -> tuple[int, float, int]:
        scored = has_final_score(run)
        return (0 if scored else 1, sign * run.data.metrics[FINAL_SCORE] if scored else 0.0, trial_number(run))

    return sorted(child_runs(client, search_run.info.experiment_id, search_run.info.run_id), key=key)


def recorded_experiment(
    client: Any, run: Any, field: str, overrides: Mapping[str, Any] | None = None
) -> ExperimentConfig:
    """The experiment a search ran (after overrides), from its parent's ``experiment_resolved.yaml``."""
    run_id = run.info.run_id
    problem = run.data.tags.get(NOT_REBUILDABLE_TAG)
    if problem:
        raise ConfigError(
            field,
            f"search '{run_id}' was started from Python and has no experiment file ({problem}); register it in "
            "Python with register_best(name=...) on the selector or the result, or start a new search that names "
            "its embeddings as an experiment file does",
        )
    text = artifact_text(client, run_id)
    if text is None:
        message = f"search '{run_id}' has no readable experiment_resolved.yaml; give the experiment file"
        raise ConfigError(field, message)
    try:
        return ExperimentConfig.from_dict(yaml.safe_load(text), overrides)
    except (ConfigError, yaml.YAMLError, TypeError, AttributeError) as error:
        problem = f"the experiment_resolved.yaml of search '{run_id}' is not usable ({error}); give the experiment file"
        raise ConfigError(field, problem) from None
