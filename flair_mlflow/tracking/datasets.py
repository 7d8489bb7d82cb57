"""A run's corpus as MLflow dataset inputs, so the UI's Datasets column shows (and filters by) what a run trained on.

Built from plain summaries (see ``corpus.content.split_summaries``) with MLflow's public entities; one
``log_inputs`` call per run.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT


def dataset_inputs(name: str, source: Mapping[str, Any], splits: Mapping[str, Mapping[str, Any]]) -> list[DatasetInput]:
    """One input per split (context ``train``/``dev``/``test``); ``source``: ``{"uri": folder}`` for local
    files, else the Flair dataset and its arguments; ``splits``: each split's digest and profile."""
    source_type = "local" if "uri" in source else "code"
    source_json = json.dumps(dict(source) if "uri" in source else {"tags": dict(source)}, sort_keys=True, default=str)
    return [
        DatasetInput(
            Dataset(
                name=name,
                digest=split["digest"],
                source_type=source_type,
                source=source_json,
                profile=json.dumps(split["profile"], sort_keys=True),
            ),
            tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)],
        )
        for context, split in splits.items()
    ]
