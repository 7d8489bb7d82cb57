"""Reading back what to register (a search's best configuration, or a ``best_params.yaml``) before any run exists."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import mlflow
import yaml

from ..config import ExperimentConfig
from ..config.parameters import PARAMETERS, RESERVED_TRAINING_ARGUMENTS, check_parameter_name, coerce_value
from ..errors import ConfigError
from ..tracking import search_runs
from ..tracking.tags import BEST_TRIAL_NUMBER_TAG, BEST_TRIAL_RUN_TAG, KEPT_MODEL_TAG
from ..training.models import plain_value

#: settings ``register`` makes itself; a configuration that names them would fight it
REGISTER_ARGUMENTS = {"train_with_dev", "max_epochs"} | set(RESERVED_TRAINING_ARGUMENTS)

BestParamsSource = str | os.PathLike | Mapping[str, Any]
ConfigSource = ExperimentConfig | str | os.PathLike


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
    trial_number: int | None = None  # the best trial's: a registration seeds as its first training run did


def _param_from_text(text: str) -> Any:
    """A parameter's value from the text MLflow stores (``0.1``, ``True``, ``None``, ``adam``, ``[0.9, 0.99]``)."""
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
        field = f"{field_prefix}.{name}"
        if name in REGISTER_ARGUMENTS:
            raise ConfigError(field, "is set by register itself (see --max-epochs, --train-with-dev)")
        if value is not None:
            if name in PARAMETERS:
                check_parameter_name(name, task, field)
            typed[name] = coerce_value(name, value, field)
    return typed


def read_best_params(source: BestParamsSource) -> dict[str, Any]:
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


def _best_of_search(client: mlflow.MlflowClient, search_run: Any) -> tuple[dict[str, Any], str | None, float | None, int | None]:  # fmt: skip
    """The best trial's (parameters, run id, score, number): from ``best_params.yaml``, else the best finished run."""
    run_id = search_run.info.run_id
    best_trial = search_run.data.tags.get(BEST_TRIAL_RUN_TAG) or None
    text = search_runs.artifact_text(client, run_id, "best_params.yaml") if best_trial else None
    if text is not None:
        number = search_run.data.tags.get(BEST_TRIAL_NUMBER_TAG, "")
        score = search_run.data.metrics.get("best_score")
        return dict(yaml.safe_load(text) or {}), best_trial, score, int(number) if number.isdigit() else None
    ranked = search_runs.ranked_trial_runs(client, search_run)
    if not ranked or not search_runs.has_final_score(ranked[0]):
        raise ConfigError("search_run_id", f"search '{run_id}' has no finished trial to register")
    best = ranked[0]
    params = {k: _param_from_text(v) for k, v in best.data.params.items()}
    return params, best.info.run_id, best.data.metrics[search_runs.FINAL_SCORE], search_runs.trial_number(best) or None


def with_objects(params: Mapping[str, Any], objects: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``params`` read back from MLflow, each value replaced by the object it was logged for, if it is that value."""
    for name, value in objects.items():
        if name in params and str(plain_value(value)) != str(plain_value(params[name])):
            problem = f"{plain_value(value)} is not the value of the {source} ({params[name]})"
            raise ConfigError(f"best_params.{name}", problem)
    return {**params, **objects}


def read_best_configuration(client: mlflow.MlflowClient, search_run_id: str | None, *,
                            best_params: BestParamsSource | None = None, config: ConfigSource | None = None,
                            objects: Mapping[str, Any] | None = None) -> BestConfiguration:  # fmt: skip
    """The experiment (``config``, else the search's) and parameters (``best_params``, else the best trial's, with
    ``objects``: its values as this process held them) to register."""
    from_file = config is not None and not isinstance(config, ExperimentConfig)
    experiment = ExperimentConfig.from_file(config) if from_file else config
    search_run = search_runs.get_search_run(client, search_run_id, "search_run_id") if search_run_id else None
    if search_run is None and experiment is None:
        problem = "give the run id of a search, or an experiment file (--config) with --best-params"
        raise ConfigError("search_run_id", problem)
    if experiment is None:
        experiment = search_runs.recorded_experiment(client, search_run, "search_run_id")
    if best_params is not None:
        params, trial, score, number = read_best_params(best_params), None, None, None
        source = "best_params.yaml" if isinstance(best_params, Mapping) else str(best_params)
    elif search_run is not None:
        params, trial, score, number = _best_of_search(client, search_run)
        source = f"trial {number if number is not None else '?'} of search {search_run.info.run_id}"
        params = with_objects(params, objects or {}, source)
    else:
        raise ConfigError("best_params", "without a search run id, give the configuration to train as --best-params")
    return BestConfiguration(
        config=experiment,
        params=typed_params({**experiment.fixed, **params}, experiment.task),
        search_run_id=search_run.info.run_id if search_run else None,
        best_trial_run_id=trial,
        experiment_id=search_run.info.experiment_id if search_run else None,
        search_score=score,
        source=source,
        trial_number=number,
    )


def kept_model_id(client: mlflow.MlflowClient, trial_run_id: str | None) -> str:
    """The logged model the best trial's run kept (``keep_models``); refused, before any run exists, where none."""
    if not trial_run_id:
        raise ConfigError("from_trial", "needs a search run id: the model registered is its best trial's")
    model_id = client.get_run(trial_run_id).data.tags.get(KEPT_MODEL_TAG)
    if not model_id:
        why = "keep_models: 0, or the search predates keep_models"
        problem = f"the best trial's model (run {trial_run_id}) was not kept ({why}); register without --from-trial"
        raise ConfigError("from_trial", f"{problem} to train it again")
    return model_id
