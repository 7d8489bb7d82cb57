"""Training that stops at a rung's end and later continues exactly where it stopped (multi-fidelity search).

The state is taken and put back at the start of the next epoch, after every plugin's end-of-epoch step (Flair's
annealing steps after the evaluation): model weights (without the shared frozen embeddings, rebuilt identically),
optimizer, learning-rate scheduler, random generators and the epoch values so far.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from flair.trainers.plugins import AnnealingPlugin, LinearSchedulerPlugin
from flair.trainers.plugins.base import TrainerPlugin, TrainingInterrupt


def _shared_tensors(modules: Sequence[Any]) -> set[int]:
    return {id(t) for m in modules for t in [*m.parameters(), *m.buffers()]}


def _random_state() -> dict[str, Any]:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    return {"torch": torch.get_rng_state(), "cuda": cuda, "python": random.getstate(), "numpy": np.random.get_state()}


def _set_random_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """A training run's state at its last rung's end, or None where there is none."""
    return torch.load(path, map_location="cpu", weights_only=False) if path.is_file() else None


class RungCheckpoint(TrainerPlugin):
    """Ends training after epoch ``stop_after`` (None: trains to the end) saving its state to ``path``; given
    ``state`` (a :func:`load_checkpoint`), training started at ``state["epoch"]`` continues from it."""

    def __init__(self, path: Path, stop_after: int | None, state: dict[str, Any] | None, shared: Sequence[Any],
                 history: dict[str, list[float]]) -> None:  # fmt: skip
        super().__init__()
        self.path, self.stop_after, self.state, self.history = Path(path), stop_after, state, history
        self.shared = _shared_tensors(shared)

    def _scheduler(self) -> Any:
        plugins = self.trainer.plugins
        return next((p.scheduler for p in plugins if isinstance(p, (AnnealingPlugin, LinearSchedulerPlugin))), None)

    @TrainerPlugin.hook
    def before_training_epoch(self, epoch: int, **kw: Any) -> None:
        if self.state is not None:
            self._restore(self.state)
            self.state = None
        elif self.stop_after is not None and epoch == self.stop_after + 1:
            self._save(epoch - 1)
            raise TrainingInterrupt(f"rung ends after epoch {self.stop_after}")

    def _save(self, epoch: int) -> None:
        weights = {k: v for k, v in self.model.state_dict(keep_vars=True).items() if id(v) not in self.shared}
        scheduler = self._scheduler()
        state = {
            "epoch": epoch,
            "model": {k: v.detach().cpu() for k, v in weights.items()},
            "optimizer": self.trainer.optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "random": _random_state(),
            "history": {k: list(v) for k, v in self.history.items()},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, self.path.with_suffix(".tmp"))
        self.path.with_suffix(".tmp").replace(self.path)  # a kill mid-write leaves the last whole checkpoint

    def _restore(self, state: dict[str, Any]) -> None:
        missing, unexpected = self.model.load_state_dict(state["model"], strict=False)
        if unexpected:
            raise RuntimeError(f"the checkpoint {self.path} does not fit this model ({unexpected[0]})")
        self.trainer.optimizer.load_state_dict(state["optimizer"])
        scheduler = self._scheduler()
        if scheduler is not None and state["scheduler"] is not None:
            scheduler.load_state_dict(state["scheduler"])
        _set_random_state(state["random"])

    @property
    def attach_to_all_processes(self) -> bool:
        return False
