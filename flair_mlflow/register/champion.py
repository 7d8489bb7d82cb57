"""The registry: a new model version, and the champion rule deciding its alias, which compares test scores only
between versions scored the same way (same metric, same test split)."""

from __future__ import annotations

import math
from typing import Any, Mapping

import mlflow
from mlflow.exceptions import MlflowException

from ..tracking.tags import METRIC_TAG, REGISTER_RUN_TAG, SCORE_TAG, TEST_SPLIT_TAG

CHAMPION = "champion"
CHALLENGER = "challenger"
#: The run metric the champion rule compares (higher is better: Flair's main score on test).
SCORE_METRIC = "test_score"


def register_version(client: mlflow.MlflowClient, name: str, model_uri: str, run_id: str, score: float, metric: str,
                     test_split: str, tags: Mapping[str, str], source: str) -> tuple[str, str, str]:  # fmt: skip
    """Register ``model_uri`` (``models:/<model id>``) as a new version of ``name``; returns (version, alias, why)."""
    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    scored = {METRIC_TAG: metric, TEST_SPLIT_TAG: test_split, SCORE_TAG: repr(score), REGISTER_RUN_TAG: run_id}
    version_tags = {**tags, **scored}
    model_id = model_uri.removeprefix("models:/")
    # MLflow 3's models:/<id> source, but for a local store, whose registry would look the id up in the
    # process-wide tracking store (which --tracking-uri leaves alone): there, the files' own location
    served = client.tracking_uri.startswith(("http://", "https://", "databricks"))
    source = model_uri if served else client.get_logged_model(model_id).artifact_location
    created = client.create_model_version(name, source, run_id=run_id, tags=version_tags, model_id=model_id)
    version = str(created.version)
    alias, reason = assign_alias(client, name, version, score, metric, test_split)
    description = f"{metric} = {score:.4f} on {test_split}; {source}; {alias}: {reason}"
    client.update_model_version(name, version, description=description)
    return version, alias, reason


def assign_alias(client: mlflow.MlflowClient, name: str, version: str, score: float, metric: str,
                 test_split: str) -> tuple[str, str]:  # fmt: skip
    """``champion`` when ``version`` beats the champion scored the same way, else ``challenger``; (alias, why)."""
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:  # no such alias, or no such model yet
        champion = None
    alias, reason = CHALLENGER, ""
    if champion is None or str(champion.version) == str(version):
        alias, reason = CHAMPION, f"first version with a score: {metric} = {score:.4f}"
    else:
        old_metric, old_split = champion.tags.get(METRIC_TAG), champion.tags.get(TEST_SPLIT_TAG)
        old_score = version_score(client, champion)
        if old_metric != metric or old_split != test_split or old_score is None:
            reason = (
                f"not comparable with champion version {champion.version} (scored as {old_metric or 'unknown'} on "
                f"{old_split or 'an unknown split'}; this one as {metric} on {test_split}); promote it by hand with "
                f"MlflowClient().set_registered_model_alias('{name}', '{CHAMPION}', '{version}')"
            )
        elif score > old_score:
            alias = CHAMPION
            reason = f"{metric} {score:.4f} beats champion version {champion.version} ({old_score:.4f})"
        else:
            reason = f"{metric} {score:.4f} does not beat champion version {champion.version} ({old_score:.4f})"
    client.set_registered_model_alias(name, alias, str(version))
    return alias, reason


def version_score(client: mlflow.MlflowClient, version: Any) -> float | None:
    """A version's test score: its tag, else its run's metric; None where neither is a number."""
    text = version.tags.get(SCORE_TAG)
    try:
        value = float(text) if text is not None else None
    except ValueError:
        value = None
    if value is None and version.run_id:
        value = client.get_run(version.run_id).data.metrics.get(SCORE_METRIC)
    return value if value is not None and math.isfinite(value) else None
