"""Hyperparameter search and learning-rate finding for Flair, every trial tracked in MLflow. Names load lazily
(PEP 562), so ``import flair_mlflow`` loads no torch, Flair, MLflow or hyperopt and changes no process-wide state."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: the module that defines each public name
_MODULES = {
    "errors": "ConfigError CorpusError EmbeddingError FlairMlflowError SearchFailed",
    "config": "CorpusConfig ExperimentConfig OptimizationValue Parameter",
    "search.space": "SearchSpace",
    "search.interrupts": "SearchInterrupted",
    "search.outcome": "TrialOutcome TrialState",
    "search.search": "run_search SearchResult",
    "search.table": "search_trials",
    "selectors": "SequenceTaggerParamSelector TextClassifierParamSelector",
    "lr_finder.run": "find_learning_rate run_lr_find LRFindResult",
    "lr_finder.rules": "suggest_learning_rates LRSuggestion",
    "lr_finder.plot": "Plotter",
    "register.train": "register_best Registration",
    "training.plugins": "MLflowLoggerPlugin",
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names.split()}

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
