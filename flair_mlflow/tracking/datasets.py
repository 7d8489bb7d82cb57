"""A run's corpus as MLflow dataset inputs, so the UI's Datasets column shows (and filters by) what a run trained on."""

from __future__ import annotations

import json
from typing import Any, Mapping

from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT


def dataset_inputs(name: str, source: Mapping[str, Any], splits: Mapping[str, Mapping[str, Any]]) -> list[DatasetInput]:
    """One input per split (its context); ``source``: ``{"uri": folder}``, else the Flair dataset and its arguments."""
    source_type = "local" if "uri" in source else "code"
    source_json = json.dumps(dict(source) if "uri" in source else {"tags": dict(source)}, sort_keys=True, default=str)
    inputs = []
    for context, split in splits.items():
        profile = json.dumps(split["profile"], sort_keys=True)
        dataset = Dataset(name, split["digest"], source_type, source_json, profile=profile)
        inputs.append(DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)]))
    return inputs
