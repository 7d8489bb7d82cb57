"""What a search checks before its first run that needs Flair: the embeddings it names, each built once,
and its first configuration set up once (model, trainer arguments, optimizers) without training.

A :class:`ConfigError` raised on a bare parameter name is pointed at where the experiment sets it
(``fixed.momentum``, ``search_space.optimizer``).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Mapping

from ..adapters.models import training_arguments
from ..adapters.training import check_configuration
from ..core.config import ExperimentConfig
from ..core.errors import ConfigError
from ..core.parameters import coerce_value
from ..core.space import representative_params, spec_options


def check_embeddings(config: ExperimentConfig, corpus) -> Any:
    """Build every embedding the experiment names once, so one that cannot load fails early; returns
    the factory holding them, for the trials on ``corpus`` to use."""
    from ..adapters.embeddings import EmbeddingFactory

    factory = EmbeddingFactory(corpus)
    for name in ("embeddings", "transformer_model", "document_embeddings"):
        values: list[Any] = []
        if name in config.fixed:
            values.append(config.fixed[name])
        spec = config.search_space.get(name)
        if isinstance(spec, Mapping):
            values.extend(spec_options(spec) or [])
        for value in values:
            with named_where_set(config):
                factory.check(value, name, config.task, dict(config.fixed))
    return factory


def check_first_configuration(config: ExperimentConfig, corpus, factory) -> None:
    """Set the search's first configuration up once, training nothing (model, trainer arguments, each
    optimizer it may use), so that what would fail every trial's set-up stops the search before any run."""
    params = representative_params(config.search_space, config.fixed)
    optimizers = _options(config, "optimizer")
    with named_where_set(config):
        try:
            check_configuration(config.task, params, corpus, config.label_type, factory, config.multi_label, optimizers)
        except ConfigError:
            raise
        except Exception as error:  # Flair or torch refusing the configuration
            message = " ".join(str(error).split())[:300]
            raise ConfigError("search_space", f"its first configuration cannot be set up: {message}") from error
        for fine_tune in _options(config, "fine_tune"):  # train or fine_tune: each takes its own arguments
            training_arguments(config.task, {**params, "fine_tune": fine_tune})


def _options(config: ExperimentConfig, name: str) -> list[Any]:
    """The values a searched ``choice``/``pchoice`` parameter may take, as the trial receives them."""
    spec = config.search_space.get(name)
    return [coerce_value(name, option) for option in (spec_options(spec) or [])] if spec else []


@contextmanager
def named_where_set(config: ExperimentConfig) -> Iterator[None]:
    """A ConfigError on a bare parameter name, pointed at where the experiment sets it (``fixed.momentum``)."""
    try:
        yield
    except ConfigError as error:
        if "." in error.field or error.field not in config.parameter_names:
            raise
        where = "fixed" if error.field in config.fixed else "search_space"
        raise type(error)(f"{where}.{error.field}", error.problem) from error
