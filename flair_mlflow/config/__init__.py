"""The experiment file and the parameters a search sets, checked before Flair, torch, hyperopt or MLflow load."""

from .experiment import CorpusConfig, ExperimentConfig, PruningConfig
from .parameters import OptimizationValue, Parameter

__all__ = ["CorpusConfig", "ExperimentConfig", "OptimizationValue", "Parameter", "PruningConfig"]
