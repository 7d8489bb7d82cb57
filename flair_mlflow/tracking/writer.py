"""Writes to MLflow through explicit run ids, batched: one ``log_batch`` per epoch, never per mini-batch.

Writes go through :class:`mlflow.MlflowClient`, not the fluent API's active-run stack, so a trial can log
its run from any process that knows the parent's id. Values arrive as text or plain numbers; this
feature knows nothing of Flair.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import mlflow
from mlflow.entities import Metric, Param, RunTag

from .sqlite import create_sqlite_store
from .tags import ERROR_CLASS_TAG, ERROR_MESSAGE_TAG, PARENT_RUN_ID_TAG, RUN_NAME_TAG

MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch call
MAX_PARAMS = 100  # and of params or tags
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 5000


def redact_uri(text: Any) -> str:
    """``http://user:secret@host`` → ``http://***@host``, so no message repeats a password."""
    return re.sub(r"//[^/@\s]+@", "//***@", str(text))


class MetricBuffer:
    """Collects metrics and sends them in batched ``log_batch`` calls."""

    def __init__(self, client: mlflow.MlflowClient, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.pending: list[Metric] = []

    def add(self, key: str, value: float, step: int = 0) -> None:
        value = float(value)
        self.pending.append(Metric(key, math.nan if math.isnan(value) else value, int(time.time() * 1000), int(step)))

    def flush(self) -> None:
        while self.pending:
            chunk, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
            self.client.log_batch(self.run_id, metrics=chunk)


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
        tags = {PARENT_RUN_ID_TAG: parent_run_id, RUN_NAME_TAG: name, **tags}
        return self.client.create_run(experiment_id, run_name=name, tags=_texts(tags)).info.run_id

    def log_params(self, run_id: str, params: Mapping[str, Any], new_run: bool = False) -> None:
        """Log params as text, leaving alone any that ``mlflow run`` already logged with the same name (a
        different value goes to the tag ``resolved.<name>``); ``new_run`` skips reading the run first."""
        existing = {} if new_run else self.client.get_run(run_id).data.params
        batch: list[Param] = []
        for key, value in params.items():
            text = str(value)[:MAX_PARAM_LENGTH]
            if key not in existing:
                batch.append(Param(key, text))
            elif existing[key].strip("'\"") != text:
                self.client.set_tag(run_id, f"resolved.{key}", text)
        for start in range(0, len(batch), MAX_PARAMS):
            self.client.log_batch(run_id, params=batch[start : start + MAX_PARAMS])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        buffer = MetricBuffer(self.client, run_id)
        for key, value in metrics.items():
            buffer.add(key, value, step)
        buffer.flush()

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in _texts(tags).items()])

    def log_text(self, run_id: str, text: str, file_name: str) -> None:
        """One artefact from text, replacing an earlier file of the same name."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / file_name
            path.write_text(text, encoding="utf-8")
            self.client.log_artifact(run_id, str(path))

    def log_file(self, run_id: str, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def end(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    def close(
        self, run_id: str, status: str = "FINISHED", tags: Mapping[str, Any] = {}, metrics: Mapping[str, float] = {}
    ) -> None:
        """End a run, its last tags and metrics sent first in one call: over HTTP each call is a round trip."""
        if len(metrics) + len(tags) > MAX_PARAMS:
            self.log_metrics(run_id, metrics)
            metrics = {}
        if metrics or tags:
            buffer = MetricBuffer(self.client, run_id)
            for key, value in metrics.items():
                buffer.add(key, value)
            self.client.log_batch(run_id, metrics=buffer.pending, tags=[RunTag(k, v) for k, v in _texts(tags).items()])
        self.end(run_id, status)

    def fail(
        self, run_id: str, error_class: str, message: Any, traceback: str | None = None, metrics: Mapping = {}
    ) -> None:
        """End a run FAILED the one way every reader expects: error tags (no password in the message), the
        scores it had, and, where there is one, ``traceback.txt``."""
        if traceback is not None:
            self.log_text(run_id, traceback, "traceback.txt")
        self.close(run_id, "FAILED", {ERROR_CLASS_TAG: error_class, ERROR_MESSAGE_TAG: redact_uri(message)}, metrics)


def _texts(tags: Mapping[str, Any]) -> dict[str, str]:
    """Tags as MLflow stores them: text, cut to its limit."""
    return {key: str(value)[:MAX_TAG_LENGTH] for key, value in tags.items()}
