"""The learning-rate finder as an experiment: a model from the experiment file, one MLflow run.

Also the other direction: a search that takes its learning-rate range from a finder run
(``lr_from``), so the range test and the search are linked in the tracking store.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..core.config import ExperimentConfig
from ..core.errors import ConfigError
from ..core.parameters import PARAMETERS, coerce_value
from ..core.space import representative_value
from ..store.tags import LR_FIND_TAG, TASK_TAG


@dataclass
class LRFindResult:
    """Where a range test's results are: the MLflow run, the files, the suggestion."""

    run_id: str
    tsv_path: Path
    png_path: Path
    suggestion: Any  # lr_finder.LRSuggestion


def model_params(config: ExperimentConfig, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The configuration tested: fixed parameters, given values, a representative for the rest."""
    given = dict(given or {})
    for name in given:
        if name not in PARAMETERS:
            raise ConfigError(f"param.{name}", f"unknown parameter '{name}'")
    params: dict[str, Any] = {}
    for name, spec in config.search_space.items():
        params[name] = coerce_value(name, given[name]) if name in given else representative_value(name, spec)
    params.update(config.fixed)
    params.update({name: coerce_value(name, value) for name, value in given.items()})
    return params


def run_lr_find(config: ExperimentConfig | str | Path, *, params: Mapping[str, Any] | None = None,
                optimizer: Any = None, start_learning_rate: float = 1e-7, end_learning_rate: float = 10.0,
                iterations: int = 100, mini_batch_size: int | None = None, smoothing_factor: float = 0.98,
                divergence_threshold: float = 4.0, stop_early: bool = True, tracking_uri: str | None = None,
                parent_run_id: str | None = None, output: str | Path | None = None,
                run_name: str | None = None) -> LRFindResult:  # fmt: skip
    """Run the range test on the experiment's model and log it as one MLflow run.

    Everything that can be wrong is checked before the run is created. Inside ``mlflow run``
    the run is the one MLflow opened; with ``parent_run_id`` it is nested under that search.
    """
    import flair
    from flair.trainers import ModelTrainer

    from ..adapters.corpora import check_corpus, load_for_experiment
    from ..adapters.embeddings import EmbeddingFactory
    from ..adapters.lr_finder import (
        Plotter,
        find_learning_rate,
        log_lr_find_to_mlflow,
        read_learning_rate_tsv,
        suggest_learning_rates,
    )
    from ..adapters.models import build_model, logged_values, optimizer_class, optimizer_name
    from ..store.runs import adopt_or_create_run, connect

    config_path = None
    if not isinstance(config, ExperimentConfig):
        config_path = Path(config)
        config = ExperimentConfig.from_file(config_path)
    if not 0 < start_learning_rate < end_learning_rate:
        raise ConfigError("start_lr", f"must be positive and below end_lr ({start_learning_rate} >= {end_learning_rate})")
    if iterations < 2:
        raise ConfigError("iterations", f"must be at least 2, not {iterations}")
    if not 0 <= smoothing_factor < 1:
        raise ConfigError("smoothing", f"must be in [0, 1), not {smoothing_factor}")
    if divergence_threshold <= 1:
        raise ConfigError("divergence_threshold", f"must be above 1, not {divergence_threshold}")

    tested = model_params(config, params)
    optimizer_value = optimizer if optimizer is not None else tested.get("optimizer", "sgd")
    optimizer_type = optimizer_class(optimizer_value)
    batch_size = int(mini_batch_size or tested.get("mini_batch_size", 32))
    optimizer_kwargs = {k: v for k, v in tested.items() if k in PARAMETERS and PARAMETERS[k].group == "optimizer"}

    corpus = load_for_experiment(config)
    check_corpus(corpus, config.label_type)
    factory = EmbeddingFactory(corpus)
    if config.seed is not None:
        flair.set_seed(config.seed)
    label_dictionary = corpus.make_label_dictionary(config.label_type, add_unk=False)
    try:
        model = build_model(config.task, tested, config.label_type, label_dictionary, factory, config.multi_label)
    except ConfigError as error:
        raise type(error)(f"param.{error.field}" if "." not in error.field else error.field, error.problem) from error

    writer = connect(tracking_uri)
    tags = {LR_FIND_TAG: "true", TASK_TAG: config.task}
    run = adopt_or_create_run(writer, config.experiment, run_name or "lr_find", tags, parent_run_id=parent_run_id)
    run_id, created = run.run_id, run.created
    logged = {
        "task": config.task,
        "corpus": config.corpus.describe(),
        "label_type": config.label_type,
        "downsample": config.downsample,
        **tested,
        "optimizer": optimizer_name(optimizer_type),
        "start_lr": start_learning_rate,
        "end_lr": end_learning_rate,
        "iterations": iterations,
        "mini_batch_size": batch_size,
        "smoothing": smoothing_factor,
        "divergence_threshold": divergence_threshold,
    }
    logged.pop("learning_rate", None)  # swept, not set
    try:
        writer.log_params(run_id, logged_values(logged))
        if config_path is not None:
            writer.log_file(run_id, config_path)
        with tempfile.TemporaryDirectory(prefix="flair-mlflow-lr-") as scratch:
            folder = Path(output) if output else Path(scratch)
            folder.mkdir(parents=True, exist_ok=True)
            trainer = ModelTrainer(model, corpus)
            tsv_path = find_learning_rate(
                trainer, folder, optimizer_type, start_learning_rate=start_learning_rate,
                end_learning_rate=end_learning_rate, iterations=iterations, mini_batch_size=batch_size,
                stop_early=stop_early, smoothing_factor=smoothing_factor,
                divergence_threshold=divergence_threshold, **optimizer_kwargs,
            )  # fmt: skip
            curve = read_learning_rate_tsv(tsv_path)
            suggestion = suggest_learning_rates(
                curve.learning_rates, curve.smoothed_losses, divergence_threshold=divergence_threshold
            )
            png_path = Plotter().plot_learning_rate(tsv_path, suggestion=suggestion)
            log_lr_find_to_mlflow(tsv_path, suggestion, png_path, params=None, run_id=run_id, client=writer.client)
            if output is None:  # the files live on as the run's artefacts only: return their names
                tsv_path, png_path = Path(tsv_path.name), Path(png_path.name)
    except BaseException:
        if created:
            writer.end(run_id, "FAILED")
        raise
    if created:
        writer.end(run_id, "FINISHED")
    return LRFindResult(run_id, tsv_path, png_path, suggestion)
