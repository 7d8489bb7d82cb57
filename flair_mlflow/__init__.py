"""Hyperparameter search and learning-rate finding for Flair, every trial tracked in MLflow.

Names are exported lazily (PEP 562): ``import flair_mlflow`` and ``flair-mlflow --help`` load
neither torch, Flair, MLflow nor hyperopt; each name imports its module on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .core.collector import start_up

__version__ = "0.1.0"

#: public name -> the module that defines it: the functions, the tutorial's API and the types users
#: receive or catch; internal classes (Search, TrialRunner, ...) stay in their modules
_EXPORTS = {
    # errors
    "ConfigError": "core.errors",
    "CorpusError": "core.errors",
    "EmbeddingError": "core.errors",
    "FlairMlflowError": "core.errors",
    "SearchInterrupted": "core.interrupts",
    # the experiment file and the tutorial's space
    "CorpusConfig": "core.config",
    "ExperimentConfig": "core.config",
    "OptimizationValue": "core.parameters",
    "Parameter": "core.parameters",
    "SearchSpace": "core.space",
    # what a search returns: SearchResult.outcomes holds TrialOutcome objects, each with a TrialState
    "TrialOutcome": "core.outcome",
    "TrialState": "core.outcome",
    # searching
    "run_search": "selectors",  # search.search's, its result wired to register its best
    "SearchFailed": "search.search",
    "SearchResult": "search.search",
    "SequenceTaggerParamSelector": "selectors",
    "TextClassifierParamSelector": "selectors",
    # the learning-rate finder
    "find_learning_rate": "adapters.lr_finder",
    "suggest_learning_rates": "core.lr_rules",
    "LRSuggestion": "core.lr_rules",
    "Plotter": "adapters.lr_plot",
    "run_lr_find": "lr_find.run",
    "LRFindResult": "lr_find.run",
    # registering and reading back
    "register_best": "register.train",
    "Registration": "register.train",
    "search_trials": "search.trials_table",
    # Flair trainer plugin for training outside a search
    "MLflowLoggerPlugin": "adapters.plugins",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'flair_mlflow' has no attribute {name!r}")
    with start_up():  # torch, Flair, MLflow: their imports are most of a command's start-up
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
