"""Training one configuration: the single place where Flair's ``ModelTrainer`` is called.

A trial, ``register`` and the learning-rate finder all build a model from a configuration's
parameters and (but for the finder) train it; the trainer-call arguments the package sets itself
are assembled here and nowhere else.
"""

from __future__ import annotations

import gc
import inspect
import logging
import math
import warnings
from pathlib import Path
from typing import Any, Sequence

from .models import training_arguments

log = logging.getLogger("flair_mlflow")


def train_model(
    model: Any,
    corpus: Any,
    task: str,
    params: dict[str, Any],
    base_path: str | Path,
    *,
    max_epochs: int,
    plugins: Sequence[Any],
    main_evaluation_metric: tuple[str, str],
    train_with_dev: bool = False,
) -> dict[str, Any]:
    """Train ``model`` with the training parameters of ``params``; Flair's result dict.

    ``train`` or ``fine_tune`` is chosen by the configuration (a fine-tuned transformer); model
    files are not kept, and the final model (not the best-on-dev one) is the one evaluated.
    """
    from flair.trainers import ModelTrainer

    arguments = training_arguments(task, params)
    ours = {
        "max_epochs": max_epochs,
        "plugins": list(plugins),
        "train_with_dev": train_with_dev,
        "save_final_model": False,
        "use_final_model_for_eval": True,
        "create_file_logs": False,
        "create_loss_file": False,
        "main_evaluation_metric": main_evaluation_metric,
    }
    trainer = ModelTrainer(model, corpus)
    return getattr(trainer, arguments.method)(str(base_path), **{**arguments.arguments, **ours})


def training_argument_names() -> set[str]:
    """Every argument ``ModelTrainer.train``, ``fine_tune`` and ``train_custom`` take."""
    from flair.trainers import ModelTrainer

    names: set[str] = set()
    for method in (ModelTrainer.train, ModelTrainer.fine_tune, ModelTrainer.train_custom):
        names |= {p for p in inspect.signature(method).parameters if p not in ("self", "kwargs")}
    return names


def check_losses(history: dict[str, list[float]], run: int) -> None:
    """A loss that went NaN or infinite means the model diverged, although its dev score is often a finite 0."""
    for key in ("train_loss", "dev_loss"):
        for epoch, value in enumerate(history.get(key, []), start=1):
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"training run {run}: {key} is {value} at epoch {epoch}; the model diverged "
                    "(a lower learning rate usually helps)"
                )


def release_memory() -> None:
    """After a failed trial (out of memory, say) free what it held, so the next trial has room."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # freeing memory is best effort
        pass


class quiet_flair:
    """Keeps Flair's and hyperopt's chatter out of the way of the search's own lines: log lines below
    ``level``, Flair's progress bars (evaluation, label dictionaries) and torch's GradScaler warning."""

    LOGGERS = ("flair", "hyperopt")

    def __init__(self, quiet: bool, level: int = logging.WARNING) -> None:
        self.quiet = quiet
        self.quiet_level = level
        self.levels: dict[str, int] = {}
        self.warnings: Any = None
        self.progress_bar: Any = None

    def __enter__(self) -> None:
        if not self.quiet:
            return
        from flair.file_utils import Tqdm

        for name in self.LOGGERS:
            self.levels[name] = logging.getLogger(name).level
            logging.getLogger(name).setLevel(max(self.quiet_level, logging.getLogger(name).getEffectiveLevel()))
        self.progress_bar = Tqdm.__dict__["tqdm"]
        Tqdm.tqdm = staticmethod(_silent_progress_bar)
        self.warnings = warnings.catch_warnings()
        self.warnings.__enter__()
        warnings.filterwarnings("ignore", message=".*GradScaler.*", category=FutureWarning)

    def __exit__(self, *exc: Any) -> None:
        if not self.quiet:
            return
        from flair.file_utils import Tqdm

        self.warnings.__exit__(*exc)
        Tqdm.tqdm = self.progress_bar
        for name, level in self.levels.items():
            logging.getLogger(name).setLevel(level)


def _silent_progress_bar(*args: Any, **kwargs: Any) -> Any:
    from tqdm import tqdm

    return tqdm(*args, **{**kwargs, "disable": True})
