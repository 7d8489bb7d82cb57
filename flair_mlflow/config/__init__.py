"""The experiment file and the parameters a search sets: plain data, checked by pydantic; imports no Flair,
torch, hyperopt or MLflow, so a command refuses bad input before it loads any of them."""

from .experiment import CorpusConfig, ExperimentConfig, PruningConfig
from .parameters import OptimizationValue, Parameter

__all__ = ["CorpusConfig", "ExperimentConfig", "OptimizationValue", "Parameter", "PruningConfig"]
