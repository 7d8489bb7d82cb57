"""The experiment as a file the loader reads back, a Python search's objects named; register and resume rebuild it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from ..config import ExperimentConfig
from ..config.expressions import options_of
from ..corpus.content import corpus_settings
from ..embeddings.specs import spec_of
from ..errors import ConfigError
from ..training.models import plain_value


@dataclass(frozen=True)
class RecordedExperiment:
    """``experiment_resolved.yaml``'s text, the experiment read back from it, or why there is none."""

    text: str
    config: ExperimentConfig | None = None  # None: the search cannot be rebuilt from the text
    problem: str | None = None  # why not, naming the field


class NotWritable(ValueError):
    """Something of a search started from Python that the experiment file has no form for."""


def record_experiment(config: ExperimentConfig, corpus: Any = None) -> RecordedExperiment:
    """The experiment as a file: ``config`` itself, or, for a search from Python, with its objects named."""
    values = list(config.fixed.values()) + [v for spec in config.search_space.values() for v in options_of(spec) or []]
    if corpus is None and all(isinstance(v, (bool, int, float, str, list, tuple, type(None))) for v in values):
        return RecordedExperiment(config.to_yaml(), config)
    data = config.model_dump()
    try:
        data["search_space"] = {name: _written_spec(name, spec) for name, spec in config.search_space.items()}
        data["fixed"] = {name: written_value(value, f"fixed.{name}") for name, value in config.fixed.items()}
        if corpus is not None:
            settings = corpus_settings(corpus)
            if settings is None:
                raise NotWritable(f"corpus: a {type(corpus).__name__} object is not one of Flair's datasets by name")
            data.update(settings)
        rebuilt = ExperimentConfig.from_dict(yaml.safe_load(yaml.safe_dump(data, sort_keys=False)))
    except (NotWritable, ConfigError, yaml.YAMLError) as error:
        return RecordedExperiment(_description(config), None, str(error))
    return RecordedExperiment(rebuilt.to_yaml(), rebuilt)


def _description(config: ExperimentConfig) -> str:
    """The search as text for a reader, where it cannot be written as a file that loads."""
    plain = (bool, int, float, str, type(None))
    data = {k: v if isinstance(v, plain) else " ".join(str(v).split())[:500] for k, v in config.model_dump().items()}
    return yaml.safe_dump(data, sort_keys=False)


def _written_spec(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    kind, named = next(iter(spec.items()))
    field = f"search_space.{name}"
    if kind == "choice":
        return {kind: [written_value(option, field) for option in named["options"]]}
    if kind == "pchoice":
        return {kind: [[p, written_value(option, field)] for p, option in named["p_options"]]}
    return spec


def written_value(value: Any, field: str) -> Any:
    """A parameter's value as the file writes it; :class:`NotWritable` for an object no name builds."""
    if value is None or isinstance(value, (bool, int, float, str, list, tuple, type)):
        return plain_value(value)
    spec = spec_of(value)
    if spec is None:
        names = "embeddings are named like onehot, char, glove, transformer:<name>, a+b"
        raise NotWritable(f"{field}: a {type(value).__name__} object has no experiment-file name ({names})")
    return spec
