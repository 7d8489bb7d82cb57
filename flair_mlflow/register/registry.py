"""From a finished search to a servable, registered model: ``register_best`` and ``search_trials``.

The search decides on dev; only the model registered here ever sees the test split, once, after
training. Its test score is what the champion rule compares, and only between versions scored
the same way (same metric, same test split), so an alias never moves on an unfair comparison.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import mlflow
import yaml
from mlflow.exceptions import MlflowException

from ..adapters.training import quiet_flair
from ..core.config import RESERVED_TRAINING_ARGUMENTS, ExperimentConfig
from ..core.errors import ConfigError
from ..core.parameters import PARAMETERS, OptimizationValue, check_parameter_name, coerce_value
from ..store.runs import artifact_text, child_runs, connect, experiment_id_for, get_search_run, resolved_experiment_text
from ..store.tags import (
    BEST_TRIAL_TAG,
    CONFIG_HASH_TAG,
    METRIC_TAG,
    REGISTER_TAG,
    SCORE_TAG,
    SEARCH_RUN_TAG,
    TASK_TAG,
    TEST_SPLIT_TAG,
    TRIAL_NUMBER_TAG,
)
from ..store.writer import RunWriter

log = logging.getLogger("flair_mlflow")

CHAMPION = "champion"
CHALLENGER = "challenger"
#: The run metric the champion rule compares (higher is better: Flair's main score on test).
SCORE_METRIC = "test_score"
MODEL_NAME = "model"
EXAMPLE_TEXTS = ["George Washington went to Washington .", "What is the capital of France ?"]
#: Settings ``register`` makes itself; a configuration that names them would fight it.
REGISTER_ARGUMENTS = {"train_with_dev", "max_epochs"} | set(RESERVED_TRAINING_ARGUMENTS)


# --- reading a search back -----------------------------------------------------------------------
@dataclass
class BestConfiguration:
    """A configuration worth training for good, with where it came from."""

    config: ExperimentConfig
    params: dict[str, Any]
    search_run_id: str | None = None
    best_trial_run_id: str | None = None
    experiment_id: str | None = None
    search_score: float | None = None
    source: str = ""


def _client(tracking_uri: str | None) -> RunWriter:
    """A writer for the store, probed first; MLflow's default URI is set to it because the model is
    logged and registered through MLflow's fluent API, which reads that default."""
    writer = connect(tracking_uri)
    mlflow.set_tracking_uri(writer.tracking_uri)
    return writer


def search_config(client: mlflow.MlflowClient, run) -> ExperimentConfig:
    """The search's experiment, as it ran (after overrides), from ``experiment_resolved.yaml``."""
    run_id = run.info.run_id
    text = resolved_experiment_text(client, run_id)
    if text is None:
        problem = f"search '{run_id}' has no experiment_resolved.yaml; give the experiment file with --config"
        raise ConfigError("search_run_id", problem)
    try:
        return ExperimentConfig.from_dict(yaml.safe_load(text))
    except (ConfigError, yaml.YAMLError, TypeError, AttributeError) as error:
        raise ConfigError(
            "search_run_id",
            f"the experiment of search '{run_id}' cannot be rebuilt from experiment_resolved.yaml ({error}); "
            "give the experiment file with --config",
        ) from None


def _param_from_text(text: str) -> Any:
    """A parameter's value from the string MLflow stores (``0.1``, ``True``, ``None``, ``adam``)."""
    if text == "None":
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (str, int, float, bool, list)) else text


def typed_params(params: Mapping[str, Any], task: str, field_prefix: str = "best_params") -> dict[str, Any]:
    """Real values of a configuration, refusing what a registration sets itself."""
    typed: dict[str, Any] = {}
    for name, value in params.items():
        field_name = f"{field_prefix}.{name}"
        if name in REGISTER_ARGUMENTS:
            raise ConfigError(field_name, "is set by register itself (see --max-epochs, --train-with-dev)")
        if value is None:
            continue
        if name in PARAMETERS:
            check_parameter_name(name, task, field_name)
            value = coerce_value(name, value, field_name)
        typed[name] = value
    return typed


def read_best_params(source: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """A ``best_params.yaml`` (a flat mapping parameter -> value; comments allowed) or a mapping."""
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    if not path.is_file():
        raise ConfigError("best_params", f"file '{path}' does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        raise ConfigError("best_params", f"'{path}' is not valid YAML") from None
    if not isinstance(data, Mapping) or not data:
        raise ConfigError("best_params", f"'{path}' must be a mapping from parameter name to value")
    return {str(k): v for k, v in data.items()}


def _maximise(parent) -> bool:
    objective = OptimizationValue.parse(parent.data.params.get("optimization_value", "dev_score"))
    return objective is OptimizationValue.DEV_SCORE


def _best_of_search(client: mlflow.MlflowClient, parent) -> tuple[dict[str, Any], str | None, float | None, str]:
    """The best trial's parameters: the search's own ``best_params.yaml`` when it finished, else
    the best finished trial run (a search still running or cut short)."""
    run_id = parent.info.run_id
    best_trial = parent.data.tags.get("best_trial_run_id") or None
    text = artifact_text(client, run_id, "best_params.yaml") if best_trial else None
    if text is not None:
        params = yaml.safe_load(text) or {}
        number = parent.data.tags.get("best_trial_number", "?")
        return dict(params), best_trial, parent.data.metrics.get("best_score"), f"trial {number} of search {run_id}"
    finished = [
        r for r in child_runs(client, parent.info.experiment_id, parent.info.run_id)
        if r.info.status == "FINISHED" and math.isfinite(r.data.metrics.get("final_score", math.nan))
    ]  # fmt: skip
    if not finished:
        raise ConfigError("search_run_id", f"search '{run_id}' has no finished trial to register")
    sign = -1.0 if _maximise(parent) else 1.0
    best = min(finished, key=lambda r: (sign * r.data.metrics["final_score"], _trial_number(r)))
    params = {k: _param_from_text(v) for k, v in best.data.params.items()}
    source = f"trial {best.data.tags.get(TRIAL_NUMBER_TAG, '?')} of search {run_id}"
    return params, best.info.run_id, best.data.metrics["final_score"], source


def _trial_number(run) -> int:
    try:
        return int(run.data.tags.get(TRIAL_NUMBER_TAG, 0))
    except ValueError:
        return 0


def best_configuration(search_run_id: str | None = None, *,
                       best_params: str | os.PathLike | Mapping[str, Any] | None = None,
                       config: ExperimentConfig | str | os.PathLike | None = None,
                       tracking_uri: str | None = None) -> BestConfiguration:  # fmt: skip
    """The best configuration of a search (or of a ``best_params.yaml``) and the experiment it belongs to.

    The experiment comes from ``config`` when given, else from the search's
    ``experiment_resolved.yaml``; the parameters from ``best_params`` when given, else from the
    search's best trial. Raises :class:`ConfigError` before anything is written.
    """
    writer = _client(tracking_uri)
    experiment = None
    if config is not None:
        experiment = config if isinstance(config, ExperimentConfig) else ExperimentConfig.from_file(config)
    parent = get_search_run(writer.client, search_run_id, "search_run_id") if search_run_id else None
    if parent is None and experiment is None:
        raise ConfigError(
            "search_run_id", "give the run id of a search, or an experiment file (--config) with --best-params"
        )
    if experiment is None:
        experiment = search_config(writer.client, parent)
    if best_params is not None:
        params, trial, score = read_best_params(best_params), None, None
        source = "best_params.yaml" if isinstance(best_params, Mapping) else str(best_params)
    elif parent is not None:
        params, trial, score, source = _best_of_search(writer.client, parent)
    else:
        raise ConfigError("best_params", "without a search run id, give the configuration to train as --best-params")
    merged = {**experiment.fixed, **params}
    return BestConfiguration(
        config=experiment,
        params=typed_params(merged, experiment.task),
        search_run_id=parent.info.run_id if parent else None,
        best_trial_run_id=trial,
        experiment_id=parent.info.experiment_id if parent else None,
        search_score=score,
        source=source,
    )


# --- training the final model ------------------------------------------------------------------
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
    from ..adapters.models import plain_value as _plain

    return {
        "task": config.task,
        "label_type": config.label_type,
        "multi_label": config.multi_label,
        "corpus": config.to_dict()["corpus"],
        "downsample": config.downsample,
        "seed": config.seed,
        "max_epochs": config.max_epochs,
        "train_with_dev": train_with_dev,
        "params": {name: _plain(value) for name, value in sorted(params.items())},
    }


def config_hash(data: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def describe_test_split(config: ExperimentConfig) -> str:
    """The test split a score was measured on; scores on different splits are not comparable."""
    text = f"{config.corpus.describe()} {config.label_type} test"
    if config.downsample < 1.0:
        text += f", downsample {config.downsample} seed {config.seed}"
    return text


def pip_requirements() -> list[str]:
    """What loading the model elsewhere needs: the versions it was trained with."""
    from importlib.metadata import PackageNotFoundError, version

    requirements = []
    for package in ("mlflow", "flair", "torch", "transformers", "pandas"):
        try:
            requirements.append(f"{package}=={version(package).split('+')[0]}")
        except PackageNotFoundError:
            requirements.append(package)
    return requirements


def model_signature(task: str):
    """Texts in (one string column, so a plain list works too); a list of spans or labels per text out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    from mlflow.types.schema import Array, Object, Property

    if task == "sequence_tagging":
        item = Object([
            Property("text", "string"), Property("label", "string"), Property("start", "long"),
            Property("end", "long"), Property("score", "double"),
        ])  # fmt: skip
    else:
        item = Object([Property("label", "string"), Property("score", "double")])
    return ModelSignature(inputs=Schema([ColSpec("string")]), outputs=Schema([ColSpec(Array(item))]))


def log_flair_model(model_file: str | os.PathLike, task: str, label_type: str, name: str = MODEL_NAME):
    """Log a saved Flair model as a pyfunc model of the active run; returns MLflow's ``ModelInfo``.

    The wrapper is logged as model code (``pyfunc_model.py`` by path), so loading it needs only
    mlflow, flair, torch and pandas: no ``flair_mlflow``, no embedding packages (Flair stores
    word vectors and transformer weights inside the model file).
    """
    import warnings

    from . import pyfunc_model

    with warnings.catch_warnings():
        # the signature is given explicitly; type hints would change how MLflow converts inputs
        warnings.filterwarnings("ignore", message=".*type hints.*", category=UserWarning)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(Path(pyfunc_model.__file__)),
            artifacts={pyfunc_model.FLAIR_MODEL_ARTIFACT: str(model_file)},
            signature=model_signature(task),
            input_example=list(EXAMPLE_TEXTS),
            pip_requirements=pip_requirements(),
            metadata={"flair_mlflow.task": task, "flair_mlflow.label_type": label_type},
        )


def _start_run(writer: RunWriter, best: BestConfiguration, run_name: str | None,
               tags: Mapping[str, str]) -> tuple[str, bool]:  # fmt: skip
    """The run to log into, made active: ``mlflow run``'s run (MLFLOW_RUN_ID), the caller's active
    run, or a new one in the search's experiment. Returns (run id, whether to end it here)."""
    active = mlflow.active_run()
    if active is not None:
        if active.info.run_id == best.search_run_id:
            raise ConfigError("search_run_id", "is the active MLflow run; end it before registering from it")
        run_id, own = active.info.run_id, False
    elif os.environ.get("MLFLOW_RUN_ID"):
        run_id = os.environ["MLFLOW_RUN_ID"]
        if run_id == best.search_run_id:
            raise ConfigError("search_run_id", "is the run MLFLOW_RUN_ID names; register into a new run")
        mlflow.start_run(run_id=run_id)
        own = True
    else:
        experiment_id = best.experiment_id or experiment_id_for(writer.client, best.config.experiment)
        run = writer.client.create_run(experiment_id, run_name=run_name, tags=dict(tags))
        run_id = run.info.run_id
        mlflow.start_run(run_id=run_id)
        own = True
    writer.set_tags(run_id, tags)
    return run_id, own


def register_best(search_run_id: str | None = None, name: str | None = None, *, max_epochs: int | None = None,
                  train_with_dev: bool = False, downsample: float | None = None,
                  best_params: str | os.PathLike | Mapping[str, Any] | None = None,
                  config: ExperimentConfig | str | os.PathLike | None = None, corpus: Any = None,
                  tracking_uri: str | None = None, run_name: str | None = None,
                  main_evaluation_metric: tuple[str, str] = ("micro avg", "f1-score"),
                  quiet: bool = True) -> Registration:  # fmt: skip
    """Train the search's best configuration on its corpus, test it once, log and register it.

    The Python twin of ``flair-mlflow register``. With ``name`` the model is registered and gets
    the alias ``champion`` when its test score beats the current champion's (measured the same
    way), else ``challenger``. ``corpus`` replaces the search's corpus (a search started from
    Python with its own Corpus object cannot be rebuilt from MLflow). Every input error raises
    :class:`ConfigError` before a run is created.
    """
    import flair
    from flair.trainers import ModelTrainer

    from ..adapters.corpora import check_corpus, load_corpus
    from ..adapters.embeddings import EmbeddingFactory
    from ..adapters.models import build_model, training_arguments
    from ..adapters.plugins import MLflowLoggerPlugin

    if name is not None and not str(name).strip():
        raise ConfigError("name", "must not be empty")
    if max_epochs is not None and (isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1):
        raise ConfigError("max_epochs", f"must be a whole number of at least 1, not {max_epochs!r}")
    if downsample is not None and not (isinstance(downsample, (int, float)) and 0.0 < float(downsample) <= 1.0):
        raise ConfigError("downsample", f"must be a fraction in (0, 1], not {downsample!r}")

    best = best_configuration(search_run_id, best_params=best_params, config=config, tracking_uri=tracking_uri)
    writer = _client(tracking_uri)
    experiment = dataclasses.replace(
        best.config,
        max_epochs=max_epochs if max_epochs is not None else best.config.max_epochs,
        downsample=float(downsample) if downsample is not None else best.config.downsample,
    )
    params = best.params

    # everything that can be wrong with the input fails here, before a run exists
    given_corpus = corpus is not None
    with quiet_flair(quiet):
        if corpus is None:
            corpus = load_corpus(experiment.corpus, experiment.downsample, experiment.seed)
        check_corpus(corpus, experiment.label_type)
        if corpus.test is None or len(corpus.test) == 0:
            raise ConfigError("corpus", "has no test split; the registered model is scored on test")
        arguments = training_arguments(experiment.task, params)
        if experiment.seed is not None:
            flair.set_seed(experiment.seed)
        label_dictionary = corpus.make_label_dictionary(experiment.label_type, add_unk=False)
        model = build_model(experiment.task, params, experiment.label_type, label_dictionary,
                            EmbeddingFactory(corpus), experiment.multi_label)  # fmt: skip

    settings = recipe(experiment, params, train_with_dev)
    digest = config_hash(settings)
    metric = f"{SCORE_METRIC} ({' '.join(main_evaluation_metric)})"
    test_split = describe_test_split(experiment)
    if given_corpus:  # not the experiment's corpus: say which one, as far as a Corpus can tell
        test_split = f"{getattr(corpus, 'name', 'corpus')} {experiment.label_type} test, {len(corpus.test)} sentences"
    tags = {
        REGISTER_TAG: "true",
        TASK_TAG: experiment.task,
        SEARCH_RUN_TAG: best.search_run_id,
        BEST_TRIAL_TAG: best.best_trial_run_id,
        CONFIG_HASH_TAG: digest,
        METRIC_TAG: metric,
        TEST_SPLIT_TAG: test_split,
        "flair_mlflow.source": best.source,
    }
    tags = {key: value for key, value in tags.items() if value}
    if name:
        tags["flair_mlflow.registered_model"] = str(name)
    run_id, own = _start_run(writer, best, run_name or (f"register-{name}" if name else "register"), tags)
    log.info("run %s: training %s for %d epochs on %s", run_id, best.source, experiment.max_epochs,
             experiment.corpus.describe())  # fmt: skip
    status = "FAILED"
    try:
        writer.log_params(run_id, {
            **params, "task": experiment.task, "corpus": experiment.corpus.describe(),
            "label_type": experiment.label_type, "downsample": experiment.downsample, "seed": experiment.seed,
            "max_epochs": experiment.max_epochs, "train_with_dev": train_with_dev,
        })  # fmt: skip
        writer.log_text(run_id, yaml.safe_dump({"config_hash": digest, **settings}, sort_keys=False), "recipe.yaml")
        plugin = MLflowLoggerPlugin(run_id=run_id, log_params=False, client=writer.client)
        with tempfile.TemporaryDirectory(prefix="flair-mlflow-register-") as base_path:
            ours = {
                "max_epochs": experiment.max_epochs, "plugins": [plugin], "train_with_dev": train_with_dev,
                "save_final_model": False, "use_final_model_for_eval": True, "create_file_logs": False,
                "create_loss_file": False, "main_evaluation_metric": main_evaluation_metric,
            }  # fmt: skip
            with quiet_flair(quiet):
                result = getattr(ModelTrainer(model, corpus), arguments.method)(
                    base_path, **{**arguments.arguments, **ours}
                )
            test_score = float(result["test_score"])
            metrics = {SCORE_METRIC: test_score}
            if best.search_score is not None and math.isfinite(best.search_score):
                metrics["search_score"] = float(best.search_score)
            writer.log_metrics(run_id, metrics)
            predictions = Path(base_path) / "test.tsv"
            if predictions.is_file():
                writer.log_file(run_id, predictions, "test")
            model_file = Path(base_path) / "flair-model.pt"
            model.save(model_file)
            info = log_flair_model(model_file, experiment.task, experiment.label_type)
        registration = Registration(
            run_id=run_id, model_uri=info.model_uri, test_score=test_score, metric=metric, test_split=test_split,
            config_hash=digest, name=name, source=best.source, params=dict(params),
        )  # fmt: skip
        if name:
            _register(writer.client, registration, tags)
        status = "FINISHED"
        return registration
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except BaseException as error:
        writer.set_tags(run_id, {"error.class": type(error).__name__, "error.message": str(error)[:5000]})
        raise
    finally:
        if own:
            mlflow.end_run(status)


# --- the registry -----------------------------------------------------------------------------------
def _register(client: mlflow.MlflowClient, registration: Registration, run_tags: Mapping[str, str]) -> None:
    version_tags = {
        key: run_tags[key]
        for key in (SEARCH_RUN_TAG, BEST_TRIAL_TAG, CONFIG_HASH_TAG, METRIC_TAG, TEST_SPLIT_TAG)
        if key in run_tags
    }
    version_tags[SCORE_TAG] = repr(registration.test_score)
    version_tags["flair_mlflow.register_run_id"] = registration.run_id
    version = mlflow.register_model(registration.model_uri, registration.name, tags=version_tags)
    registration.version = str(version.version)
    registration.alias, registration.reason = assign_alias(
        client, registration.name, registration.version, registration.test_score, registration.metric,
        registration.test_split,
    )  # fmt: skip
    client.update_model_version(
        registration.name,
        registration.version,
        description=f"{registration.metric} = {registration.test_score:.4f} on {registration.test_split}; "
        f"{registration.source}; {registration.alias}: {registration.reason}",
    )


def current_champion(client: mlflow.MlflowClient, name: str):
    """The version holding ``champion``, or None (no such alias, or no such model yet)."""
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def assign_alias(client: mlflow.MlflowClient, name: str, version: str, score: float, metric: str,
                 test_split: str) -> tuple[str, str]:  # fmt: skip
    """Give ``version`` the alias ``champion`` when it beats the champion on the same metric and
    test split, else ``challenger``; returns (alias, why). Versions scored differently are never
    compared: the new one waits as challenger for a person to decide."""
    champion = current_champion(client, name)
    alias, reason = CHALLENGER, ""
    if champion is None or str(champion.version) == str(version):
        alias, reason = CHAMPION, f"first version with a score: {metric} = {score:.4f}"
    else:
        old_metric = champion.tags.get(METRIC_TAG)
        old_split = champion.tags.get(TEST_SPLIT_TAG)
        old_score = _version_score(client, champion)
        if old_metric != metric or old_split != test_split or old_score is None:
            reason = (
                f"not comparable with champion version {champion.version} (scored as {old_metric or 'unknown'} on "
                f"{old_split or 'an unknown split'}; this one as {metric} on {test_split}); promote it by hand with "
                f"MlflowClient().set_registered_model_alias('{name}', '{CHAMPION}', '{version}')"
            )
        elif score > old_score:
            alias = CHAMPION
            reason = f"{metric} {score:.4f} beats champion version {champion.version} ({old_score:.4f})"
        else:
            reason = f"{metric} {score:.4f} does not beat champion version {champion.version} ({old_score:.4f})"
    client.set_registered_model_alias(name, alias, str(version))
    return alias, reason


def _version_score(client: mlflow.MlflowClient, version) -> float | None:
    text = version.tags.get(SCORE_TAG)
    try:
        value = float(text) if text is not None else None
    except ValueError:
        value = None
    if value is None and version.run_id:
        value = client.get_run(version.run_id).data.metrics.get(SCORE_METRIC)
    return value if value is not None and math.isfinite(value) else None


# --- the trials of a search ------------------------------------------------------------------------
@dataclass
class TrialsTable:
    """A search's trials, best first (failed and unfinished last), as rows of plain values."""

    search_run_id: str
    optimization_value: str
    parameter_names: list[str]
    rows: list[dict[str, Any]]

    @property
    def columns(self) -> list[str]:
        return ["trial", "run_id", "status", "final_score", "final_variance", *self.parameter_names]

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in self.columns])
        return buffer.getvalue()

    def to_text(self, width: int = 40) -> str:
        def cell(value: Any) -> str:
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return "-"
            if isinstance(value, float):
                return f"{value:.4f}"
            text = _short_number(str(value))
            return text if len(text) <= width else text[: width - 1] + "…"

        table = [self.columns] + [[cell(row.get(c)) for c in self.columns] for row in self.rows]
        widths = [max(len(line[i]) for line in table) for i in range(len(self.columns))]
        lines = ["  ".join(value.ljust(widths[i]) for i, value in enumerate(line)).rstrip() for line in table]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines) + "\n"


def _short_number(text: str) -> str:
    """``0.22314282381128248`` as ``0.223143`` in the printed table (the CSV keeps every digit)."""
    try:
        number = float(text)
    except ValueError:
        return text
    return f"{number:.6g}" if "." in text or "e" in text.lower() else text


def search_trials(search_run_id: str, tracking_uri: str | None = None) -> TrialsTable:
    """The trials of a search read back from MLflow, ranked by ``final_score``."""
    writer = _client(tracking_uri)
    parent = get_search_run(writer.client, search_run_id, "search_run_id")
    runs = child_runs(writer.client, parent.info.experiment_id, parent.info.run_id)
    try:
        names = search_config(writer.client, parent).parameter_names
    except ConfigError:
        names = []
    for run in runs:
        names += [n for n in sorted(run.data.params) if n not in names]
    maximise = _maximise(parent)

    def key(run) -> tuple:
        score = run.data.metrics.get("final_score", math.nan)
        finished = run.info.status == "FINISHED" and math.isfinite(score)
        return (0, -score if maximise else score, _trial_number(run)) if finished else (1, 0.0, _trial_number(run))

    rows = []
    for run in sorted(runs, key=key):
        row: dict[str, Any] = {
            "trial": _trial_number(run) or None,
            "run_id": run.info.run_id,
            "status": run.info.status,
            "final_score": run.data.metrics.get("final_score"),
            "final_variance": run.data.metrics.get("final_variance"),
        }
        row.update({n: run.data.params.get(n) for n in names})
        rows.append(row)
    objective = "dev_score" if maximise else "dev_loss"
    return TrialsTable(parent.info.run_id, objective, names, rows)


__all__ = [
    "BestConfiguration", "Registration", "TrialsTable", "assign_alias", "best_configuration", "current_champion",
    "log_flair_model", "register_best", "search_trials",
]  # fmt: skip
