"""Logging a saved Flair model as a pyfunc model of one run through an explicit client: ``log_model``'s own steps,
as ``mlflow.pyfunc.log_model`` writes only to the process-wide tracking URI."""

from __future__ import annotations

import os
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow
from mlflow.entities import LoggedModelOutput, LoggedModelStatus
from mlflow.models import Model

from . import pyfunc_model

MODEL_NAME = "model"
EXAMPLE_TEXTS = ["George Washington went to Washington .", "What is the capital of France ?"]


def pip_requirements() -> list[str]:
    """What loading the model elsewhere needs: the versions it was trained with."""
    requirements = []
    for package in ("mlflow", "flair", "torch", "transformers", "pandas"):
        try:
            requirements.append(f"{package}=={version(package).split('+')[0]}")
        except PackageNotFoundError:
            requirements.append(package)
    return requirements


def log_flair_model(client: mlflow.MlflowClient, run_id: str, model_file: str | os.PathLike, task: str, label_type: str,
                    name: str = MODEL_NAME) -> str:  # fmt: skip
    """Log a saved Flair model as a pyfunc model of run ``run_id``; returns its ``models:/<model id>`` URI."""
    run = client.get_run(run_id)
    params = dict(run.data.params)
    logged = client.create_logged_model(run.info.experiment_id, name=name, source_run_id=run_id, params=params)
    try:
        with tempfile.TemporaryDirectory(prefix="flair-mlflow-model-") as folder:
            ids = {"run_id": run_id, "model_uuid": logged.model_id, "model_id": logged.model_id}
            # the wrapper as model code, so loading needs neither flair_mlflow nor embeddings; the example texts
            # and predict's type hints make the signature: texts in, spans or labels out
            mlflow.pyfunc.save_model(
                str(Path(folder) / "model"),
                python_model=str(Path(pyfunc_model.__file__)),
                artifacts={pyfunc_model.FLAIR_MODEL_ARTIFACT: str(model_file)},
                input_example=list(EXAMPLE_TEXTS),
                pip_requirements=pip_requirements(),
                metadata={"flair_mlflow.task": task, "flair_mlflow.label_type": label_type},
                mlflow_model=Model(artifact_path=logged.artifact_location, **ids),
            )
            client.log_model_artifacts(logged.model_id, str(Path(folder) / "model"))
    except BaseException:
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
    return f"models:/{logged.model_id}"
