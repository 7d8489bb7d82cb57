"""Flair's old tuning API, back: the tutorial's code runs with only its import path changed.

    from flair_mlflow import SearchSpace, Parameter, SequenceTaggerParamSelector
    param_selector = SequenceTaggerParamSelector(corpus, "ner", "resources/results", max_epochs=50)
    param_selector.optimize(search_space, max_evals=100)
    param_selector.register_best(name="ner")   # the best configuration, trained, tested and registered

Each trial is a nested MLflow run; ``base_path/param_selection.txt`` is written as before. This face
also wires registration into a search's result (``SearchResult.register_best``): a search never
imports register, so the faces hand it the way to.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

from .core.config import CorpusConfig, ExperimentConfig
from .core.parameters import EVALUATION_METRICS, OptimizationValue
from .core.space import SearchSpace
from .search import search as search_job
from .search.search import Search, SearchResult


def _main_metric(evaluation_metric: Any) -> tuple[str, str]:
    if isinstance(evaluation_metric, tuple):
        return evaluation_metric
    value = getattr(evaluation_metric, "value", evaluation_metric)
    return EVALUATION_METRICS.get(str(value), ("micro avg", "f1-score"))


def registrar(
    tracking_uri: str | None = None,
    *,
    corpus: Any = None,
    config: ExperimentConfig | None = None,
    main_evaluation_metric: tuple[str, str] = ("micro avg", "f1-score"),
) -> Callable[..., Any]:
    """What ``SearchResult.register_best`` calls: ``register_best`` on that search; for a search started
    from Python, with its corpus, its experiment and its best trial's objects (embeddings) as they are."""

    def register(result: SearchResult, name: str | None, **options: Any) -> Any:
        from .register.train import register_best

        given: dict[str, Any] = {"tracking_uri": tracking_uri, "main_evaluation_metric": main_evaluation_metric}
        if corpus is not None:
            given.update(corpus=corpus, config=config, best_objects=result.best.params if result.best else None)
        return register_best(result.parent_run_id, name, **{**given, **options})

    return register


@functools.wraps(search_job.run_search)
def run_search(config: Any, **options: Any) -> SearchResult:
    result = search_job.run_search(config, **options)
    result.registrar = registrar(options.get("tracking_uri"))
    return result


class ParamSelector:
    """Runs a hyperopt search over a Flair corpus given in Python, each trial tracked in MLflow."""

    task = ""

    def __init__(
        self,
        corpus: Any,
        label_type: str,
        base_path: str | Path,
        max_epochs: int = 50,
        evaluation_metric: Any = ("micro avg", "f1-score"),
        training_runs: int = 1,
        optimization_value: OptimizationValue | str = OptimizationValue.DEV_LOSS,
        *,
        multi_label: bool = False,
        fixed: dict[str, Any] | None = None,
        algorithm: str = "tpe",
        seed: int | None = None,
        experiment: str | None = None,
        tracking_uri: str | None = None,
        show_progress: bool = True,
    ) -> None:
        self.corpus = corpus
        self.label_type = label_type
        self.base_path = Path(base_path)
        self.max_epochs = max_epochs
        self.training_runs = training_runs
        self.optimization_value = OptimizationValue.parse(optimization_value)
        self.main_evaluation_metric = _main_metric(evaluation_metric)
        self.multi_label = multi_label
        self.fixed = dict(fixed or {})
        self.algorithm = algorithm
        self.seed = seed
        self.experiment = experiment
        self.tracking_uri = tracking_uri
        self.show_progress = show_progress
        self.result: SearchResult | None = None

    def optimize(self, space: SearchSpace, max_evals: int = 100) -> dict[str, Any]:
        """Search ``space`` for ``max_evals`` trials; returns the best parameters as real values."""
        config = ExperimentConfig(
            task=self.task,
            corpus=CorpusConfig(name=str(getattr(self.corpus, "name", None) or "corpus")),
            label_type=self.label_type,
            search_space={},
            fixed=self.fixed,
            multi_label=self.multi_label,
            max_epochs=self.max_epochs,
            training_runs=self.training_runs,
            max_evals=max_evals,
            optimization_value=self.optimization_value.config_name,
            algorithm=self.algorithm,
            seed=self.seed,
            experiment=self.experiment,
        )
        search = Search(
            config,
            corpus=self.corpus,
            space=space.get_search_space() if isinstance(space, SearchSpace) else space,
            tracking_uri=self.tracking_uri,
            base_path=self.base_path,
            show_progress=self.show_progress,
            main_evaluation_metric=self.main_evaluation_metric,
        )
        self.result = search.run()
        self.result.registrar = registrar(
            self.tracking_uri, corpus=self.corpus, config=config, main_evaluation_metric=self.main_evaluation_metric
        )
        return self.result.best_params

    def register_best(self, name: str | None = None, **options: Any) -> Any:
        """Train the best configuration :meth:`optimize` found, with the corpus and embedding objects the
        search used, test it once and register it as ``name`` (options: ``flair_mlflow.register_best``'s)."""
        if self.result is None:
            raise RuntimeError("nothing to register yet: run optimize() first")
        return self.result.register_best(name, **options)


class SequenceTaggerParamSelector(ParamSelector):
    """``SequenceTaggerParamSelector(corpus, tag_type, base_path, max_epochs=50, evaluation_metric=...,
    training_runs=1, optimization_value=..., **options)``: the options of :class:`ParamSelector`."""

    task = "sequence_tagging"

    def __init__(self, corpus: Any, tag_type: str, base_path: str | Path, *args: Any, **options: Any) -> None:
        super().__init__(corpus, tag_type, base_path, *args, **options)


class TextClassifierParamSelector(ParamSelector):
    """``TextClassifierParamSelector(corpus, label_type, multi_label, base_path, max_epochs=50, fine_tune=True,
    evaluation_metric=..., training_runs=1, optimization_value=..., **options)``."""

    task = "text_classification"

    def __init__(
        self,
        corpus: Any,
        label_type: str,
        multi_label: bool,
        base_path: str | Path,
        max_epochs: int = 50,
        fine_tune: bool = True,
        *args: Any,
        **options: Any,
    ) -> None:
        fixed = {"fine_tune": fine_tune, **options.pop("fixed", {})}
        super().__init__(
            corpus, label_type, base_path, max_epochs, *args, multi_label=multi_label, fixed=fixed, **options
        )
