"""Hyperparameter search and learning-rate finding for Flair, every trial tracked in MLflow."""

from .config import CorpusConfig, ExperimentConfig
from .errors import ConfigError, CorpusError, EmbeddingError, FlairMlflowError
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
    "MLflowLoggerPlugin",
    "OptimizationValue",
    "ParamSelector",
    "Parameter",
    "Search",
    "SearchFailed",
    "SearchResult",
    "SearchSpace",
    "SequenceTaggerParamSelector",
    "TextClassifierParamSelector",
    "run_search",
]
__version__ = "0.1.0"
