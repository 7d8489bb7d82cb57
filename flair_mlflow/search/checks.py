"""The checks before a search's first run that need Flair: each embedding it names built once, its first configuration
set up untrained; a ConfigError on a bare name points at where it is set (``fixed.momentum``)."""

from __future__ import annotations

from typing import Any

from ..config import ExperimentConfig
from ..config.expressions import options_of
from ..embeddings.factory import EmbeddingFactory
from ..errors import ConfigError, one_line
from ..training.models import training_arguments
from ..training.train import check_configuration


def _options(config: ExperimentConfig, name: str) -> list[Any]:
    spec = config.search_space.get(name)
    return (options_of(spec) or []) if spec else []


def check_embeddings(config: ExperimentConfig, corpus: Any) -> EmbeddingFactory:
    """Build each embedding the experiment names once, so one that cannot load fails early; the trials reuse them."""
    factory = EmbeddingFactory(corpus)
    for name in ("embeddings", "transformer_model", "document_embeddings"):
        values = ([config.fixed[name]] if name in config.fixed else []) + _options(config, name)
        for value in values:
            with config.named_where_set():
                factory.check(value, name, config.task, dict(config.fixed))
    return factory


def check_first_configuration(config: ExperimentConfig, corpus: Any, factory: EmbeddingFactory) -> None:
    """Set the first configuration up untrained, with each optimizer and trainer method it may use."""
    params = config.representative_params()
    with config.named_where_set():
        try:
            optimizers = _options(config, "optimizer")
            check_configuration(config.task, params, corpus, config.label_type, factory, config.multi_label, optimizers)
        except ConfigError:
            raise
        except Exception as error:  # Flair or torch refusing the configuration
            raise ConfigError("search_space", f"its first configuration cannot be set up: {one_line(error)}") from error
        for fine_tune in _options(config, "fine_tune"):  # train and fine_tune take their own arguments
            training_arguments(config.task, {**params, "fine_tune": fine_tune})
