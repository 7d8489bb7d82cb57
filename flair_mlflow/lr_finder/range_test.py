"""Leslie Smith's range test on a Flair model, as ``ModelTrainer.find_learning_rate`` ran it but with its faults
fixed (rates, per-point losses, state restored from deep copies; docs/lr-finder.md). It imports no MLflow."""

from __future__ import annotations

import copy
import dataclasses
import logging
import random
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import flair
import numpy as np
import torch
from flair.datasets import DataLoader
from flair.training_utils import store_embeddings

from ..training.models import plain_value
from ..training.threads import TrialThreads
from .curve import LRCurve, RangeSettings, SmoothedLoss, tsv_header, tsv_row, write_suggestion_file
from .rules import LRSuggestion, suggest_learning_rates

log = logging.getLogger("flair")


@contextmanager
def _restored(model: torch.nn.Module, optimizer: Optional[torch.optim.Optimizer]) -> Iterator[None]:
    """Tensors (cloned: ``state_dict()`` aliases them; put back in place, for the optimizer), modes and generators."""
    extra = [p for group in optimizer.param_groups for p in group["params"]] if optimizer is not None else []
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers(), *extra]}.values()
    saved = [(t, t.detach().clone(), None if t.grad is None else t.grad.detach().clone()) for t in tensors]
    modes = [(module, module.training) for module in model.modules()]
    optimizer_state = copy.deepcopy(optimizer.state_dict()) if optimizer is not None else None
    torch_rng, python_rng, numpy_rng = torch.get_rng_state(), random.getstate(), np.random.get_state()
    cuda_live = torch.cuda.is_available() and torch.cuda.is_initialized()
    cuda_rng = torch.cuda.get_rng_state_all() if cuda_live else None
    try:
        yield
    finally:
        with torch.no_grad():
            for tensor, value, grad in saved:
                tensor.copy_(value)
                tensor.grad = grad
        for module, mode in modes:
            module.training = mode
        if optimizer is not None:  # a copy, so the snapshot itself never becomes live state
            optimizer.load_state_dict(copy.deepcopy(optimizer_state))
        torch.set_rng_state(torch_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        random.setstate(python_rng)
        np.random.set_state(numpy_rng)


def _batches(dataset: Any, mini_batch_size: int) -> Iterator[list]:
    """Endless shuffled batches; a fresh DataLoader per pass reshuffles with torch's generator."""
    while True:
        produced = False
        for batch in DataLoader(dataset, batch_size=mini_batch_size, shuffle=True):
            produced = True
            yield batch
        if not produced:
            raise ValueError("the training split is empty")


def _train_batch(model: Any, optimizer: torch.optim.Optimizer, batch: list, learning_rate: float,
                 max_grad_norm: Optional[float]) -> float:  # fmt: skip
    """One step as Flair's trainer takes it (backward on the summed loss, clipping); the loss per data point."""
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(learning_rate)
        else:
            group["lr"] = learning_rate
    model.zero_grad()
    optimizer.zero_grad()
    result = model.forward_loss(batch)
    loss, count = result if isinstance(result, tuple) else (result, 1)  # Flair's models give (sum, count)
    loss.backward()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    store_embeddings(batch, "none")
    return loss.item() / max(int(count), 1)


def _sweep(model: Any, optimizer: torch.optim.Optimizer, data: Any, settings: RangeSettings, tsv_path: Path,
           probe: Any) -> tuple[LRCurve, Optional[str]]:  # fmt: skip
    """Train batch after batch at growing rates, each row written as it comes; stop on divergence."""
    curve, smoother = LRCurve(), SmoothedLoss(settings.smoothing_factor)
    model.train()
    batches = _batches(data, settings.mini_batch_size)
    with open(tsv_path, "w", encoding="utf-8") as tsv:
        tsv.write(tsv_header())
        for step in range(settings.iterations):
            learning_rate, batch = settings.learning_rate(step), next(batches)
            probe.start(batch)
            raw = _train_batch(model, optimizer, batch, learning_rate, settings.max_grad_norm)
            probe.stop()
            smoothed = smoother.add(raw)
            curve.add(step, learning_rate, raw, smoothed)
            tsv.write(tsv_row(step, learning_rate, raw, smoothed))
            stopped = settings.stop_reason(smoothed, smoother.best, learning_rate)
            if stopped is not None:
                log.info(f"LR finder: loss diverged, stopped after {step + 1} iterations ({stopped})")
                return curve, stopped
    return curve, None


def optimizer_name(optimizer: Any) -> str:
    """An optimizer class or instance by the name an experiment file gives it (``sgd``, ``adam``)."""
    return plain_value(optimizer if isinstance(optimizer, type) else type(optimizer))


def range_test(trainer: Any, tsv_path: Path, optimizer: Any, settings: RangeSettings, optimizer_kwargs: dict[str, Any],
               threads: Any = "auto") -> tuple[Path, LRSuggestion]:  # fmt: skip
    """The test into ``tsv_path`` and its suggestion file, every change to model, optimizer and generators undone."""
    settings.check()
    data = trainer.corpus.train
    if data is None or len(data) == 0:
        raise ValueError("the trainer's corpus has no training data")
    given = optimizer if isinstance(optimizer, torch.optim.Optimizer) else None
    if given is not None and optimizer_kwargs:
        raise TypeError("optimizer_kwargs only apply when optimizer is a class, not an instance")
    if given is None and not (isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer)):
        raise TypeError(f"optimizer must be a torch optimizer class or instance, got {optimizer!r}")
    tsv_path.parent.mkdir(parents=True, exist_ok=True)
    with _restored(trainer.model, given):  # before our own optimizer: a fresh one is simply discarded
        live = given or optimizer(trainer.model.parameters(), lr=settings.start_learning_rate, **optimizer_kwargs)
        with TrialThreads(threads, device=str(flair.device)) as chosen:
            curve, stopped = _sweep(trainer.model, live, data, settings, tsv_path, chosen.probe)
    threshold = settings.divergence_threshold
    suggestion = suggest_learning_rates(curve.learning_rates, curve.smoothed_losses, divergence_threshold=threshold)
    summary = {**dataclasses.asdict(settings), "optimizer": optimizer_name(optimizer),
               "optimizer_kwargs": {k: repr(v) for k, v in optimizer_kwargs.items()}}  # fmt: skip
    write_suggestion_file(tsv_path.parent, suggestion, len(curve.iterations), stopped, summary)
    log.info(f"LR finder: curve written to {tsv_path}; suggested learning rate {suggestion.suggested_lr:.3e}")
    if suggestion.warning:
        log.warning(f"LR finder: {suggestion.warning}")
    return tsv_path, suggestion
