"""Writes by explicit run id (no active-run stack: any process can write a trial's run), one ``log_batch`` per epoch."""

from __future__ import annotations

import json
import math
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any, Mapping

import mlflow
from filelock import FileLock, Timeout
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from ..errors import ConfigError
from .tags import ERROR_CLASS_TAG, ERROR_MESSAGE_TAG, PARENT_RUN_ID_TAG, RUN_NAME_TAG, STATUS_TAG

#: how long a command waits for another one creating the same sqlite store
LOCK_TIMEOUT_S = 300
CREATING_MARK = ".creating-"
#: how sqlite, PostgreSQL and MySQL word a unique key violated
DUPLICATE_KEY = re.compile(
    r"UNIQUE constraint failed|UniqueViolation|duplicate key value|Duplicate entry", re.IGNORECASE
)


def redact_uri(text: Any) -> str:
    """``http://user:secret@host`` → ``http://***@host``, so no message repeats a password."""
    return re.sub(r"//[^/@\s]+@", "//***@", str(text))


def _tags(tags: Mapping[str, Any]) -> list[RunTag]:
    return [RunTag(key, str(value)[:5000]) for key, value in tags.items()]  # MLflow's limit


# local sqlite stores are built whole in a temporary file, under a lock: MLflow's migrations are not one transaction
def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a local sqlite URI (``sqlite:///mlflow.db``); None for any other store."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = tracking_uri[len("sqlite:///") :].split("?", 1)[0]
    return Path(database) if database and database != ":memory:" else None


def check_creatable(path: Path) -> None:
    """Refuse, before anything is written, a store file that could never be created."""
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        problem = f"cannot create the sqlite store '{path}': '{parent}' is not a writable folder"
        raise ConfigError("tracking_uri", problem)


def create_sqlite_store(tracking_uri: str) -> None:
    """Build the sqlite store at ``tracking_uri`` if it is one and does not exist yet, whole or not at all."""
    path = sqlite_path(tracking_uri)
    if path is None or (path.is_file() and path.stat().st_size > 0):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(f"{path}.lock", timeout=LOCK_TIMEOUT_S):
            for leftover in path.parent.glob(f".{path.name}{CREATING_MARK}*"):  # of commands killed meanwhile
                leftover.unlink(missing_ok=True)
            if path.is_file() and path.stat().st_size > 0:
                return  # another command built it while this one waited
            temporary = path.with_name(f".{path.name}{CREATING_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
            try:
                mlflow.MlflowClient(f"sqlite:///{temporary}").search_experiments(max_results=1)
                os.replace(temporary, path)
            finally:
                temporary.unlink(missing_ok=True)
    except Timeout:
        raise ConfigError("tracking_uri", f"another command has held '{path}.lock' for {LOCK_TIMEOUT_S} s") from None


def dataset_inputs(name: str, source: Mapping[str, Any], splits: Mapping[str, Mapping[str, Any]]) -> list[DatasetInput]:
    """One input per split, for the UI's Datasets column; ``source``: ``{"uri": folder}``, else Flair's dataset."""
    source_type = "local" if "uri" in source else "code"
    source_json = json.dumps(dict(source) if "uri" in source else {"tags": dict(source)}, sort_keys=True, default=str)
    inputs = []
    for context, split in splits.items():
        profile = json.dumps(split["profile"], sort_keys=True)
        dataset = Dataset(name, split["digest"], source_type, source_json, profile=profile)
        inputs.append(DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)]))
    return inputs


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

    def log_rung(self, run_id: str, rung: int, epochs: Any, score: float) -> None:
        """A multi-fidelity trial's rung: ``rung`` at each of its epochs, and ``rung_score`` at its last."""
        buffer = MetricBuffer(self.client, run_id)
        for epoch in epochs:
            buffer.add("rung", rung, epoch)
        buffer.add("rung_score", score, epoch)
        buffer.flush()

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        self.client.log_batch(run_id, tags=_tags(tags))

    def log_inputs(self, run_id: str, inputs: list[Any]) -> None:
        """Dataset inputs (:func:`dataset_inputs`). MLflow keeps one record per name and digest, looked up and then
        inserted: a process logging the same new dataset at that moment makes the insert a duplicate key, and a second
        call finds the record the other one wrote."""
        try:
            self.client.log_inputs(run_id, datasets=inputs)
        except MlflowException as error:
            if not DUPLICATE_KEY.search(str(error)):
                raise
            self.client.log_inputs(run_id, datasets=inputs)

    def log_text(self, run_id: str, text: str, file_name: str) -> None:
        self.client.log_text(run_id, text, file_name)

    def log_file(self, run_id: str, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def reopen(self, run_id: str) -> bool:
        """A run that goes on (a promoted trial's next rung): RUNNING again, without the status tag a signal left;
        True where it had one (a resumed search's rung, cut off once)."""
        self.client.update_run(run_id, "RUNNING")
        cut_off = STATUS_TAG in self.client.get_run(run_id).data.tags
        if cut_off:
            self.client.delete_tag(run_id, STATUS_TAG)
        return cut_off

    def last_step(self, run_id: str, key: str) -> int:
        """The highest step the run has a value of ``key`` at; 0 where it has none."""
        return max((m.step for m in self.client.get_metric_history(run_id, key)), default=0)

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
