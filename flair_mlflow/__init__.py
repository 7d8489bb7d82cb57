"""Hyperparameter search and learning-rate finding for Flair, every trial tracked in MLflow. Names load lazily
(PEP 562), so ``import flair_mlflow`` loads no torch, Flair, MLflow or hyperopt and changes no process-wide state."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    "ConfigError": "errors",
    "CorpusError": "errors",
    "EmbeddingError": "errors",
    "FlairMlflowError": "errors",
    "SearchFailed": "errors",
    "CorpusConfig": "config",
    "ExperimentConfig": "config",
    "OptimizationValue": "config",
    "Parameter": "config",
    "SearchSpace": "search.space",
    "SearchInterrupted": "search.interrupts",
    "TrialOutcome": "search.outcome",
    "TrialState": "search.outcome",
    "run_search": "search.search",
    "SearchResult": "search.search",
    "SequenceTaggerParamSelector": "selectors",
    "TextClassifierParamSelector": "selectors",
    "find_learning_rate": "lr_finder.run",
    "suggest_learning_rates": "lr_finder.rules",
    "LRSuggestion": "lr_finder.rules",
    "Plotter": "lr_finder.plot",
    "run_lr_find": "lr_finder.run",
    "LRFindResult": "lr_finder.run",
    "register_best": "register.train",
    "Registration": "register.train",
    "search_trials": "search.table",
    "MLflowLoggerPlugin": "training.plugins",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'flair_mlflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
