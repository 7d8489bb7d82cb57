"""Writes to MLflow through explicit run ids, batched: one ``log_batch`` per epoch, never per mini-batch.

Writes go through :class:`mlflow.MlflowClient` rather than the fluent API's active-run stack, so a
trial can log its child run from any process that knows the parent's id (a single ``log_metric``
on a sqlite store costs milliseconds). Values arrive as plain data: this layer knows nothing of
Flair, so embedding objects and optimizer classes are turned into their names above it.
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
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from .tags import ERROR_CLASS_TAG, ERROR_MESSAGE_TAG

MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch call
MAX_PARAM_LENGTH = 6000


def _now_ms() -> int:
    return int(time.time() * 1000)


def param_text(value: Any) -> str:
    """A plain value as MLflow shows it (``0.1``, ``adam``, ``0.9,0.999``), cut to MLflow's limit."""
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
        value = ",".join(str(v) for v in value)
    return str(value)[:MAX_PARAM_LENGTH]


class MetricBuffer:
    """Collects metrics and sends them in batched ``log_batch`` calls."""

    def __init__(self, client: mlflow.MlflowClient, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.pending: list[Metric] = []

    def add(self, key: str, value: float, step: int = 0) -> None:
        value = float(value)
        if math.isnan(value):
            value = float("nan")
        self.pending.append(Metric(key=key, value=value, timestamp=_now_ms(), step=int(step)))

    def flush(self) -> None:
        while self.pending:
            chunk, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
            self.client.log_batch(self.run_id, metrics=chunk)


def redact_uri(text: str) -> str:
    """``http://user:secret@host`` → ``http://***@host``, so no message repeats a password."""
    return re.sub(r"//[^/@\s]+@", "//***@", str(text))


class RunWriter:
    """Creates and writes the runs of one search through explicit run ids."""

    def __init__(self, tracking_uri: str | None = None) -> None:
        self.tracking_uri = tracking_uri or mlflow.get_tracking_uri()
        self.client = mlflow.MlflowClient(tracking_uri=self.tracking_uri)

    def create_child(
        self, experiment_id: str, parent_run_id: str, name: str, tags: Mapping[str, str] | None = None
    ) -> str:
        run = self.client.create_run(
            experiment_id,
            run_name=name,
            tags={MLFLOW_PARENT_RUN_ID: parent_run_id, MLFLOW_RUN_NAME: name, **(tags or {})},
        )
        return run.info.run_id

    def log_params(self, run_id: str, params: Mapping[str, Any], new_run: bool = False) -> None:
        """Log parameters, leaving alone any that an ``mlflow run`` already logged with the same name.

        ``new_run`` skips reading the run first: a run this process just created has no params.
        """
        existing = {} if new_run else self.client.get_run(run_id).data.params
        batch: list[Param] = []
        for key, value in params.items():
            text = param_text(value)
            if key in existing:
                if existing[key].strip("'\"") != text:
                    self.client.set_tag(run_id, f"resolved.{key}", text)
                continue
            batch.append(Param(key, text))
        for start in range(0, len(batch), 100):
            self.client.log_batch(run_id, params=batch[start : start + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
        buffer = MetricBuffer(self.client, run_id)
        for key, value in metrics.items():
            buffer.add(key, value, step)
        buffer.flush()

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        self.client.log_batch(run_id, tags=_run_tags(tags))

    def log_text(self, run_id: str, text: str, file_name: str) -> None:
        """Write one artefact from text, replacing an earlier file of the same name."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / file_name
            path.write_text(text, encoding="utf-8")
            self.client.log_artifact(run_id, str(path))

    def log_file(self, run_id: str, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def end(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    def close(
        self,
        run_id: str,
        status: str = "FINISHED",
        tags: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        """End a run, its last tags and metrics sent first in one call (over HTTP each call is a round
        trip, and a trial of a few seconds makes only a handful)."""
        if len(metrics or {}) + len(tags or {}) > 100:  # MLflow's limit of tags per batch is the lower
            self.log_metrics(run_id, metrics or {})
            metrics = None
        if metrics or tags:
            buffer = MetricBuffer(self.client, run_id)
            for key, value in (metrics or {}).items():
                buffer.add(key, value)
            self.client.log_batch(run_id, metrics=buffer.pending, tags=_run_tags(tags or {}))
        self.end(run_id, status)

    def fail(
        self,
        run_id: str,
        error_class: str,
        message: Any,
        traceback_text: str | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        """End a trial's run FAILED the one way every reader expects: error tags (no password in the
        message), the scores it had, and, where there is one, ``traceback.txt``."""
        if traceback_text is not None:
            self.log_text(run_id, traceback_text, "traceback.txt")
        tags = {ERROR_CLASS_TAG: error_class, ERROR_MESSAGE_TAG: redact_uri(message)[:5000]}
        self.close(run_id, "FAILED", tags, metrics)


def _run_tags(tags: Mapping[str, Any]) -> list[RunTag]:
    """Tags as MLflow stores them: text, cut to its 5000 characters."""
    return [RunTag(key, str(value)[:5000]) for key, value in tags.items()]
