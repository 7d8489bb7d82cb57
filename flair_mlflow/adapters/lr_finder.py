"""Learning-rate range test (Leslie Smith) on a Flair model.

Flair removed ``ModelTrainer.find_learning_rate``; this brings it back with the faults
of the old version fixed:

* each row records the learning rate that was actually used for that batch (the old
  version wrote the scheduler's *next* rate);
* the loss is divided by the number of data points, so batches of different size and
  models with different loss reductions are comparable;
* model *and* optimizer state are restored from deep copies (the old snapshot shared
  storage with the live weights, so "restoring" was a no-op);
* it suggests a learning rate and says when the curve is not fit to suggest from.

The schedule, smoothing, stopping rule, files and suggestion rules are pure and live in
``core.lr_curve`` and ``core.lr_rules``; this module only trains batches and puts the model back.
It imports no MLflow.
"""

from __future__ import annotations

import copy
import logging
import random
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import flair
import numpy as np
import torch
from flair.datasets import DataLoader
from flair.training_utils import store_embeddings

from ..core.lr_curve import DEFAULTS, LRCurve, RangeSettings, SmoothedLoss, tsv_header, tsv_row, write_suggestion_file
from ..core.lr_rules import LRSuggestion, suggest_learning_rates

log = logging.getLogger("flair")

__all__ = ["find_learning_rate"]


class _TrainingSnapshot:
    """Deep copies of everything the range test mutates, so it leaves no trace.

    Parameters and buffers are cloned (not ``state_dict()`` references, which alias the
    live tensors) and written back in place with ``copy_`` so that an optimizer holding
    the parameter objects keeps pointing at the right tensors.
    """

    def __init__(self, model: torch.nn.Module, optimizer: Optional[torch.optim.Optimizer]) -> None:
        self.model = model
        self.optimizer = optimizer
        self.tensors = [
            (tensor, tensor.detach().clone(), tensor.grad.detach().clone() if tensor.grad is not None else None)
            for tensor in _tensors_touched(model, optimizer)
        ]
        self.training_flags = [(module, module.training) for module in model.modules()]
        self.optimizer_state = copy.deepcopy(optimizer.state_dict()) if optimizer is not None else None
        self.torch_rng = torch.get_rng_state()
        cuda_in_use = torch.cuda.is_available() and torch.cuda.is_initialized()
        self.cuda_rng = torch.cuda.get_rng_state_all() if cuda_in_use else None
        self.python_rng = random.getstate()
        self.numpy_rng = np.random.get_state()

    def restore(self) -> None:
        with torch.no_grad():
            for tensor, value, grad in self.tensors:
                tensor.copy_(value)
                tensor.grad = grad
        for module, flag in self.training_flags:
            module.training = flag
        if self.optimizer is not None and self.optimizer_state is not None:
            # load a copy so the snapshot itself never becomes live optimizer state
            self.optimizer.load_state_dict(copy.deepcopy(self.optimizer_state))
        torch.set_rng_state(self.torch_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)
        random.setstate(self.python_rng)
        np.random.set_state(self.numpy_rng)


def _tensors_touched(model: torch.nn.Module, optimizer: Optional[torch.optim.Optimizer]) -> list[torch.Tensor]:
    """The model's parameters and buffers, and any parameter the optimizer updates but the model
    does not own (it would otherwise be left changed); each once."""
    extra = [p for group in optimizer.param_groups for p in group["params"]] if optimizer is not None else []
    unique: dict[int, torch.Tensor] = {}
    for tensor in [*model.parameters(), *model.buffers(), *extra]:
        unique.setdefault(id(tensor), tensor)
    return list(unique.values())


def _cycle_batches(dataset, mini_batch_size: int) -> Iterator[list]:
    """Endless shuffled batches; a fresh DataLoader per epoch reshuffles with torch's RNG."""
    while True:
        produced = False
        for batch in DataLoader(dataset, batch_size=mini_batch_size, shuffle=True):
            produced = True
            yield batch
        if not produced:
            raise ValueError("the training split is empty")


def _set_learning_rate(optimizer: torch.optim.Optimizer, learning_rate: float) -> None:
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(learning_rate)
        else:
            group["lr"] = learning_rate


def _loss_and_count(result: Any) -> tuple[torch.Tensor, int]:
    """Flair models return ``(loss_sum, count)``; some custom models return the loss only."""
    if isinstance(result, tuple):
        loss, count = result[0], result[1]
    else:
        loss, count = result, 1
    count = int(count.item() if isinstance(count, torch.Tensor) else count)
    return loss, count


def _train_batch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: list,
    learning_rate: float,
    max_grad_norm: Optional[float],
) -> float:
    """One step as Flair's trainer takes it (backward on the summed loss, clipping); returns the loss
    per data point."""
    _set_learning_rate(optimizer, learning_rate)
    model.zero_grad()
    optimizer.zero_grad()
    loss_sum, count = _loss_and_count(model.forward_loss(batch))
    loss_sum.backward()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    store_embeddings(batch, "none")
    return loss_sum.item() / max(count, 1)


def _sweep(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, train_data, settings: RangeSettings, tsv_path: Path
) -> tuple[LRCurve, Optional[str]]:
    """Train batch after batch at growing rates, writing each row as it comes; stop on divergence."""
    curve, smoother = LRCurve(), SmoothedLoss(settings.smoothing_factor)
    model.train()
    batches = _cycle_batches(train_data, settings.mini_batch_size)
    with open(tsv_path, "w", encoding="utf-8") as tsv:
        tsv.write(tsv_header())
        for step in range(settings.iterations):
            learning_rate = settings.learning_rate(step)
            raw = _train_batch(model, optimizer, next(batches), learning_rate, settings.max_grad_norm)
            smoothed = smoother.add(raw)
            curve.add(step, learning_rate, raw, smoothed)
            tsv.write(tsv_row(step, learning_rate, raw, smoothed))
            stopped_reason = settings.stop_reason(smoothed, smoother.best, learning_rate)
            if stopped_reason is not None:
                log.info(f"LR finder: loss diverged, stopped after {step + 1} iterations ({stopped_reason})")
                return curve, stopped_reason
    return curve, None


def _optimizer_given(optimizer: Any, optimizer_kwargs: dict[str, Any]) -> Optional[torch.optim.Optimizer]:
    """The caller's optimizer instance (restored afterwards), or None for a class the test builds."""
    if isinstance(optimizer, torch.optim.Optimizer):
        if optimizer_kwargs:
            raise TypeError("optimizer_kwargs only apply when optimizer is a class, not an instance")
        return optimizer
    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        return None
    raise TypeError(f"optimizer must be a torch optimizer class or instance, got {optimizer!r}")


def find_learning_rate(
    trainer: "flair.trainers.ModelTrainer",
    base_path: Union[str, Path],
    optimizer: Union[type[torch.optim.Optimizer], torch.optim.Optimizer] = torch.optim.SGD,
    start_learning_rate: float = DEFAULTS.start_learning_rate,
    end_learning_rate: float = DEFAULTS.end_learning_rate,
    iterations: int = DEFAULTS.iterations,
    mini_batch_size: int = DEFAULTS.mini_batch_size,
    stop_early: bool = DEFAULTS.stop_early,
    smoothing_factor: float = DEFAULTS.smoothing_factor,
    divergence_threshold: float = DEFAULTS.divergence_threshold,
    file_name: str = "learning_rate.tsv",
    max_grad_norm: Optional[float] = DEFAULTS.max_grad_norm,
    log_to_mlflow: bool = True,
    **optimizer_kwargs: Any,
) -> Path:
    """Run the LR range test on ``trainer.corpus.train`` and write ``base_path/file_name``.

    The learning rate grows exponentially from ``start_learning_rate`` (first batch) to
    ``end_learning_rate`` (last batch). Each batch is trained the way Flair's trainer does it, so the
    rate found transfers to ``ModelTrainer.train``; the *recorded* loss is per data point.
    ``optimizer`` is an optimizer class (built over the model's parameters with ``optimizer_kwargs``)
    or an instance. Weights, optimizer state, gradients, train/eval modes and the torch/python/numpy
    RNG states are restored afterwards, so the test changes nothing about later training.

    A suggestion (see :func:`suggest_learning_rates`) is written next to the TSV as
    ``learning_rate_suggestion.json``. With ``log_to_mlflow`` (the default) the test is logged as the
    ``lr_find`` entry point logs it, into the active MLflow run or a new one in the current
    experiment (see :mod:`.lr_tracking`). Returns the path of the TSV.
    """
    settings = RangeSettings(
        start_learning_rate,
        end_learning_rate,
        iterations,
        mini_batch_size,
        smoothing_factor,
        divergence_threshold,
        stop_early,
        max_grad_norm,
    )
    tsv_path, suggestion = range_test(trainer, Path(base_path) / file_name, optimizer, settings, optimizer_kwargs)
    if log_to_mlflow:
        from .lr_tracking import track_range_test

        track_range_test(trainer, tsv_path, suggestion, settings.logged_params(optimizer_name(optimizer)))
    return tsv_path


def optimizer_name(optimizer: Any) -> str:
    """The class name of an optimizer class or instance."""
    return (optimizer if isinstance(optimizer, type) else type(optimizer)).__name__


def range_test(
    trainer: Any, tsv_path: Path, optimizer: Any, settings: RangeSettings, optimizer_kwargs: dict[str, Any]
) -> tuple[Path, LRSuggestion]:
    """:func:`find_learning_rate` without the tracking: the TSV, the suggestion file, the suggestion."""
    settings.check()
    train_data = trainer.corpus.train
    if train_data is None or len(train_data) == 0:
        raise ValueError("the trainer's corpus has no training data")
    given = _optimizer_given(optimizer, optimizer_kwargs)
    tsv_path.parent.mkdir(parents=True, exist_ok=True)
    # snapshot before building our own optimizer: a fresh optimizer is simply discarded
    snapshot = _TrainingSnapshot(trainer.model, given)
    try:
        live = (
            given
            if given is not None
            else optimizer(trainer.model.parameters(), lr=settings.start_learning_rate, **optimizer_kwargs)
        )
        curve, stopped_reason = _sweep(trainer.model, live, train_data, settings, tsv_path)
    finally:
        snapshot.restore()
    suggestion = suggest_learning_rates(
        curve.learning_rates, curve.smoothed_losses, divergence_threshold=settings.divergence_threshold
    )
    summary = settings.summary(optimizer_name(optimizer), optimizer_kwargs)
    write_suggestion_file(tsv_path.parent, suggestion, len(curve.iterations), stopped_reason, summary)
    log.info(f"LR finder: curve written to {tsv_path}; suggested learning rate {suggestion.suggested_lr:.3e}")
    if suggestion.warning:
        log.warning(f"LR finder: {suggestion.warning}")
    return tsv_path, suggestion
