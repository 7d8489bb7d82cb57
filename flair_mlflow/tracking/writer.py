"""Writes to MLflow by explicit run id through :class:`mlflow.MlflowClient` (no active-run stack, so any process can
write a trial's run), batched: one ``log_batch`` per epoch, never per mini-batch."""

from __future__ import annotations

import math
import os
import re
import time
from typing import Any, Mapping

import mlflow
from mlflow.entities import Metric, Param, RunTag

from .sqlite import create_sqlite_store
from .tags import ERROR_CLASS_TAG, ERROR_MESSAGE_TAG, PARENT_RUN_ID_TAG, RUN_NAME_TAG


def redact_uri(text: Any) -> str:
    """``http://user:secret@host`` → ``http://***@host``, so no message repeats a password."""
    return re.sub(r"//[^/@\s]+@", "//***@", str(text))


def _tags(tags: Mapping[str, Any]) -> list[RunTag]:
    return [RunTag(key, str(value)[:5000]) for key, value in tags.items()]  # MLflow's limit


class MetricBuffer:
    """Collects metrics and sends them in one ``log_batch``."""

    def __init__(self, client: mlflow.MlflowClient, run_id: str) -> None:
        self.client, self.run_id, self.pending = client, run_id, []

    def add(self, key: str, value: float, step: int = 0, model_id: str | None = None) -> None:
        value, now = float(value), int(time.time() * 1000)
        self.pending.append(Metric(key, math.nan if math.isnan(value) else value, now, int(step), model_id=model_id))

    def flush(self, tags: Mapping[str, Any] = {}) -> None:
        if self.pending or tags:
            self.client.log_batch(self.run_id, metrics=self.pending, tags=_tags(tags))
        self.pending = []


class RunWriter:
    """Creates and writes runs through explicit run ids; a new local sqlite store is built on first use."""

    def __init__(self, tracking_uri: str | None = None) -> None:
        self.tracking_uri = tracking_uri or mlflow.get_tracking_uri()
        self._client: mlflow.MlflowClient | None = None

    @property
    def client(self) -> mlflow.MlflowClient:
        if self._client is None:
            create_sqlite_store(self.tracking_uri)
            self._client = mlflow.MlflowClient(self.tracking_uri)
        return self._client

    def create_child(self, experiment_id: str, parent_run_id: str, name: str, tags: Mapping[str, Any] = {}) -> str:
        tags = {t.key: t.value for t in _tags({PARENT_RUN_ID_TAG: parent_run_id, RUN_NAME_TAG: name, **tags})}
        return self.client.create_run(experiment_id, run_name=name, tags=tags).info.run_id

    def log_params(self, run_id: str, params: Mapping[str, Any], new_run: bool = False) -> None:
        """Params as text; one ``mlflow run`` logged already stays, a new value going to the tag ``resolved.<name>``."""
        existing = {} if new_run else self.client.get_run(run_id).data.params
        texts = {key: str(value)[:6000] for key, value in params.items()}
        changed = {f"resolved.{k}": v for k, v in texts.items() if k in existing and existing[k].strip("'\"") != v}
        fresh = [Param(k, v) for k, v in texts.items() if k not in existing]
        if fresh or changed:
            self.client.log_batch(run_id, params=fresh, tags=_tags(changed))

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        buffer = MetricBuffer(self.client, run_id)
        for key, value in metrics.items():
            buffer.add(key, value, step)
        buffer.flush()

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        self.client.log_batch(run_id, tags=_tags(tags))

    def log_inputs(self, run_id: str, inputs: list[Any]) -> None:
        """Dataset inputs (``tracking.datasets``); MLflow keeps one record per name and digest."""
        self.client.log_inputs(run_id, datasets=inputs)

    def log_text(self, run_id: str, text: str, file_name: str) -> None:
        self.client.log_text(run_id, text, file_name)

    def log_file(self, run_id: str, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def end(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    def close(self, run_id: str, status: str = "FINISHED", tags: Mapping[str, Any] = {}, metrics: Mapping[str, float] = {},
              model_id: str | None = None) -> None:  # fmt: skip
        """End a run, its last tags and metrics (``model_id``: its logged model's too) sent first in one call."""
        buffer = MetricBuffer(self.client, run_id)
        for key, value in metrics.items():
            buffer.add(key, value, model_id=model_id)
        buffer.flush(tags)
        self.end(run_id, status)

    def fail(self, run_id: str, error_class: str, message: Any, traceback: str | None = None, metrics: Mapping = {}) -> None:  # fmt: skip
        """End a run FAILED the one way readers expect: error tags (no password), its scores and ``traceback.txt``."""
        if traceback is not None:
            self.log_text(run_id, traceback, "traceback.txt")
        self.close(run_id, "FAILED", {ERROR_CLASS_TAG: error_class, ERROR_MESSAGE_TAG: redact_uri(message)}, metrics)
