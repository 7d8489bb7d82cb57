"""The range test as one MLflow run: what the ``lr_find`` entry point and ``find_learning_rate`` both log.

The model the entry point tests is built as a trial builds it, the run reached and adopted as every command
does it; the curve goes in through :class:`MetricBuffer` (``log_batch`` in chunks, never a call per point).
In Python, the model's configuration is read off the trainer, as far as a model object tells it.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from ..config import ExperimentConfig
from ..config.parameters import PARAMETERS, coerce_value
from ..corpus.content import corpus_settings, downsampled_fraction
from ..errors import ConfigError
from ..tracking.store import adopt_or_create_run, connect, ending
from ..tracking.tags import LR_DEFAULT_RULE_TAG, LR_FIND_TAG, LR_WARNING_TAG, TASK_TAG
from ..tracking.writer import MetricBuffer, RunWriter
from ..training.models import TAGGER_ARGUMENTS, optimizer_class, plain_value
from .curve import DEFAULTS, SUGGESTION_FILE_NAME, RangeSettings, read_learning_rate_tsv
from .plot import Plotter
from .range_test import optimizer_name, range_test
from .rules import LRSuggestion

log = logging.getLogger("flair_mlflow")

CURVE_METRICS = ("lr_find/learning_rate", "lr_find/loss", "lr_find/smoothed_loss")
#: each rule's suggestion as LRSuggestion holds it; ``suggested_lr`` is what ``lr_from`` reads
SUGGESTION_METRICS = {
    "suggested_lr": "suggested_lr",
    "suggested_lr_steepest": "steepest",
    "suggested_lr_valley": "valley",
    "suggested_lr_min_div_10": "minimum_div_10",
}
TASKS = {"SequenceTagger": "sequence_tagging", "TextClassifier": "text_classification"}


@dataclass
class LRFindResult:
    """Where a range test's results are: the MLflow run, the files, the suggestion."""

    run_id: str
    tsv_path: Path  # in ``output``; without one, the name of the run's artefact
    png_path: Path
    suggestion: LRSuggestion
    artifact_uri: str = ""


def log_range_test(
    writer: RunWriter, run_id: str, tsv_path: Path, suggestion: LRSuggestion, params: Mapping[str, Any] = {}
) -> Path:
    """The plot beside the TSV, then params, tags, the curve, the suggestion and the files into ``run_id``."""
    png_path = Plotter().plot_learning_rate(tsv_path, suggestion=suggestion)
    if params:
        writer.log_params(run_id, {name: plain_value(value) for name, value in params.items()})
    writer.set_tags(
        run_id,
        {
            LR_DEFAULT_RULE_TAG: suggestion.default_rule,
            **({LR_WARNING_TAG: suggestion.warning} if suggestion.warning else {}),
        },
    )
    curve, buffer = read_learning_rate_tsv(tsv_path), MetricBuffer(writer.client, run_id)
    for step, *values in zip(curve.iterations, curve.learning_rates, curve.losses, curve.smoothed_losses):
        for key, value in zip(CURVE_METRICS, values):
            buffer.add(key, value, step)
    for key, attribute in SUGGESTION_METRICS.items():
        if getattr(suggestion, attribute) is not None:
            buffer.add(key, getattr(suggestion, attribute))
    buffer.flush()
    for path in (tsv_path, png_path, tsv_path.parent / SUGGESTION_FILE_NAME):
        if path.exists():
            writer.log_file(run_id, path)
    return png_path


def track_range_test(trainer: Any, tsv_path: Path, suggestion: LRSuggestion, settings: Mapping[str, Any]) -> str:
    """A range test run from Python, logged into the active run or a new ``lr_find`` run; its id."""
    model, corpus = trainer.model, trainer.corpus
    named = corpus_settings(corpus)
    params: dict[str, Any] = {
        "task": TASKS.get(type(model).__name__, type(model).__name__),
        "corpus": named["corpus"]["name"] if named else getattr(corpus, "name", "corpus"),
        "label_type": getattr(model, "label_type", None),
        "downsample": downsampled_fraction(corpus),
    }
    if getattr(model, "embeddings", None) is not None:
        params["embeddings"] = model.embeddings
    params.update(
        {n: getattr(model, n) for n in TAGGER_ARGUMENTS if isinstance(getattr(model, n, None), (bool, int, float, str))}
    )
    writer = connect()
    run = adopt_or_create_run(writer, None, "lr_find", {LR_FIND_TAG: "true", TASK_TAG: params["task"]})
    with ending(writer, run):
        log_range_test(writer, run.run_id, tsv_path, suggestion, {**params, **settings})
    log.info(
        "LR finder: logged to MLflow run %s (files in %s)",
        run.run_id,
        writer.client.get_run(run.run_id).info.artifact_uri,
    )
    return run.run_id


def model_params(config: ExperimentConfig, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The configuration tested: the fixed parameters, the given values, a representative for the rest."""
    for name in given or {}:
        if name not in PARAMETERS:
            raise ConfigError(f"param.{name}", f"unknown parameter '{name}'")
    return {**config.representative_params(), **{n: coerce_value(n, v, f"param.{n}") for n, v in (given or {}).items()}}


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
    """The range test on the experiment's model, logged as one MLflow run (inside ``mlflow run``, the run it
    opened; with ``parent_run_id``, nested under that search). Everything is checked before the run exists."""
    import flair
    from flair.trainers import ModelTrainer

    from ..corpus.load import check_corpus, load_for_experiment
    from ..embeddings.factory import EmbeddingFactory
    from ..training.models import build_model

    config_path = None if isinstance(config, ExperimentConfig) else Path(config)
    config = ExperimentConfig.from_file(config_path) if config_path is not None else config
    tested = model_params(config, params)
    batch = int(mini_batch_size or tested.get("mini_batch_size", DEFAULTS.mini_batch_size))
    settings = RangeSettings(
        start_learning_rate, end_learning_rate, iterations, batch, smoothing_factor, divergence_threshold, stop_early
    )
    settings.check()
    optimizer_type = optimizer_class(optimizer if optimizer is not None else tested.get("optimizer", "sgd"))
    optimizer_kwargs = {k: v for k, v in tested.items() if k in PARAMETERS and PARAMETERS[k].group == "optimizer"}
    writer = connect(tracking_uri)
    corpus = load_for_experiment(config)
    check_corpus(corpus, config.label_type)
    if config.seed is not None:
        flair.set_seed(config.seed)
    labels = corpus.make_label_dictionary(config.label_type, add_unk=False)
    with config.named_where_set():
        model = build_model(
            config.task, tested, config.label_type, labels, EmbeddingFactory(corpus), config.multi_label
        )
    tags = {LR_FIND_TAG: "true", TASK_TAG: config.task}
    run = adopt_or_create_run(writer, config.experiment, run_name or "lr_find", tags, parent_run_id=parent_run_id)
    logged = {
        "task": config.task,
        "corpus": config.corpus.describe(),
        "label_type": config.label_type,
        "downsample": config.downsample,
    }
    logged.update(
        {k: v for k, v in tested.items() if k != "learning_rate"},
        **settings.logged_params(optimizer_name(optimizer_type)),
    )
    with ending(writer, run), tempfile.TemporaryDirectory(prefix="flair-mlflow-lr-") as scratch:
        writer.log_params(run.run_id, {name: plain_value(value) for name, value in logged.items()})
        if config_path is not None:
            writer.log_file(run.run_id, config_path)
        folder = Path(output) if output else Path(scratch)
        tsv_path, suggestion = range_test(
            ModelTrainer(model, corpus),
            folder / "learning_rate.tsv",
            optimizer_type,
            settings,
            optimizer_kwargs,
            config.threads,
        )
        png_path = log_range_test(writer, run.run_id, tsv_path, suggestion)
    if output is None:  # the files live on as the run's artefacts only: their names
        tsv_path, png_path = Path(tsv_path.name), Path(png_path.name)
    return LRFindResult(run.run_id, tsv_path, png_path, suggestion, writer.client.get_run(run.run_id).info.artifact_uri)


def find_learning_rate(
    trainer: Any,
    base_path: Union[str, Path],
    optimizer: Any = None,
    start_learning_rate: float = DEFAULTS.start_learning_rate,
    end_learning_rate: float = DEFAULTS.end_learning_rate,
    iterations: int = DEFAULTS.iterations,
    mini_batch_size: int = DEFAULTS.mini_batch_size,
    stop_early: bool = DEFAULTS.stop_early,
    smoothing_factor: float = DEFAULTS.smoothing_factor,
    divergence_threshold: float = DEFAULTS.divergence_threshold,
    file_name: str = "learning_rate.tsv",
    max_grad_norm: Optional[float] = DEFAULTS.max_grad_norm,
    log_to_mlflow: bool = True,
    **optimizer_kwargs: Any,
) -> Path:
    """Run the range test on ``trainer.corpus.train`` and write ``base_path/file_name``; returns its path.

    The rate grows exponentially from ``start_learning_rate`` (first batch) to ``end_learning_rate`` (last);
    each batch is trained as Flair's trainer trains one, so the rate transfers; the recorded loss is per data
    point. ``optimizer`` is a class (built over the model's parameters with ``optimizer_kwargs``) or an
    instance. Weights, optimizer state, gradients, modes and the torch/python/numpy generators are restored
    afterwards. The suggestion goes beside the TSV (``learning_rate_suggestion.json``); with ``log_to_mlflow``
    the test is logged as the ``lr_find`` entry point logs it, into the active run or a new one.
    """
    if optimizer is None:
        from torch.optim import SGD as optimizer
    settings = RangeSettings(
        start_learning_rate,
        end_learning_rate,
        iterations,
        mini_batch_size,
        smoothing_factor,
        divergence_threshold,
        stop_early,
        max_grad_norm,
    )
    tsv_path, suggestion = range_test(trainer, Path(base_path) / file_name, optimizer, settings, optimizer_kwargs)
    if log_to_mlflow:
        track_range_test(trainer, tsv_path, suggestion, settings.logged_params(optimizer_name(optimizer)))
    return tsv_path
