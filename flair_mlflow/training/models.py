"""Fresh Flair models from a trial's parameters, their training arguments, and parameter values as MLflow shows them."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import torch
from flair.models import SequenceTagger, TextClassifier
from flair.trainers import ModelTrainer

from ..config.parameters import PARAMETERS
from ..embeddings.factory import EmbeddingFactory
from ..embeddings.specs import spec_of
from ..errors import ConfigError

TAGGER_ARGUMENTS = (
    "hidden_size use_crf use_rnn rnn_layers rnn_type dropout word_dropout locked_dropout reproject_embeddings".split()
)
OPTIMIZERS = ("sgd", "adam", "adamw", "adagrad", "adadelta", "adamax", "rmsprop", "nadam", "radam")  # lower case
ANNEALING = ("anneal_factor", "patience", "anneal_with_restarts", "min_learning_rate", "initial_extra_patience")


def optimizer_class(value: Any, field: str = "optimizer") -> type:
    """An optimizer class from a short name (``adam``), a dotted path, or the class itself."""
    if isinstance(value, type) and issubclass(value, torch.optim.Optimizer):
        return value
    name = str(value)
    by_name = {cls.__name__.lower(): cls for cls in vars(torch.optim).values() if isinstance(cls, type)}
    if name.lower() in OPTIMIZERS or name in vars(torch.optim):
        return by_name[name.lower()]
    module_name, _, class_name = name.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), class_name) if module_name else None
    except ImportError:
        found = None
    if isinstance(found, type) and issubclass(found, torch.optim.Optimizer):
        return found
    raise ConfigError(field, f"unknown optimizer '{name}'; use one of {', '.join(OPTIMIZERS)} or a dotted path")


def plain_value(value: Any) -> Any:
    """A value as an experiment file would give it (pairs as lists, classes and embeddings by name), for MLflow."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
        return list(value)
    if isinstance(value, type):
        short = value.__name__.lower()
        torch_optimizer = value.__module__.startswith("torch.optim") and short in OPTIMIZERS
        return short if torch_optimizer else f"{value.__module__}.{value.__qualname__}"
    return spec_of(value) or str(getattr(value, "name", type(value).__name__))


def uses_fine_tuning(task: str, params: dict[str, Any]) -> bool:
    """A fine-tuned transformer trains with Flair's ``fine_tune``, unless given annealing settings (``train`` only)."""
    if any(params.get(name) is not None for name in ANNEALING):
        return False
    fine_tune = params.get("fine_tune", task == "text_classification")
    names = [params.get(name) for name in ("embeddings", "document_embeddings")]
    named_transformer = any(isinstance(name, str) and "transformer:" in name for name in names)
    return bool(fine_tune and (named_transformer or params.get("transformer_model") is not None))


def build_model(task: str, params: dict[str, Any], label_type: str, labels: Any, factory: EmbeddingFactory,
                multi_label: bool = False):  # fmt: skip
    if task == "sequence_tagging":
        fine_tune = bool(params.get("fine_tune", False))
        embeddings = factory.token_embeddings(params["embeddings"], fine_tune, params.get("layers", "-1"))
        arguments = {"hidden_size": 256, **{n: params[n] for n in TAGGER_ARGUMENTS if params.get(n) is not None}}
        return SequenceTagger(embeddings=embeddings, tag_dictionary=labels, tag_type=label_type, **arguments)
    embeddings = factory.document_embeddings(params)
    return TextClassifier(embeddings, label_dictionary=labels, label_type=label_type, multi_label=multi_label)


def training_arguments(task: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The trainer method (``train`` or ``fine_tune``) and its arguments; optimizer ones go through ``**kwargs``."""
    method = "fine_tune" if uses_fine_tuning(task, params) else "train"
    accepted = set(inspect.signature(getattr(ModelTrainer, method)).parameters) - {"self", "kwargs"}
    arguments: dict[str, Any] = {}
    for name, value in params.items():
        group = PARAMETERS[name].group if name in PARAMETERS else None
        if value is None or group == "model":
            continue
        if name == "optimizer":
            arguments[name] = optimizer_class(value)
        elif group == "optimizer" or name in accepted:
            arguments[name] = value
        else:
            problem = f"is not an argument of ModelTrainer.{method} (the trial {method.replace('_', '-')}s)"
            raise ConfigError(name, problem)
    return method, arguments
