"""Fresh Flair models from a trial's parameters, the arguments their training takes, and the one way a
parameter's value becomes what MLflow and the reports show."""

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
#: torch.optim's optimizers by the short names the experiment file uses (their class names in lower case)
OPTIMIZERS = ("sgd", "adam", "adamw", "adagrad", "adadelta", "adamax", "rmsprop", "nadam", "radam")


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
    """A parameter's real value as MLflow, the reports and ``best_params.yaml`` show it: numbers, flags and
    names as they are, pairs as lists, an optimizer class by its short name, an embedding object by the name
    that builds it (else its own name), so a search from Python logs what an experiment file would."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
        return list(value)
    if isinstance(value, type):
        short = value.__name__.lower()
        return (
            short
            if value.__module__.startswith("torch.optim") and short in OPTIMIZERS
            else f"{value.__module__}.{value.__qualname__}"
        )
    return spec_of(value) or str(getattr(value, "name", type(value).__name__))


#: the annealing settings only ``ModelTrainer.train`` takes: given them, a fine-tuned transformer trains with ``train``
ANNEALING = ("anneal_factor", "patience", "anneal_with_restarts", "min_learning_rate", "initial_extra_patience")


def uses_fine_tuning(task: str, params: dict[str, Any]) -> bool:
    """Whether the trial trains a transformer end to end with Flair's ``fine_tune`` (AdamW, linear warm-up): a
    fine-tuned transformer without annealing settings. With them it trains with ``train`` and anneals, as Flair
    0.12.2's selectors trained every configuration."""
    if any(params.get(name) is not None for name in ANNEALING):
        return False
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
    labels: Any,
    factory: EmbeddingFactory,
    multi_label: bool = False,
):
    """A new, untrained SequenceTagger or TextClassifier for one training run."""
    if task == "sequence_tagging":
        fine_tune = bool(params.get("fine_tune", False))
        embeddings = factory.token_embeddings(
            params["embeddings"], fine_tune=fine_tune, layers=params.get("layers", "-1")
        )
        arguments = {"hidden_size": 256, **{n: params[n] for n in TAGGER_ARGUMENTS if params.get(n) is not None}}
        return SequenceTagger(embeddings=embeddings, tag_dictionary=labels, tag_type=label_type, **arguments)
    embeddings = factory.document_embeddings(params)
    return TextClassifier(
        embeddings=embeddings, label_dictionary=labels, label_type=label_type, multi_label=multi_label
    )


def training_arguments(task: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The trainer method a trial calls (``train`` or ``fine_tune``) and its arguments from the trial's
    parameters: training ones by name, optimizer ones through ``**kwargs`` to the optimizer."""
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
            raise ConfigError(
                name, f"is not an argument of ModelTrainer.{method} (the trial {method.replace('_', '-')}s)"
            )
    return method, arguments
