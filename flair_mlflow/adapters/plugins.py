"""Flair trainer plugins, grouped as Flair groups its own: small classes hooked to training events.

- :class:`MLflowLoggerPlugin` logs epoch metrics to MLflow, batched, from any process;
- :class:`MedianStoppingPlugin` ends a training run the median stopping rule gives up on;
- :class:`FrozenEmbeddingsInEval` keeps shared frozen embeddings out of train mode.
"""

from __future__ import annotations

from typing import Any, Mapping

import mlflow
from flair.trainers.plugins.base import TrainerPlugin, TrainingInterrupt
from mlflow.entities import Param

from ..core.rules import MedianStoppingRule
from ..store.writer import MetricBuffer, param_text
from .models import value_text

#: Flair's metric names (as recorded by the trainer) and the names MLflow shows.
EPOCH_METRICS = {
    ("dev", "score"): "dev_score",
    ("dev", "loss"): "dev_loss",
    ("train", "loss"): "train_loss",
    ("test", "score"): "test_score",
    ("test", "loss"): "test_loss",
}


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

    def __init__(
        self,
        run_id: str | None = None,
        prefix: str = "",
        log_params: bool = True,
        client: mlflow.MlflowClient | None = None,
        enabled: bool = True,
    ) -> None:
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
    """The training arguments worth a param on a run of its own (plugin used outside a search)."""
    keep = (
        "learning_rate",
        "mini_batch_size",
        "max_epochs",
        "optimizer",
        "anneal_factor",
        "patience",
        "min_learning_rate",
        "warmup_fraction",
        "embeddings_storage_mode",
        "train_with_dev",
        "dataset_size",
    )
    return {k: param_text(value_text(parameters[k])) for k in keep if k in parameters}


class MedianStoppingPlugin(TrainerPlugin):
    """Stops a Flair training run when the rule says so; ``pruned_at`` tells the caller where."""

    def __init__(self, rule: MedianStoppingRule, max_epochs: int) -> None:
        super().__init__()
        self.rule = rule
        self.max_epochs = max_epochs
        self.pruned_at: int | None = None

    @TrainerPlugin.hook
    def after_evaluation(self, epoch: int, validation_scores: tuple = (), **kw: Any) -> None:
        if len(validation_scores) < 2:
            return
        score, loss = validation_scores[0], validation_scores[1]
        value = float(score if self.rule.maximise else loss)
        # stopping after the last epoch saves nothing and would only bar the trial from being best
        if epoch < self.max_epochs and self.rule.should_stop(epoch, value):
            self.pruned_at = epoch
            raise TrainingInterrupt(f"pruned by the median stopping rule at epoch {epoch}")


class FrozenEmbeddingsInEval(TrainerPlugin):
    """Keeps shared frozen embeddings in eval mode while the rest of the model trains.

    Flair puts the whole model in train mode each epoch, so a frozen transformer would embed with
    dropout: its vectors would depend on when they were computed, and kept vectors would differ
    from recomputed ones. A frozen feature extractor runs without dropout; that makes its vectors
    the same every time, which is what lets the cache change time and not scores.
    """

    def __init__(self, modules: list) -> None:
        super().__init__()
        self.modules = modules

    @TrainerPlugin.hook
    def before_training_batch(self, **kw: Any) -> None:
        for module in self.modules:
            if module.training:
                module.eval()

    @property
    def attach_to_all_processes(self) -> bool:
        return True
