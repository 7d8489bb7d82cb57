"""A range test tracked in MLflow: what ``find_learning_rate`` and the ``lr_find`` entry point both log.

``find_learning_rate(trainer, base_path, Adam)`` in Python logs into the active MLflow run, or a
new run in the current experiment (``mlflow.set_experiment``, ``MLFLOW_EXPERIMENT_NAME``/``_ID``),
the params, curve metrics, suggestion and files ``flair-mlflow lr-find`` logs; the model's
configuration is read off the trainer, as far as a model object tells it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

from ..core.lr_rules import LRSuggestion
from ..store.lr_log import log_lr_find_to_mlflow
from ..store.runs import adopt_or_create_run, connect, ending
from ..store.tags import LR_FIND_TAG, TASK_TAG
from ..store.writer import RunWriter
from .corpus_origin import corpus_settings, downsampled_fraction
from .lr_plot import Plotter
from .models import TAGGER_ARGUMENTS, logged_values

log = logging.getLogger("flair_mlflow")

#: Flair's model classes by the task names of an experiment file
TASKS = {"SequenceTagger": "sequence_tagging", "TextClassifier": "text_classification"}


def log_range_test(
    writer: RunWriter, run_id: str, tsv_path: Path, suggestion: LRSuggestion, params: Mapping[str, Any] | None = None
) -> Path:
    """The plot beside the TSV, then params, curve, suggestion and files into run ``run_id``; the plot's path."""
    png_path = Plotter().plot_learning_rate(tsv_path, suggestion=suggestion)
    log_lr_find_to_mlflow(tsv_path, suggestion, png_path, params=params, run_id=run_id, writer=writer)
    return png_path


def trainer_params(trainer: Any) -> dict[str, Any]:
    """What the entry point logs of the experiment, read off the trainer's model and corpus."""
    model, corpus = trainer.model, trainer.corpus
    named = corpus_settings(corpus)
    params: dict[str, Any] = {
        "task": TASKS.get(type(model).__name__, type(model).__name__),
        "corpus": named["corpus"]["name"] if named else getattr(corpus, "name", "corpus"),
        "label_type": getattr(model, "label_type", None),
        "downsample": downsampled_fraction(corpus),
    }
    if getattr(model, "embeddings", None) is not None:
        params["embeddings"] = model.embeddings
    for name in TAGGER_ARGUMENTS:
        value = getattr(model, name, None)
        if isinstance(value, (bool, int, float, str)):
            params[name] = value
    return logged_values(params)


def track_range_test(trainer: Any, tsv_path: Path, suggestion: LRSuggestion, settings: Mapping[str, Any]) -> str:
    """Log a range test run in Python into the active run, or a new ``lr_find`` run; returns its id."""
    writer = connect()
    params = {**trainer_params(trainer), **settings}
    run = adopt_or_create_run(writer, None, "lr_find", {LR_FIND_TAG: "true", TASK_TAG: params["task"]})
    with ending(writer, run):
        log_range_test(writer, run.run_id, tsv_path, suggestion, params)
    artifacts = writer.client.get_run(run.run_id).info.artifact_uri
    log.info("LR finder: logged to MLflow run %s (files in %s)", run.run_id, artifacts)
    return run.run_id
