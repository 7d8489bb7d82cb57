"""The best trial's own model, kept by the search (``keep_models``): registered as trained, scored on test only."""

from __future__ import annotations

import tempfile
from typing import Any

import mlflow

from ..errors import ConfigError
from ..tracking.tags import KEPT_MODEL_TAG


def kept_model_id(client: mlflow.MlflowClient, trial_run_id: str | None) -> str:
    """The logged model the best trial's run kept; refused (before any run is created) where there is none."""
    if not trial_run_id:
        raise ConfigError("from_trial", "needs a search run id: the model registered is its best trial's")
    model_id = client.get_run(trial_run_id).data.tags.get(KEPT_MODEL_TAG)
    if not model_id:
        why = "keep_models: 0, or the search predates keep_models"
        problem = f"the best trial's model (run {trial_run_id}) was not kept ({why}); register without --from-trial"
        raise ConfigError("from_trial", f"{problem} to train it again")
    return model_id


def test_score(client: mlflow.MlflowClient, model_id: str, corpus: Any, label_type: str, metric: tuple, batch: int) -> float:  # fmt: skip
    """The kept model's main score on the test split, measured as a training's final evaluation is."""
    location = client.get_logged_model(model_id).artifact_location
    with tempfile.TemporaryDirectory(prefix="flair-mlflow-trial-model-") as folder:
        path = mlflow.artifacts.download_artifacts(location, dst_path=folder, tracking_uri=client.tracking_uri)
        model = mlflow.pyfunc.load_model(path).unwrap_python_model().model
    options = {"gold_label_type": label_type, "main_evaluation_metric": metric, "mini_batch_size": batch}
    return float(model.evaluate(corpus.test, **options).main_score)
