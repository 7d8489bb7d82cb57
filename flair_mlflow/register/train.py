"""From a finished search to a servable, registered model: ``register_best``.

The search decides on dev; only the model registered here ever sees the test split, once, after
training. Its test score is what the champion rule compares (see :mod:`.champion`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..adapters.models import logged_values
from ..adapters.training import quiet_flair, train_model
from ..core.config import ExperimentConfig
from ..core.errors import ConfigError
from ..core.hashing import digest
from ..store.runs import adopt_or_create_run, connect, ending
from ..store.tags import (
    BEST_TRIAL_TAG,
    CONFIG_HASH_TAG,
    METRIC_TAG,
    REGISTER_TAG,
    REGISTERED_MODEL_TAG,
    SEARCH_RUN_TAG,
    SOURCE_TAG,
    TASK_TAG,
    TEST_SPLIT_TAG,
)
from ..store.writer import RunWriter
from .best import BestConfiguration, BestParamsSource, ConfigSource, read_best_configuration
from .champion import SCORE_METRIC, register_version
from .model_logging import log_flair_model

log = logging.getLogger("flair_mlflow")

#: The run tags a registered version carries too: where its configuration came from, its recipe.
VERSION_TAGS = (SEARCH_RUN_TAG, BEST_TRIAL_TAG, CONFIG_HASH_TAG)


@dataclass
class Registration:
    """What ``register_best`` did: the run, the logged model and, with a name, its version and alias."""

    run_id: str
    model_uri: str
    test_score: float
    metric: str
    test_split: str
    config_hash: str
    name: str | None = None
    version: str | None = None
    alias: str | None = None
    reason: str = ""
    source: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def registry_uri(self) -> str | None:
        """``models:/NAME@ALIAS`` (or ``models:/NAME/VERSION``) to load or serve the model by name."""
        if not self.name:
            return None
        return f"models:/{self.name}@{self.alias}" if self.alias else f"models:/{self.name}/{self.version}"


def recipe(config: ExperimentConfig, params: Mapping[str, Any], train_with_dev: bool) -> dict[str, Any]:
    """Everything that decides what model comes out, as plain data: what the hash is taken of."""
    return {
        "task": config.task,
        "label_type": config.label_type,
        "multi_label": config.multi_label,
        "corpus": config.to_dict()["corpus"],
        "downsample": config.downsample,
        "seed": config.seed,
        "max_epochs": config.max_epochs,
        "train_with_dev": train_with_dev,
        "params": logged_values(dict(sorted(params.items()))),
    }


def describe_test_split(config: ExperimentConfig, corpus: Any = None) -> str:
    """The test split a score was measured on; scores on different splits are not comparable.

    ``corpus``: a corpus given instead of the experiment's, described as far as a Corpus can tell.
    """
    if corpus is not None:
        return f"{getattr(corpus, 'name', 'corpus')} {config.label_type} test, {len(corpus.test)} sentences"
    text = f"{config.corpus.describe()} {config.label_type} test"
    if config.downsample < 1.0:
        text += f", downsample {config.downsample} seed {config.seed}"
    return text


def _check_arguments(name: str | None, max_epochs: int | None, downsample: float | None) -> None:
    if name is not None and not str(name).strip():
        raise ConfigError("name", "must not be empty")
    if max_epochs is not None and (isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1):
        raise ConfigError("max_epochs", f"must be a whole number of at least 1, not {max_epochs!r}")
    if downsample is not None and not (isinstance(downsample, (int, float)) and 0.0 < float(downsample) <= 1.0):
        raise ConfigError("downsample", f"must be a fraction in (0, 1], not {downsample!r}")


def _prepare(experiment: ExperimentConfig, params: dict[str, Any], corpus: Any, quiet: bool) -> tuple[Any, Any]:
    """The corpus and a fresh model; everything that can be wrong with the input fails here, before a run exists."""
    import flair

    from ..adapters.corpora import check_corpus, load_corpus
    from ..adapters.embeddings import EmbeddingFactory
    from ..adapters.models import build_model, training_arguments

    with quiet_flair(quiet):
        if corpus is None:
            corpus = load_corpus(experiment.corpus, experiment.downsample, experiment.seed)
        check_corpus(corpus, experiment.label_type)
        if corpus.test is None or len(corpus.test) == 0:
            raise ConfigError("corpus", "has no test split; the registered model is scored on test")
        training_arguments(experiment.task, params)  # refuses what ModelTrainer would not take
        if experiment.seed is not None:
            flair.set_seed(experiment.seed)
        label_dictionary = corpus.make_label_dictionary(experiment.label_type, add_unk=False)
        model = build_model(
            experiment.task,
            params,
            experiment.label_type,
            label_dictionary,
            EmbeddingFactory(corpus),
            experiment.multi_label,
        )
    return corpus, model


def _new_registration(
    experiment: ExperimentConfig,
    best: BestConfiguration,
    name: str | None,
    settings: dict[str, Any],
    main_evaluation_metric: tuple[str, str],
    corpus: Any,
) -> Registration:
    """What is known before training: the recipe's hash, the metric, the test split (``corpus``: one given)."""
    return Registration(
        run_id="",
        model_uri="",
        test_score=math.nan,
        config_hash=digest(settings),
        name=name,
        source=best.source,
        metric=f"{SCORE_METRIC} ({' '.join(main_evaluation_metric)})",
        params=dict(best.params),
        test_split=describe_test_split(experiment, corpus),
    )


def _run_tags(best: BestConfiguration, experiment: ExperimentConfig, registration: Registration) -> dict[str, str]:
    tags = {
        REGISTER_TAG: "true",
        TASK_TAG: experiment.task,
        SEARCH_RUN_TAG: best.search_run_id,
        BEST_TRIAL_TAG: best.best_trial_run_id,
        CONFIG_HASH_TAG: registration.config_hash,
        METRIC_TAG: registration.metric,
        TEST_SPLIT_TAG: registration.test_split,
        SOURCE_TAG: best.source,
        REGISTERED_MODEL_TAG: registration.name,
    }
    return {key: str(value) for key, value in tags.items() if value}


def _experiment_name(writer: RunWriter, best: BestConfiguration) -> str | None:
    """Where a new register run goes: the search's experiment, else the experiment file's."""
    if best.experiment_id:
        return writer.client.get_experiment(best.experiment_id).name
    return best.config.experiment


def _train_and_log(
    writer: RunWriter,
    registration: Registration,
    experiment: ExperimentConfig,
    best: BestConfiguration,
    model: Any,
    corpus: Any,
    settings: dict[str, Any],
    main_evaluation_metric: tuple[str, str],
    quiet: bool,
) -> None:
    """Train into the run, score on test once, and log the model: fills ``test_score`` and ``model_uri``."""
    from ..adapters.plugins import MLflowLoggerPlugin

    run_id = registration.run_id
    writer.log_params(
        run_id,
        {
            **logged_values(best.params),
            "task": experiment.task,
            "corpus": experiment.corpus.describe(),
            "label_type": experiment.label_type,
            "downsample": experiment.downsample,
            "seed": experiment.seed,
            "max_epochs": experiment.max_epochs,
            "train_with_dev": settings["train_with_dev"],
        },
    )
    writer.log_text(
        run_id, yaml.safe_dump({"config_hash": registration.config_hash, **settings}, sort_keys=False), "recipe.yaml"
    )
    plugin = MLflowLoggerPlugin(run_id=run_id, log_params=False, client=writer.client)
    with tempfile.TemporaryDirectory(prefix="flair-mlflow-register-") as base_path:
        with quiet_flair(quiet):
            result = train_model(
                model,
                corpus,
                experiment.task,
                best.params,
                base_path,
                max_epochs=experiment.max_epochs,
                plugins=[plugin],
                main_evaluation_metric=main_evaluation_metric,
                train_with_dev=settings["train_with_dev"],
            )
        registration.test_score = float(result["test_score"])
        metrics = {SCORE_METRIC: registration.test_score}
        if best.search_score is not None and math.isfinite(best.search_score):
            metrics["search_score"] = float(best.search_score)
        writer.log_metrics(run_id, metrics)
        predictions = Path(base_path) / "test.tsv"
        if predictions.is_file():
            writer.log_file(run_id, predictions, "test")
        model_file = Path(base_path) / "flair-model.pt"
        model.save(model_file)
        registration.model_uri = log_flair_model(
            writer.client, run_id, model_file, experiment.task, experiment.label_type
        )


def register_best(
    search_run_id: str | None = None,
    name: str | None = None,
    *,
    max_epochs: int | None = None,
    train_with_dev: bool = False,
    downsample: float | None = None,
    best_params: BestParamsSource | None = None,
    config: ConfigSource | None = None,
    corpus: Any = None,
    best_objects: Mapping[str, Any] | None = None,
    tracking_uri: str | None = None,
    run_name: str | None = None,
    main_evaluation_metric: tuple[str, str] = ("micro avg", "f1-score"),
    quiet: bool = True,
) -> Registration:
    """Train the search's best configuration on its corpus, test it once, log and register it.

    The Python twin of ``flair-mlflow register``. With ``name`` the model is registered and gets
    the alias ``champion`` when its test score beats the current champion's (measured the same
    way), else ``challenger``. ``corpus`` replaces the search's corpus and ``best_objects`` the best
    trial's logged values (a search started from Python: its Corpus and embedding objects; see
    ``SearchResult.register_best``). Every input error raises :class:`ConfigError` before a run is
    created. Changes no process-wide MLflow setting.
    """
    _check_arguments(name, max_epochs, downsample)
    writer = connect(tracking_uri)
    best = read_best_configuration(
        writer.client, search_run_id, best_params=best_params, config=config, objects=best_objects
    )
    experiment = dataclasses.replace(
        best.config,
        max_epochs=max_epochs if max_epochs is not None else best.config.max_epochs,
        downsample=float(downsample) if downsample is not None else best.config.downsample,
    )
    loaded, model = _prepare(experiment, best.params, corpus, quiet)
    corpus_name = getattr(corpus, "name", None) or experiment.corpus.describe()
    settings = recipe(experiment, best.params, train_with_dev)
    registration = _new_registration(experiment, best, name, settings, main_evaluation_metric, corpus)
    tags = _run_tags(best, experiment, registration)
    run_name = run_name or (f"register-{name}" if name else "register")
    run = adopt_or_create_run(writer, _experiment_name(writer, best), run_name, tags, refuse=best.search_run_id)
    registration.run_id = run.run_id
    log.info("run %s: training %s for %d epochs on %s", run.run_id, best.source, experiment.max_epochs, corpus_name)
    with ending(writer, run):
        _train_and_log(writer, registration, experiment, best, model, loaded, settings, main_evaluation_metric, quiet)
        if name:
            version_tags = {key: tags[key] for key in VERSION_TAGS if key in tags}
            registration.version, registration.alias, registration.reason = register_version(
                writer.client,
                name,
                registration.model_uri,
                run.run_id,
                registration.test_score,
                registration.metric,
                registration.test_split,
                version_tags,
                best.source,
            )
    return registration
