"""Hyperparameter search and learning-rate finding for Flair, every trial tracked in MLflow."""

from .config import CorpusConfig, ExperimentConfig
from .errors import ConfigError, CorpusError, EmbeddingError, FlairMlflowError
from .interrupts import SearchInterrupted
from .lr_finder import LRSuggestion, Plotter, find_learning_rate, suggest_learning_rates
from .lr_run import LRFindResult, run_lr_find
from .registry import Registration, register_best, search_trials
from .search import Search, SearchFailed, SearchResult, run_search
from .selectors import ParamSelector, SequenceTaggerParamSelector, TextClassifierParamSelector
from .space import OptimizationValue, Parameter, SearchSpace
from .tracking import MLflowLoggerPlugin

__all__ = [
    "ConfigError",
    "CorpusConfig",
    "CorpusError",
    "EmbeddingError",
    "ExperimentConfig",
    "FlairMlflowError",
    "LRFindResult",
    "LRSuggestion",
    "MLflowLoggerPlugin",
    "OptimizationValue",
    "ParamSelector",
    "Registration",
    "Parameter",
    "Plotter",
    "Search",
    "SearchFailed",
    "SearchInterrupted",
    "SearchResult",
    "SearchSpace",
    "SequenceTaggerParamSelector",
    "TextClassifierParamSelector",
    "find_learning_rate",
    "register_best",
    "run_lr_find",
    "run_search",
    "search_trials",
    "suggest_learning_rates",
]
__version__ = "0.1.0"
