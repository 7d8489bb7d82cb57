"""Flair trainer plugins hooked to the events Flair's own plugins hook (Flair refuses a plugin whose events it no
longer sends): epoch metrics to MLflow, the median stopping rule, and shared frozen embeddings kept in eval mode."""

from __future__ import annotations

from typing import Any

import mlflow
from flair.trainers.plugins.base import TrainerPlugin, TrainingInterrupt

from ..tracking.writer import MetricBuffer, RunWriter
from .models import plain_value

EPOCH_METRICS = {  # Flair's metric names (as the trainer records them) and the names MLflow shows
    tuple(name.split("_")): name for name in ("dev_score", "dev_loss", "train_loss", "test_score", "test_loss")
}
LOGGED_ARGUMENTS = (  # the training arguments a run of its own records as params
    "learning_rate mini_batch_size max_epochs optimizer anneal_factor patience min_learning_rate warmup_fraction "
    "embeddings_storage_mode train_with_dev dataset_size".split()
)


class MLflowLoggerPlugin(TrainerPlugin):
    """Logs a training's epoch metrics to MLflow, batched: to ``run_id`` from any process, else to the active run
    (one started and ended if none); ``prefix`` keeps training runs apart in a run, ``history`` every epoch's values;
    epochs up to ``logged_through`` are not sent: the run has them (a rung cut off once, continued from the same
    checkpoint, random state included, computes them again)."""

    def __init__(self, run_id: str | None = None, prefix: str = "", log_params: bool = True,
                 writer: RunWriter | None = None, enabled: bool = True, logged_through: int = 0) -> None:  # fmt: skip
        super().__init__()
        self.run_id, self.prefix, self.log_params = run_id, prefix, log_params
        self.writer, self.enabled, self.logged_through = writer, enabled, logged_through
        self.history: dict[str, list[float]] = {name: [] for name in EPOCH_METRICS.values()}
        self._buffer: MetricBuffer | None = None
        self._started_run = False
        self._learning_rate: float | None = None

    @TrainerPlugin.hook
    def after_setup(self, **training_parameters: Any) -> None:
        if not self.enabled:
            return
        writer = self.writer or RunWriter()
        if self.run_id is None:
            self._started_run = mlflow.active_run() is None
            self.run_id = (mlflow.start_run() if self._started_run else mlflow.active_run()).info.run_id
        self._buffer = MetricBuffer(writer.client, self.run_id)
        if self.log_params:
            given = {k: plain_value(training_parameters[k]) for k in LOGGED_ARGUMENTS if k in training_parameters}
            writer.log_params(self.run_id, {f"{self.prefix}{k}": v for k, v in given.items()})

    @TrainerPlugin.hook
    def metric_recorded(self, record: Any) -> None:
        name = tuple(record.name)
        if name == ("learning_rate",) and record.value:
            self._learning_rate = float(record.value[0])
        try:
            value = float(record.value) if name in EPOCH_METRICS else None
        except (TypeError, ValueError):
            value = None
        if value is not None:
            self.history[EPOCH_METRICS[name]].append(value)
            if self._buffer is not None and record.global_step > self.logged_through:
                self._buffer.add(f"{self.prefix}{EPOCH_METRICS[name]}", value, record.global_step)

    @TrainerPlugin.hook
    def after_evaluation(self, epoch: int, **kw: Any) -> None:
        if self._buffer is not None:
            if self._learning_rate is not None and epoch > self.logged_through:
                self._buffer.add(f"{self.prefix}learning_rate", self._learning_rate, epoch)
            self._buffer.flush()

    @TrainerPlugin.hook("_training_exception", "after_training")  # as Flair's log-file plugin ends
    def _finished(self, **kw: Any) -> None:
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


class MedianStoppingPlugin(TrainerPlugin):
    """Stops a run where ``rule`` says (``pruned_at``), not after the last epoch: that would only bar it from best."""

    def __init__(self, rule: Any, max_epochs: int) -> None:
        super().__init__()
        self.rule, self.max_epochs, self.pruned_at = rule, max_epochs, None

    @TrainerPlugin.hook
    def after_evaluation(self, epoch: int, validation_scores: tuple = (), **kw: Any) -> None:
        if len(validation_scores) < 2:
            return
        value = float(validation_scores[0] if self.rule.maximise else validation_scores[1])
        if epoch < self.max_epochs and self.rule.should_stop(epoch, value):
            self.pruned_at = epoch
            raise TrainingInterrupt(f"pruned by the median stopping rule at epoch {epoch}")


class FrozenEmbeddingsInEval(TrainerPlugin):
    """Keeps shared frozen embeddings in eval mode (Flair trains the whole model), so kept vectors match new ones."""

    def __init__(self, modules: list) -> None:
        super().__init__()
        self.modules = modules

    @TrainerPlugin.hook
    def before_training_batch(self, **kw: Any) -> None:
        for module in self.modules:
            module.eval()
