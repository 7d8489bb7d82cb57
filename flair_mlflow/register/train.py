"""From a finished search to a servable, registered model: ``register_best``. The search decides on dev; only the
model registered here sees the test split, once, and that score is what the champion rule compares."""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import flair
import mlflow
import yaml

from ..config import ExperimentConfig
from ..config.experiment import digest
from ..corpus.load import check_corpus, load_corpus
from ..embeddings.factory import EmbeddingFactory
from ..errors import ConfigError
from ..tracking import tags as T
from ..tracking.store import adopt_or_create_run, connect, ending, say_where
from ..tracking.writer import RunWriter
from ..training.device import on_device
from ..training.models import build_model, plain_value, training_arguments
from ..training.plugins import MLflowLoggerPlugin
from ..training.threads import TrialThreads
from ..training.train import train_model
from .best import BestConfiguration, BestParamsSource, ConfigSource, kept_model_id, read_best_configuration
from .champion import SCORE_METRIC, register_version
from .model_logging import log_flair_model

log = logging.getLogger("flair_mlflow")
KEPT_SOURCE = "the kept model of"  # a from_trial registration's source: "the kept model of trial 3 of search ..."
VERSION_TAGS = (T.SEARCH_RUN_TAG, T.BEST_TRIAL_TAG, T.CONFIG_HASH_TAG)  # the run tags a version carries too


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
    names = ("task", "label_type", "multi_label", "downsample", "seed", "max_epochs")
    settings = {k: getattr(config, k) for k in names}
    corpus = config.corpus.model_dump(mode="json", exclude_defaults=True)
    plain = {n: plain_value(v) for n, v in sorted(params.items())}
    return {**settings, "corpus": corpus, "train_with_dev": train_with_dev, "params": plain}


def describe_test_split(config: ExperimentConfig, corpus: Any = None) -> str:
    """The test split a score was measured on (scores on different splits are not comparable)."""
    if corpus is not None:
        return f"{getattr(corpus, 'name', 'corpus')} {config.label_type} test, {len(corpus.test)} sentences"
    sample = f", downsample {config.downsample} seed {config.seed}" if config.downsample < 1.0 else ""
    return f"{config.corpus.describe()} {config.label_type} test{sample}"


def _prepare(experiment: ExperimentConfig, best: BestConfiguration, corpus: Any, from_trial: bool) -> tuple[Any, Any]:
    """The corpus and (unless ``from_trial``) a model seeded as the best trial's first run; input errors fail here."""
    corpus = corpus if corpus is not None else load_corpus(experiment.corpus, experiment.downsample, experiment.seed)
    check_corpus(corpus, experiment.label_type)
    if corpus.test is None or len(corpus.test) == 0:
        raise ConfigError("corpus", "has no test split; the registered model is scored on test")
    if from_trial:
        return corpus, None
    params = best.params
    training_arguments(experiment.task, params)  # refuses what ModelTrainer would not take
    labels = corpus.make_label_dictionary(experiment.label_type, add_unk=False)  # before seeding, as in a trial
    if experiment.seed is not None:
        flair.set_seed(experiment.seed + 1000 * (best.trial_number or 0))
    factory = EmbeddingFactory(corpus)
    return corpus, build_model(experiment.task, params, experiment.label_type, labels, factory, experiment.multi_label)


def _log_recipe(writer: RunWriter, registration: Registration, experiment: ExperimentConfig, best: BestConfiguration, settings: dict) -> None:  # fmt: skip
    """What the run registers: the configuration's params and ``recipe.yaml`` (what its hash is of)."""
    shown = {k: getattr(experiment, k) for k in ("task", "label_type", "downsample", "seed", "max_epochs")}
    shown.update(corpus=experiment.corpus.describe(), train_with_dev=settings["train_with_dev"])
    params = {**best.params, **shown}
    params.update({"from_trial": True} if registration.source.startswith(KEPT_SOURCE) else {})
    writer.log_params(registration.run_id, {name: plain_value(value) for name, value in params.items()})
    recipe_text = yaml.safe_dump({"config_hash": registration.config_hash, **settings}, sort_keys=False)
    writer.log_text(registration.run_id, recipe_text, "recipe.yaml")


def _log_scores(writer: RunWriter, registration: Registration, best: BestConfiguration) -> None:
    found = best.search_score is not None and math.isfinite(best.search_score)
    search_score = {"search_score": float(best.search_score)} if found else {}
    writer.log_metrics(registration.run_id, {SCORE_METRIC: registration.test_score, **search_score})


def _train_and_log(writer: RunWriter, registration: Registration, experiment: ExperimentConfig, best: BestConfiguration, model: Any, corpus: Any, settings: dict) -> None:  # fmt: skip
    """Train into the run as the trials did, score on test once, and log the model: fills the registration."""
    run_id = registration.run_id
    with (
        tempfile.TemporaryDirectory(prefix="flair-mlflow-register-") as folder,
        TrialThreads(experiment.threads, device=str(flair.device)) as threads,
    ):
        plugins = [MLflowLoggerPlugin(run_id=run_id, log_params=False, writer=writer)]
        with_dev = settings["train_with_dev"]
        result = train_model(model, corpus, experiment, best.params, folder, plugins, threads, with_dev)
        registration.test_score = float(result["test_score"])
        _log_scores(writer, registration, best)
        if (Path(folder) / "test.tsv").is_file():
            writer.log_file(run_id, Path(folder) / "test.tsv", "test")
        saved = Path(folder) / "flair-model.pt"
        model.save(saved)
        registration.model_uri = log_flair_model(writer.client, run_id, saved, experiment.task, experiment.label_type)


def _test_kept_model(writer: RunWriter, registration: Registration, experiment: ExperimentConfig, best: BestConfiguration, model_id: str, corpus: Any) -> None:  # fmt: skip
    """The kept model's test score, measured as a training's final evaluation is, and its URI, into the registration."""
    location = writer.client.get_logged_model(model_id).artifact_location
    with tempfile.TemporaryDirectory(prefix="flair-mlflow-trial-model-") as folder:
        path = mlflow.artifacts.download_artifacts(location, dst_path=folder, tracking_uri=writer.client.tracking_uri)
        model = mlflow.pyfunc.load_model(path).unwrap_python_model().model
    metric, batch = tuple(experiment.main_evaluation_metric), int(best.params.get("mini_batch_size", 32))
    options = {"gold_label_type": experiment.label_type, "main_evaluation_metric": metric, "mini_batch_size": batch}
    registration.test_score = float(model.evaluate(corpus.test, **options).main_score)
    _log_scores(writer, registration, best)
    registration.model_uri = f"models:/{model_id}"


def register_best(search_run_id: str | None = None, name: str | None = None, *, max_epochs: int | None = None,
                  train_with_dev: bool = False, downsample: float | None = None,
                  best_params: BestParamsSource | None = None, config: ConfigSource | None = None, corpus: Any = None,
                  best_objects: Mapping[str, Any] | None = None, tracking_uri: str | None = None,
                  run_name: str | None = None, from_trial: bool = False) -> Registration:  # fmt: skip
    """The Python twin of ``flair-mlflow register``: the best configuration trained (``from_trial``: the kept model),
    tested once and, with ``name``, registered under the champion rule; ``corpus`` and ``best_objects`` stand in for
    the search's corpus and logged values (a search from Python). Input errors raise before a run is created."""
    if name is not None and not str(name).strip():
        raise ConfigError("name", "must not be empty")
    changes = {k: v for k, v in {"max_epochs": max_epochs, "downsample": downsample}.items() if v is not None}
    if from_trial and (changes or train_with_dev or best_params is not None):
        raise ConfigError("from_trial", "registers the trial's model as it was trained; leave out --max-epochs, "
                          "--downsample, --train-with-dev and --best-params, or train again without --from-trial")  # fmt: skip
    writer = connect(tracking_uri)
    client = writer.client
    best = read_best_configuration(client, search_run_id, best_params=best_params, config=config, objects=best_objects)
    model_id = kept_model_id(client, best.best_trial_run_id) if from_trial else None
    reached = (
        client.get_run(best.best_trial_run_id).data.tags.get(T.EPOCHS_REACHED_TAG) if best.best_trial_run_id else None
    )
    if reached and max_epochs is None and not from_trial and int(reached) != best.config.max_epochs:
        changes["max_epochs"] = int(reached)  # a multi-fidelity search's best trial was scored at its rung's epochs
    if best.config.scheduled and not from_trial:  # the configuration trains straight through, in one go
        changes["scheduler"] = {"type": "none"}
    experiment = best.config.replaced(**changes) if changes else best.config
    with on_device(experiment.device):
        loaded, model = _prepare(experiment, best, corpus, from_trial)
    settings = recipe(experiment, best.params, train_with_dev)
    metric = f"{SCORE_METRIC} ({' '.join(experiment.main_evaluation_metric)})"
    source = f"{KEPT_SOURCE} {best.source}" if model_id else best.source
    registration = Registration(
        run_id="",
        model_uri="",
        test_score=math.nan,
        metric=metric,
        test_split=describe_test_split(experiment, corpus),
        config_hash=digest(settings),
        name=name,
        source=source,
        params=dict(best.params),
    )
    tags = {
        T.REGISTER_TAG: "true",
        T.TASK_TAG: experiment.task,
        T.SEARCH_RUN_TAG: best.search_run_id,
        T.BEST_TRIAL_TAG: best.best_trial_run_id,
        T.CONFIG_HASH_TAG: registration.config_hash,
        T.METRIC_TAG: metric,
        T.TEST_SPLIT_TAG: registration.test_split,
        T.SOURCE_TAG: source,
        T.REGISTERED_MODEL_TAG: name,
    }
    tags = {key: str(value) for key, value in tags.items() if value}
    where = client.get_experiment(best.experiment_id).name if best.experiment_id else best.config.experiment
    run_name = run_name or (f"register-{name}" if name else "register")
    run = adopt_or_create_run(writer, where, run_name, tags, refuse=best.search_run_id)
    registration.run_id = run.run_id
    say_where(writer, run.experiment_id, where)
    doing = "testing" if model_id else f"training for {experiment.max_epochs} epochs"
    corpus_name = getattr(corpus, "name", None) or experiment.corpus.describe()
    log.info("run %s: %s %s on %s", run.run_id, doing, source, corpus_name)
    with ending(writer, run), on_device(experiment.device):
        _log_recipe(writer, registration, experiment, best, settings)
        if model_id is not None:
            _test_kept_model(writer, registration, experiment, best, model_id, loaded)
        else:
            _train_and_log(writer, registration, experiment, best, model, loaded, settings)
        if name:
            version_tags = {key: tags[key] for key in VERSION_TAGS if key in tags}
            scored = (registration.test_score, metric, registration.test_split)
            registration.version, registration.alias, registration.reason = register_version(
                client, name, registration.model_uri, run.run_id, *scored, version_tags, source
            )
    return registration
