"""Flair's old tuning API, back: the tutorial's code runs with only its import path changed (``from flair_mlflow
import ...``); each trial is a nested MLflow run and ``base_path/param_selection.txt`` is written as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import ExperimentConfig, OptimizationValue
from .config.experiment import validated
from .errors import ConfigError
from .search.search import Search, SearchResult, print_progress
from .search.space import SearchSpace


class ParamSelector:
    """A search over a corpus given in Python; ``options``: experiment settings, ``tracking_uri``, ``show_progress``."""

    task = ""

    def __init__(self, corpus: Any, label_type: str, base_path: str | Path, max_epochs: int = 50,
                 evaluation_metric: Any = ("micro avg", "f1-score"), training_runs: int = 1,
                 optimization_value: OptimizationValue | str = OptimizationValue.DEV_LOSS, **options: Any) -> None:  # fmt: skip
        self.corpus, self.base_path, self.result = corpus, Path(base_path), None
        self.tracking_uri, self.show_progress = options.pop("tracking_uri", None), options.pop("show_progress", True)
        self.settings = {
            "task": self.task,
            "corpus": {"name": str(getattr(corpus, "name", None) or "corpus")},
            "label_type": label_type,
            "max_epochs": max_epochs,
            "main_evaluation_metric": evaluation_metric,
            "training_runs": training_runs,
            "optimization_value": OptimizationValue.parse(optimization_value).config_name,
            **options,
        }

    def optimize(self, space: SearchSpace, max_evals: int = 100) -> dict[str, Any]:
        """Search ``space`` for ``max_evals`` trials; returns the best parameters as real values."""
        if not isinstance(space, SearchSpace):
            problem = f"must be a SearchSpace (space.add(Parameter..., hp...)), not {type(space).__name__}"
            raise ConfigError("search_space", problem)
        settings = {**self.settings, "search_space": dict(space.entries), "max_evals": max_evals}
        config = validated(ExperimentConfig, settings)
        options = {"corpus": self.corpus, "tracking_uri": self.tracking_uri, "base_path": self.base_path}
        self.result = Search(config, **options, progress=print_progress if self.show_progress else None).run()
        return self.result.best_params

    def register_best(self, name: str | None = None, **options: Any) -> Any:
        """Train, test and register as ``name`` the best configuration found, with the search's corpus and objects."""
        if self.result is None:
            raise RuntimeError("nothing to register yet: run optimize() first")
        return self.result.register_best(name, **options)


class SequenceTaggerParamSelector(ParamSelector):
    """``SequenceTaggerParamSelector(corpus, tag_type, base_path, max_epochs=50, ..., **options)``."""

    task = "sequence_tagging"


class TextClassifierParamSelector(ParamSelector):
    """``TextClassifierParamSelector(corpus, label_type, multi_label, base_path, max_epochs=50, ..., **options)``."""

    task = "text_classification"

    def __init__(self, corpus: Any, label_type: str, multi_label: bool, base_path: str | Path, max_epochs: int = 50, fine_tune: bool = True, *args: Any, **options: Any) -> None:  # fmt: skip
        fixed = {"fine_tune": fine_tune, **options.pop("fixed", {})}
        super().__init__(
            corpus, label_type, base_path, max_epochs, *args, multi_label=multi_label, fixed=fixed, **options
        )


__all__ = ["SearchResult", "SequenceTaggerParamSelector", "TextClassifierParamSelector"]
