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

from ..core.errors import ConfigError
from ..core.parameters import PARAMETERS
from .models import build_model, optimizer_class, optimizer_name, training_arguments

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


def check_configuration(
    task: str,
    params: dict[str, Any],
    corpus: Any,
    label_type: str,
    factory: Any,
    multi_label: bool = False,
    optimizers: Sequence[Any] = (),
) -> None:
    """Set one configuration up as a training run does (model, trainer arguments, optimizer), training
    nothing, so what would fail every trial's set-up fails before any run exists.

    ``optimizers`` are the ones to try (a searched optimizer's options); by default the
    configuration's. A :class:`ConfigError` names the bare parameter: the caller knows where it is set.
    """
    from flair.trainers import ModelTrainer

    label_dictionary = corpus.make_label_dictionary(label_type, add_unk=False)
    model = build_model(task, params, label_type, label_dictionary, factory, multi_label)
    arguments = training_arguments(task, params)
    defaults = inspect.signature(getattr(ModelTrainer, arguments.method)).parameters
    learning_rate = arguments.arguments.get("learning_rate", defaults["learning_rate"].default)
    optimizer_arguments = {
        name: value
        for name, value in arguments.arguments.items()
        if name in PARAMETERS and PARAMETERS[name].group == "optimizer"
    }
    for optimizer in optimizers or [arguments.arguments.get("optimizer", defaults["optimizer"].default)]:
        _check_optimizer(optimizer_class(optimizer), model, learning_rate, optimizer_arguments)


def _check_optimizer(optimizer: type, model: Any, learning_rate: float, arguments: dict[str, Any]) -> None:
    """Build ``optimizer`` over the model's weights as Flair's trainer does: an argument it does not
    take, or a combination it refuses, is named."""
    accepted = inspect.signature(optimizer).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        for name in arguments:
            if name not in accepted:
                takes = ", ".join(p for p in accepted if p in PARAMETERS and PARAMETERS[p].group == "optimizer")
                raise ConfigError(name, f"is not an argument of {optimizer_name(optimizer)} (it takes {takes})")
    try:
        optimizer(model.parameters(), lr=learning_rate, **arguments)
    except (TypeError, ValueError) as error:  # torch's own checks: named by the first argument given
        given = ", ".join(f"{name}={value}" for name, value in arguments.items())
        problem = f"{optimizer_name(optimizer)} refuses {given or 'its defaults'}: {error}"
        raise ConfigError(next(iter(arguments), "optimizer"), problem) from None


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
