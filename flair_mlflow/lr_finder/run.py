"""The range test as one MLflow run, the same from the ``lr_find`` entry point and from ``find_learning_rate``."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import flair
import torch
from flair.trainers import ModelTrainer

from ..config import ExperimentConfig
from ..config.parameters import PARAMETERS, coerce_value
from ..corpus.content import corpus_settings, downsampled_fraction
from ..corpus.load import check_corpus, load_for_experiment
from ..embeddings.factory import EmbeddingFactory
from ..errors import ConfigError
from ..tracking.store import adopt_or_create_run, connect, ending, say_where
from ..tracking.tags import LR_DEFAULT_RULE_TAG, LR_FIND_TAG, LR_WARNING_TAG, TASK_TAG
from ..tracking.writer import MetricBuffer, RunWriter
from ..training.device import on_device, resolve_device
from ..training.models import TAGGER_ARGUMENTS, build_model, optimizer_class, plain_value
from .curve import DEFAULTS, SUGGESTION_FILE_NAME, RangeSettings, read_learning_rate_tsv
from .plot import Plotter
from .range_test import optimizer_name, range_test
from .rules import LRSuggestion

log = logging.getLogger("flair_mlflow")
CURVE_METRICS = ("lr_find/learning_rate", "lr_find/loss", "lr_find/smoothed_loss")
SUGGESTIONS = {"suggested_lr": "suggested_lr", "suggested_lr_steepest": "steepest", "suggested_lr_valley": "valley", "suggested_lr_min_div_10": "minimum_div_10"}  # fmt: skip
TASKS = {"SequenceTagger": "sequence_tagging", "TextClassifier": "text_classification"}


@dataclass
class LRFindResult:
    """The run, the files (in ``output``, else by their names among the run's artefacts) and the suggestion."""

    run_id: str
    tsv_path: Path
    png_path: Path
    suggestion: LRSuggestion
    artifact_uri: str = ""


def log_range_test(writer: RunWriter, run_id: str, tsv_path: Path, suggestion: LRSuggestion, params: Mapping[str, Any] = {}) -> Path:  # fmt: skip
    """The plot beside the TSV, then params, tags, the curve, the suggestion and the files into ``run_id``."""
    png_path = Plotter().plot_learning_rate(tsv_path, suggestion=suggestion)
    writer.log_params(run_id, {name: plain_value(value) for name, value in params.items()})
    warning = {LR_WARNING_TAG: suggestion.warning} if suggestion.warning else {}
    writer.set_tags(run_id, {LR_DEFAULT_RULE_TAG: suggestion.default_rule, **warning})
    curve, buffer = read_learning_rate_tsv(tsv_path), MetricBuffer(writer.client, run_id)
    for step, *values in zip(curve.iterations, curve.learning_rates, curve.losses, curve.smoothed_losses):
        for key, value in zip(CURVE_METRICS, values):
            buffer.add(key, value, step)
    for key, attribute in SUGGESTIONS.items():
        if getattr(suggestion, attribute) is not None:
            buffer.add(key, getattr(suggestion, attribute))
    buffer.flush()
    for path in (tsv_path, png_path, tsv_path.parent / SUGGESTION_FILE_NAME):
        if path.exists():
            writer.log_file(run_id, path)
    return png_path


def find_learning_rate(trainer: Any, base_path: str | Path, optimizer: Any = None, file_name: str = "learning_rate.tsv",
                       log_to_mlflow: bool = True, **options: Any) -> Path:  # fmt: skip
    """Flair's old finder, fixed: ``options`` are RangeSettings', the rest go to ``optimizer`` (SGD by default)."""
    names = {f.name for f in fields(RangeSettings)}
    settings = RangeSettings(**{k: v for k, v in options.items() if k in names})
    optimizer = optimizer if optimizer is not None else torch.optim.SGD
    kwargs = {k: v for k, v in options.items() if k not in names}
    tsv_path, suggestion = range_test(trainer, Path(base_path) / file_name, optimizer, settings, kwargs)
    if log_to_mlflow:
        track_range_test(trainer, tsv_path, suggestion, settings.logged_params(optimizer_name(optimizer)))
    return tsv_path


def track_range_test(trainer: Any, tsv_path: Path, suggestion: LRSuggestion, settings: Mapping[str, Any]) -> str:
    """A range test run from Python, logged into the active run or a new ``lr_find`` run; its id."""
    model, corpus, named = trainer.model, trainer.corpus, corpus_settings(trainer.corpus)
    arguments = {n: getattr(model, n, None) for n in TAGGER_ARGUMENTS}
    params: dict[str, Any] = {
        "task": TASKS.get(type(model).__name__, type(model).__name__),
        "corpus": named["corpus"]["name"] if named else getattr(corpus, "name", "corpus"),
        "label_type": getattr(model, "label_type", None),
        "downsample": downsampled_fraction(corpus),
        **({"embeddings": model.embeddings} if getattr(model, "embeddings", None) is not None else {}),
        **{n: v for n, v in arguments.items() if isinstance(v, (bool, int, float, str))},
    }
    writer = connect()
    run = adopt_or_create_run(writer, None, "lr_find", {LR_FIND_TAG: "true", TASK_TAG: params["task"]})
    with ending(writer, run):
        log_range_test(writer, run.run_id, tsv_path, suggestion, {**params, **settings})
    artifact_uri = writer.client.get_run(run.run_id).info.artifact_uri
    log.info("LR finder: logged to MLflow run %s (files in %s)", run.run_id, artifact_uri)
    return run.run_id


def run_lr_find(config: ExperimentConfig | str | Path, *, params: Mapping[str, Any] | None = None, optimizer: Any = None,
                tracking_uri: str | None = None, parent_run_id: str | None = None, output: str | Path | None = None,
                run_name: str | None = None, **settings: Any) -> LRFindResult:  # fmt: skip
    """The test on the experiment's representative model as one run, all checked before that run exists."""
    config_path = None if isinstance(config, ExperimentConfig) else Path(config)
    config = ExperimentConfig.from_file(config_path) if config_path is not None else config
    for name in params or {}:
        if name not in PARAMETERS:
            raise ConfigError(f"param.{name}", f"unknown parameter '{name}'")
    tested = config.representative_params()
    tested.update({n: coerce_value(n, v, f"param.{n}") for n, v in (params or {}).items()})
    settings.setdefault("mini_batch_size", int(tested.get("mini_batch_size", DEFAULTS.mini_batch_size)))
    settings = RangeSettings(**{k: v for k, v in settings.items() if v is not None})
    settings.check()
    optimizer = optimizer_class(optimizer if optimizer is not None else tested.get("optimizer", "sgd"))
    kwargs = {k: v for k, v in tested.items() if k in PARAMETERS and PARAMETERS[k].group == "optimizer"}
    writer, corpus = connect(tracking_uri), load_for_experiment(config)
    check_corpus(corpus, config.label_type)
    if config.seed is not None:
        flair.set_seed(config.seed)
    labels = corpus.make_label_dictionary(config.label_type, add_unk=False)
    device = resolve_device(config.device, torch.cuda.is_available())
    with config.named_where_set(), on_device(device):
        embeddings = EmbeddingFactory(corpus)
        model = build_model(config.task, tested, config.label_type, labels, embeddings, config.multi_label)
    tags = {LR_FIND_TAG: "true", TASK_TAG: config.task}
    run = adopt_or_create_run(writer, config.experiment, run_name or "lr_find", tags, parent_run_id=parent_run_id)
    say_where(writer, run.experiment_id, None if parent_run_id else config.experiment)
    logged = {"task": config.task, "corpus": config.corpus.describe(), "label_type": config.label_type,
              "downsample": config.downsample, **{k: v for k, v in tested.items() if k != "learning_rate"}}  # fmt: skip
    logged.update(settings.logged_params(optimizer_name(optimizer)))
    with ending(writer, run), tempfile.TemporaryDirectory(prefix="flair-mlflow-lr-") as scratch, on_device(device):
        writer.log_params(run.run_id, {name: plain_value(value) for name, value in logged.items()})
        if config_path is not None:
            writer.log_file(run.run_id, config_path)
        tsv_path = (Path(output) if output else Path(scratch)) / "learning_rate.tsv"
        trainer = ModelTrainer(model, corpus)
        tsv_path, suggestion = range_test(trainer, tsv_path, optimizer, settings, kwargs, config.threads)
        png_path = log_range_test(writer, run.run_id, tsv_path, suggestion)
    if output is None:  # the files live on as the run's artefacts only: their names
        tsv_path, png_path = Path(tsv_path.name), Path(png_path.name)
    return LRFindResult(run.run_id, tsv_path, png_path, suggestion, writer.client.get_run(run.run_id).info.artifact_uri)
