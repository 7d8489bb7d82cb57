"""From a finished search to a servable, registered model: ``register_best``.

The search decides on dev; only the model registered here ever sees the test split, once, after training.
Its test score is what the champion rule compares (see :mod:`.champion`).
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..config import ExperimentConfig
from ..config.experiment import digest
from ..errors import ConfigError
from ..tracking.store import adopt_or_create_run, connect, ending
from ..tracking.tags import (
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
from ..tracking.writer import RunWriter
from ..training.models import plain_value
from .best import BestConfiguration, BestParamsSource, ConfigSource, read_best_configuration
from .champion import SCORE_METRIC, register_version
from .model_logging import log_flair_model

log = logging.getLogger("flair_mlflow")

#: the run tags a registered version carries too: where its configuration came from, its recipe
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
        **{k: getattr(config, k) for k in ("task", "label_type", "multi_label", "downsample", "seed", "max_epochs")},
        "corpus": config.corpus.model_dump(mode="json", exclude_defaults=True),
        "train_with_dev": train_with_dev,
        "params": {name: plain_value(value) for name, value in sorted(params.items())},
    }


def describe_test_split(config: ExperimentConfig, corpus: Any = None) -> str:
    """The test split a score was measured on (scores on different splits are not comparable); ``corpus``: one
    given instead of the experiment's, described as far as a Corpus tells."""
    if corpus is not None:
        return f"{getattr(corpus, 'name', 'corpus')} {config.label_type} test, {len(corpus.test)} sentences"
    text = f"{config.corpus.describe()} {config.label_type} test"
    return text + (f", downsample {config.downsample} seed {config.seed}" if config.downsample < 1.0 else "")


def _check_arguments(name: str | None, max_epochs: int | None, downsample: float | None) -> None:
    if name is not None and not str(name).strip():
        raise ConfigError("name", "must not be empty")
    if max_epochs is not None and (isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1):
        raise ConfigError("max_epochs", f"must be a whole number of at least 1, not {max_epochs!r}")
    if downsample is not None and not (isinstance(downsample, (int, float)) and 0.0 < float(downsample) <= 1.0):
        raise ConfigError("downsample", f"must be a fraction in (0, 1], not {downsample!r}")


def _prepare(experiment: ExperimentConfig, params: dict[str, Any], corpus: Any) -> tuple[Any, Any]:
    """The corpus and a fresh model; everything that can be wrong with the input fails here, before a run."""
    import flair

    from ..corpus.load import check_corpus, load_corpus
    from ..embeddings.factory import EmbeddingFactory
    from ..training.models import build_model, training_arguments

    if corpus is None:
        corpus = load_corpus(experiment.corpus, experiment.downsample, experiment.seed)
    check_corpus(corpus, experiment.label_type)
    if corpus.test is None or len(corpus.test) == 0:
        raise ConfigError("corpus", "has no test split; the registered model is scored on test")
    training_arguments(experiment.task, params)  # refuses what ModelTrainer would not take
    if experiment.seed is not None:
        flair.set_seed(experiment.seed)
    labels = corpus.make_label_dictionary(experiment.label_type, add_unk=False)
    factory = EmbeddingFactory(corpus)
    return corpus, build_model(experiment.task, params, experiment.label_type, labels, factory, experiment.multi_label)


def _train_and_log(
    writer: RunWriter,
    registration: Registration,
    experiment: ExperimentConfig,
    best: BestConfiguration,
    model: Any,
    corpus: Any,
    settings: dict,
) -> None:
    """Train into the run, score on test once, and log the model: fills ``test_score`` and ``model_uri``."""
    from ..training.plugins import MLflowLoggerPlugin
    from ..training.threads import TrialThreads
    from ..training.train import train_model

    run_id = registration.run_id
    shown = {k: getattr(experiment, k) for k in ("task", "label_type", "downsample", "seed", "max_epochs")}
    params = {**{n: plain_value(v) for n, v in best.params.items()}, **shown, "corpus": experiment.corpus.describe()}
    writer.log_params(run_id, {**params, "train_with_dev": settings["train_with_dev"]})
    writer.log_text(
        run_id, yaml.safe_dump({"config_hash": registration.config_hash, **settings}, sort_keys=False), "recipe.yaml"
    )
    plugin = MLflowLoggerPlugin(run_id=run_id, log_params=False, writer=writer)
    with (
        tempfile.TemporaryDirectory(prefix="flair-mlflow-register-") as base_path,
        TrialThreads(experiment.threads) as threads,
    ):
        result = train_model(
            model,
            corpus,
            experiment.task,
            best.params,
            base_path,
            max_epochs=experiment.max_epochs,
            plugins=[plugin],
            main_evaluation_metric=experiment.main_evaluation_metric,
            threads=threads,
            train_with_dev=settings["train_with_dev"],
        )
        registration.test_score = float(result["test_score"])
        metrics = {SCORE_METRIC: registration.test_score}
        if best.search_score is not None and math.isfinite(best.search_score):
            metrics["search_score"] = float(best.search_score)
        writer.log_metrics(run_id, metrics)
        if (Path(base_path) / "test.tsv").is_file():
            writer.log_file(run_id, Path(base_path) / "test.tsv", "test")
        model.save(Path(base_path) / "flair-model.pt")
        registration.model_uri = log_flair_model(
            writer.client, run_id, Path(base_path) / "flair-model.pt", experiment.task, experiment.label_type
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
) -> Registration:
    """Train the search's best configuration on its corpus, test it once, log and register it: the Python twin
    of ``flair-mlflow register``. With ``name`` the model is registered and gets the alias ``champion`` when its
    test score beats the current champion's (measured the same way), else ``challenger``. ``corpus`` replaces
    the search's corpus and ``best_objects`` the best trial's logged values (a search from Python: its Corpus
    and embedding objects). Every input error raises :class:`ConfigError` before a run is created."""
    _check_arguments(name, max_epochs, downsample)
    writer = connect(tracking_uri)
    best = read_best_configuration(
        writer.client, search_run_id, best_params=best_params, config=config, objects=best_objects
    )
    changes = {"max_epochs": max_epochs, "downsample": None if downsample is None else float(downsample)}
    experiment = best.config.model_copy(update={k: v for k, v in changes.items() if v is not None})
    loaded, model = _prepare(experiment, best.params, corpus)
    settings = recipe(experiment, best.params, train_with_dev)
    config_hash = digest(settings)
    metric = f"{SCORE_METRIC} ({' '.join(experiment.main_evaluation_metric)})"
    registration = Registration(
        "",
        "",
        math.nan,
        metric,
        describe_test_split(experiment, corpus),
        config_hash,
        name,
        source=best.source,
        params=dict(best.params),
    )
    tags = {
        REGISTER_TAG: "true",
        TASK_TAG: experiment.task,
        SEARCH_RUN_TAG: best.search_run_id,
        BEST_TRIAL_TAG: best.best_trial_run_id,
        CONFIG_HASH_TAG: config_hash,
        METRIC_TAG: metric,
        TEST_SPLIT_TAG: registration.test_split,
        SOURCE_TAG: best.source,
        REGISTERED_MODEL_TAG: name,
    }
    tags = {key: str(value) for key, value in tags.items() if value}
    where = writer.client.get_experiment(best.experiment_id).name if best.experiment_id else best.config.experiment
    run = adopt_or_create_run(
        writer, where, run_name or (f"register-{name}" if name else "register"), tags, refuse=best.search_run_id
    )
    registration.run_id = run.run_id
    log.info(
        "run %s: training %s for %d epochs on %s",
        run.run_id,
        best.source,
        experiment.max_epochs,
        getattr(corpus, "name", None) or experiment.corpus.describe(),
    )
    with ending(writer, run):
        _train_and_log(writer, registration, experiment, best, model, loaded, settings)
        if name:
            version_tags = {key: tags[key] for key in VERSION_TAGS if key in tags}
            registration.version, registration.alias, registration.reason = register_version(
                writer.client,
                name,
                registration.model_uri,
                run.run_id,
                registration.test_score,
                metric,
                registration.test_split,
                version_tags,
                best.source,
            )
    return registration
