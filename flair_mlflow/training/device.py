"""The device a training runs on: the experiment's ``device`` (``auto``: the GPU Spark gave the task, else CUDA
where there is one, else the CPU), set as Flair's ``flair.device`` for the training and put back after it."""

from __future__ import annotations

import contextlib
from typing import Iterator

import flair
import torch


def resolve_device(setting: str, cuda_available: bool, task_gpu: str | None = None) -> str:
    """``cpu``, or ``cuda:N``: an explicit one as given, else the GPU a Spark task was assigned, else the first."""
    if setting == "cpu" or (setting == "auto" and not cuda_available and task_gpu is None):
        return "cpu"
    if setting.startswith("cuda:"):
        return setting
    return f"cuda:{task_gpu if task_gpu is not None else 0}"


@contextlib.contextmanager
def on_device(setting: str, task_gpu: str | None = None) -> Iterator[str]:
    """``flair.device`` for the block (models move there as Flair builds them); afterwards as it was, and the
    CUDA allocator's cached memory handed back, so the next trial (or process) has it."""
    previous = flair.device
    flair.device = torch.device(resolve_device(setting, torch.cuda.is_available(), task_gpu))
    try:
        yield str(flair.device)
    finally:
        flair.device = previous
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
