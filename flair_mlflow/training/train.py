"""The one call of Flair's ``ModelTrainer``, and a set-up check failing what would fail every trial before any run."""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any, Sequence

import flair
from flair.trainers import ModelTrainer

from ..config.parameters import PARAMETERS
from ..errors import ConfigError
from .models import build_model, optimizer_class, plain_value, training_arguments
from .threads import TrialThreads


def train_model(model: Any, corpus: Any, config: Any, params: dict[str, Any], base_path: str | Path,
                plugins: Sequence[Any], threads: TrialThreads, train_with_dev: bool = False, start_epoch: int = 0) -> dict[str, Any]:  # fmt: skip
    """Flair's result dict of training ``model`` as ``params`` say; the final model, not the best on dev, is scored;
    ``start_epoch``: the epochs done already (a continued training, its state put back by a RungCheckpoint)."""
    method, arguments = training_arguments(config.task, params)
    if str(flair.device).startswith("cuda"):  # vectors kept between epochs stay on the GPU
        arguments.setdefault("embeddings_storage_mode", "gpu")
    ours = {
        "max_epochs": config.max_epochs,
        "plugins": [*plugins, *threads.plugins()],
        "train_with_dev": train_with_dev,
        "save_final_model": False,
        "use_final_model_for_eval": True,
        "create_file_logs": False,
        "create_loss_file": False,
        "main_evaluation_metric": config.main_evaluation_metric,
        "epoch": start_epoch,
    }
    try:
        return getattr(ModelTrainer(model, corpus), method)(str(base_path), **{**arguments, **ours})
    finally:
        threads.release()


def check_configuration(task: str, params: dict[str, Any], corpus: Any, label_type: str, factory: Any,
                        multi_label: bool, optimizers: Sequence[Any]) -> None:  # fmt: skip
    """Set a configuration up as a run would, training nothing; a ConfigError names the bare parameter."""
    labels = corpus.make_label_dictionary(label_type, add_unk=False)
    model = build_model(task, params, label_type, labels, factory, multi_label)
    method, arguments = training_arguments(task, params)
    defaults = inspect.signature(getattr(ModelTrainer, method)).parameters
    learning_rate = arguments.get("learning_rate", defaults["learning_rate"].default)
    given = {n: v for n, v in arguments.items() if n in PARAMETERS and PARAMETERS[n].group == "optimizer"}
    for optimizer in optimizers or [arguments.get("optimizer", defaults["optimizer"].default)]:
        optimizer = optimizer_class(optimizer)
        accepted = inspect.signature(optimizer).parameters
        unknown = [name for name in given if name not in accepted]
        if unknown and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
            takes = ", ".join(p for p in accepted if p in PARAMETERS and PARAMETERS[p].group == "optimizer")
            raise ConfigError(unknown[0], f"is not an argument of {plain_value(optimizer)} (it takes {takes})")
        try:
            optimizer(model.parameters(), lr=learning_rate, **given)
        except (TypeError, ValueError) as error:  # torch's own checks, named by the first argument given
            settings = ", ".join(f"{name}={value}" for name, value in given.items()) or "its defaults"
            problem = f"{plain_value(optimizer)} refuses {settings}: {error}"
            raise ConfigError(next(iter(given), "optimizer"), problem) from None


def check_losses(history: dict[str, list[float]], run: int) -> None:
    """A loss that went NaN or infinite means the model diverged, although its dev score is often a finite 0."""
    for key in ("train_loss", "dev_loss"):
        for epoch, value in enumerate(history.get(key, []), start=1):
            if not math.isfinite(value):
                problem = f"training run {run}: {key} is {value} at epoch {epoch}; the model diverged"
                raise FloatingPointError(f"{problem} (a lower learning rate usually helps)")
