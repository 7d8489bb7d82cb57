"""The device a training runs on, set as Flair's ``flair.device`` for the training and put back after it."""

from __future__ import annotations

import contextlib
from typing import Iterator

import flair
import torch


def resolve_device(setting: str, cuda_available: bool, task_gpu: str | None = None) -> str:
    """``cpu`` (``auto`` without CUDA), or ``cuda:N``: as given, else the GPU Spark gave the task, else the first."""
    if setting == "cpu" or (setting == "auto" and not cuda_available and task_gpu is None):
        return "cpu"
    if setting.startswith("cuda:"):
        return setting
    return f"cuda:{task_gpu if task_gpu is not None else 0}"


@contextlib.contextmanager
def on_device(setting: str, task_gpu: str | None = None) -> Iterator[str]:
    """Afterwards the device as it was, and CUDA's cached memory handed back for the next trial or process."""
    previous = flair.device
    flair.device = torch.device(resolve_device(setting, torch.cuda.is_available(), task_gpu))
    try:
        yield str(flair.device)
    finally:
        flair.device = previous
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
