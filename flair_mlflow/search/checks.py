"""What a search checks before its first run that needs Flair: the corpus, the embeddings it names (each
built once) and its first configuration set up once (model, trainer arguments, optimizers) untrained.

A :class:`ConfigError` on a bare parameter name is pointed at where the experiment sets it
(``fixed.momentum``, ``search_space.optimizer``).
"""

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
    """Build every embedding the experiment names once, so one that cannot load fails early; the factory
    holding them goes to the trials."""
    factory = EmbeddingFactory(corpus)
    for name in ("embeddings", "transformer_model", "document_embeddings"):
        values = ([config.fixed[name]] if name in config.fixed else []) + _options(config, name)
        for value in values:
            with config.named_where_set():
                factory.check(value, name, config.task, dict(config.fixed))
    return factory


def check_first_configuration(config: ExperimentConfig, corpus: Any, factory: EmbeddingFactory) -> None:
    """Set the first configuration up once, training nothing, with each optimizer it may use and for each
    trainer method it may call, so what would fail every trial's set-up stops the search before any run."""
    params = config.representative_params()
    with config.named_where_set():
        try:
            check_configuration(
                config.task,
                params,
                corpus,
                config.label_type,
                factory,
                config.multi_label,
                _options(config, "optimizer"),
            )
        except ConfigError:
            raise
        except Exception as error:  # Flair or torch refusing the configuration
            raise ConfigError("search_space", f"its first configuration cannot be set up: {one_line(error)}") from error
        for fine_tune in _options(config, "fine_tune"):  # train and fine_tune take their own arguments
            training_arguments(config.task, {**params, "fine_tune": fine_tune})
