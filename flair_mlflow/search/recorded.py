"""What a search's parent run records of its experiment: a file the experiment-file loader reads back.

A search from an experiment file records that file, after overrides. A search started from Python
(the tutorial's selectors) holds hyperopt expressions built with ``hp.*``, embedding objects and a
Corpus object instead: they are written back as the experiment file names them (expressions by
:func:`.hyperopt_adapter.written_expression`, embeddings by their spec strings, the corpus by its
dataset name and downsample), and what is recorded is what the loader reads back from that text, so
``register`` and ``--resume`` get exactly what the search recorded. Where something has no file form
(a user's own embedding class), the parent records a description for a reader and the reason, and
``register`` and ``--resume`` refuse with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import yaml

from ..adapters.corpus_origin import corpus_settings
from ..adapters.embedding_specs import written_spec
from ..adapters.models import optimizer_name
from ..core.config import ExperimentConfig
from ..core.errors import ConfigError
from .hyperopt_adapter import NotWritable, written_expression


@dataclass(frozen=True)
class RecordedExperiment:
    """``experiment_resolved.yaml``'s text, the experiment read back from it, or why there is none."""

    text: str
    config: ExperimentConfig | None = None  # None: the search cannot be rebuilt from the text
    problem: str | None = None  # why not, naming the field


def record_experiment(
    config: ExperimentConfig, space: Mapping[str, Any] | None = None, corpus: Any = None
) -> RecordedExperiment:
    """The experiment as a file: ``config`` itself, or with the Python ``space`` and ``corpus`` written in."""
    if space is None and corpus is None:
        return RecordedExperiment(config.to_yaml(), config)
    try:
        rebuilt = _rebuilt(config, space, corpus)
    except NotWritable as error:
        return RecordedExperiment(_description(config, space), None, str(error))
    return RecordedExperiment(rebuilt.to_yaml(), rebuilt)


def _rebuilt(config: ExperimentConfig, space: Mapping[str, Any] | None, corpus: Any) -> ExperimentConfig:
    data = config.to_dict()
    if space is not None:
        data["search_space"] = {name: _written_options(name, written_expression(name, e)) for name, e in space.items()}
    data["fixed"] = {name: written_value(name, value, f"fixed.{name}") for name, value in config.fixed.items()}
    if corpus is not None:
        settings = corpus_settings(corpus)
        if settings is None:
            raise NotWritable(f"corpus: a {type(corpus).__name__} object is not one of Flair's datasets by name")
        data.update(settings)
    try:
        return ExperimentConfig.from_dict(yaml.safe_load(yaml.safe_dump(data, sort_keys=False)))
    except (ConfigError, yaml.YAMLError) as error:
        raise NotWritable(str(error)) from None


def _written_options(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A choice's or pchoice's options by the names the file gives them."""
    kind, arguments = next(iter(spec.items()))
    field = f"search_space.{name}"
    if kind == "choice":
        return {kind: [written_value(name, option, field) for option in arguments["options"]]}
    if kind == "pchoice":
        return {kind: [[p, written_value(name, option, field)] for p, option in arguments["p_options"]]}
    return spec


def written_value(name: str, value: Any, field: str) -> Any:
    """A parameter's value as the file writes it: plain values as they are, an optimizer class by its
    name, an embedding object by its spec; raises :class:`NotWritable` for an object with none."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
        return list(value)
    if isinstance(value, type):
        return optimizer_name(value)
    spec = written_spec(value)
    if spec is None:
        raise NotWritable(
            f"{field}: a {type(value).__name__} object has no experiment-file name "
            "(embeddings are named like onehot, char, glove, transformer:<name>, a+b)"
        )
    return spec


def _description(config: ExperimentConfig, space: Mapping[str, Any] | None) -> str:
    """The search as text for a reader, where it cannot be written as a file that loads."""
    data = config.to_dict()
    data["search_space"] = {name: " ".join(str(expression).split())[:500] for name, expression in (space or {}).items()}
    data["fixed"] = {k: str(v) for k, v in config.fixed.items()}
    return yaml.safe_dump(data, sort_keys=False)
