"""The learning-rate finder as an experiment: a model from the experiment file, one MLflow run.

The model is built the way a trial builds it (``adapters.models.build_model`` over an
``EmbeddingFactory``); the run is reached and adopted the way every command does it
(``store.runs.connect``, ``adopt_or_create_run``); the curve is logged by ``store.lr_log``.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import flair
from flair.trainers import ModelTrainer

from ..adapters.corpora import check_corpus, load_for_experiment
from ..adapters.embeddings import EmbeddingFactory
from ..adapters.lr_finder import range_test
from ..adapters.lr_tracking import log_range_test
from ..adapters.models import build_model, logged_values, optimizer_class, optimizer_name
from ..adapters.training import quiet_flair
from ..core.config import ExperimentConfig
from ..core.errors import ConfigError
from ..core.lr_curve import DEFAULTS, RangeSettings
from ..core.lr_rules import LRSuggestion
from ..core.parameters import PARAMETERS, coerce_value
from ..core.space import representative_value
from ..store.runs import adopt_or_create_run, connect, ending
from ..store.tags import LR_FIND_TAG, TASK_TAG
from ..store.writer import RunWriter


@dataclass
class LRFindResult:
    """Where a range test's results are: the MLflow run, the files, the suggestion."""

    run_id: str
    tsv_path: Path  # in ``output``; without one, the name of the run's artefact
    png_path: Path
    suggestion: LRSuggestion
    artifact_uri: str = ""  # where the run's files are


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


def _check(settings: RangeSettings) -> None:
    """The options as the command line names them, checked before anything is loaded or logged."""
    start, end = settings.start_learning_rate, settings.end_learning_rate
    if not 0 < start < end:
        raise ConfigError("start_lr", f"must be positive and below end_lr ({start} >= {end})")
    if settings.iterations < 2:
        raise ConfigError("iterations", f"must be at least 2, not {settings.iterations}")
    if not 0 <= settings.smoothing_factor < 1:
        raise ConfigError("smoothing", f"must be in [0, 1), not {settings.smoothing_factor}")
    if settings.divergence_threshold <= 1:
        raise ConfigError("divergence_threshold", f"must be above 1, not {settings.divergence_threshold}")


def _tested_model(config: ExperimentConfig, tested: dict[str, Any]) -> tuple[Any, Any]:
    """The experiment's corpus and a fresh model of the tested configuration, built as a trial builds it."""
    corpus = load_for_experiment(config)
    check_corpus(corpus, config.label_type)
    factory = EmbeddingFactory(corpus)
    if config.seed is not None:
        flair.set_seed(config.seed)
    label_dictionary = corpus.make_label_dictionary(config.label_type, add_unk=False)
    try:
        model = build_model(config.task, tested, config.label_type, label_dictionary, factory, config.multi_label)
    except ConfigError as error:  # the tested values come from --param: point there
        raise type(error)(f"param.{error.field}" if "." not in error.field else error.field, error.problem) from error
    return model, corpus


def _logged_params(config: ExperimentConfig, tested: dict[str, Any], optimizer: type, settings: RangeSettings) -> dict:
    """The run's params: the configuration tested and the test's settings (the learning rate is swept, not set)."""
    logged = {
        "task": config.task,
        "corpus": config.corpus.describe(),
        "label_type": config.label_type,
        "downsample": config.downsample,
        **tested,
        **settings.logged_params(optimizer_name(optimizer)),
    }
    logged.pop("learning_rate", None)
    return logged_values(logged)


def _test_and_log(
    writer: RunWriter,
    run_id: str,
    model: Any,
    corpus: Any,
    optimizer: type,
    optimizer_kwargs: dict[str, Any],
    settings: RangeSettings,
    output: str | Path | None,
) -> LRFindResult:
    """The range test, its plot and its logging; files in ``output``, else only in the run."""
    with tempfile.TemporaryDirectory(prefix="flair-mlflow-lr-") as scratch:
        folder = Path(output) if output else Path(scratch)
        with quiet_flair(True, logging.ERROR):  # the command prints where the files are, and any warning
            tsv_path, suggestion = range_test(
                ModelTrainer(model, corpus), folder / "learning_rate.tsv", optimizer, settings, optimizer_kwargs
            )
            png_path = log_range_test(writer, run_id, tsv_path, suggestion)
    if output is None:  # the files live on as the run's artefacts only: return their names
        tsv_path, png_path = Path(tsv_path.name), Path(png_path.name)
    artifact_uri = writer.client.get_run(run_id).info.artifact_uri
    return LRFindResult(run_id, tsv_path, png_path, suggestion, artifact_uri)


def run_lr_find(
    config: ExperimentConfig | str | Path,
    *,
    params: Mapping[str, Any] | None = None,
    optimizer: Any = None,
    start_learning_rate: float = DEFAULTS.start_learning_rate,
    end_learning_rate: float = DEFAULTS.end_learning_rate,
    iterations: int = DEFAULTS.iterations,
    mini_batch_size: int | None = None,
    smoothing_factor: float = DEFAULTS.smoothing_factor,
    divergence_threshold: float = DEFAULTS.divergence_threshold,
    stop_early: bool = DEFAULTS.stop_early,
    tracking_uri: str | None = None,
    parent_run_id: str | None = None,
    output: str | Path | None = None,
    run_name: str | None = None,
) -> LRFindResult:
    """Run the range test on the experiment's model and log it as one MLflow run.

    Everything that can be wrong is checked before the run is created. Inside ``mlflow run``
    the run is the one MLflow opened; with ``parent_run_id`` it is nested under that search.
    """
    config_path = None if isinstance(config, ExperimentConfig) else Path(config)
    if config_path is not None:
        config = ExperimentConfig.from_file(config_path)
    tested = model_params(config, params)
    batch_size = int(mini_batch_size or tested.get("mini_batch_size", DEFAULTS.mini_batch_size))
    settings = RangeSettings(
        start_learning_rate,
        end_learning_rate,
        iterations,
        batch_size,
        smoothing_factor,
        divergence_threshold,
        stop_early,
    )
    _check(settings)
    optimizer_type = optimizer_class(optimizer if optimizer is not None else tested.get("optimizer", "sgd"))
    optimizer_kwargs = {k: v for k, v in tested.items() if k in PARAMETERS and PARAMETERS[k].group == "optimizer"}
    with quiet_flair(True):
        model, corpus = _tested_model(config, tested)

    writer = connect(tracking_uri)
    tags = {LR_FIND_TAG: "true", TASK_TAG: config.task}
    run = adopt_or_create_run(writer, config.experiment, run_name or "lr_find", tags, parent_run_id=parent_run_id)
    with ending(writer, run):
        writer.log_params(run.run_id, _logged_params(config, tested, optimizer_type, settings))
        if config_path is not None:
            writer.log_file(run.run_id, config_path)
        result = _test_and_log(writer, run.run_id, model, corpus, optimizer_type, optimizer_kwargs, settings, output)
    return result
