"""Vectors of shared frozen embeddings kept on the corpus between runs, within a budget: the same vectors, sooner."""

from __future__ import annotations

import logging
from typing import Any

from flair.embeddings import Embeddings

from .factory import EmbeddingFactory

log = logging.getLogger("flair_mlflow")


class EmbeddingCache:
    """Decides which embeddings' vectors stay on the corpus after a training run."""

    def __init__(self, budget_mb: float = 1024.0) -> None:
        self.budget_bytes = max(0.0, float(budget_mb)) * 2**20
        self._counts: tuple[int, int] | None = None
        self._refused: set[str] = set()

    def kept_names(self, factory: EmbeddingFactory, corpus: Any) -> set[str]:
        """Names of the shared frozen embeddings whose vectors fit the budget together."""
        if self.budget_bytes <= 0:
            return set()
        if self._counts is None:
            sentences = list(corpus.get_all_sentences())
            self._counts = (sum(len(s) for s in sentences), len(sentences))
        kept, used = set(), 0
        for name, size in sorted(factory.frozen_sizes(*self._counts).items()):
            if used + size <= self.budget_bytes:
                kept.add(name)
                used += size
            elif name not in self._refused:
                self._refused.add(name)
                message = "embedding cache: %s needs %.0f MB, over the budget of %.0f MB; recomputed"
                log.warning(message, name, size / 2**20, self.budget_bytes / 2**20)
        return kept

    def before_training_run(self, model: Any, corpus: Any, factory: EmbeddingFactory) -> None:
        """Drop kept vectors the model does not use: a model may concatenate every vector on a token."""
        _clear(corpus, {e.name for e in factory.frozen.values()} - _embedding_names(model))

    def after_training_run(self, model: Any, factory: EmbeddingFactory, corpus: Any) -> None:
        _clear(corpus, _embedding_names(model) - self.kept_names(factory, corpus))


def _embedding_names(model: Any) -> set[str]:
    return {module.name for module in model.modules() if isinstance(module, Embeddings)}


def _clear(corpus: Any, names: set[str]) -> None:
    for sentence in corpus.get_all_sentences() if names else ():
        sentence.clear_embeddings(sorted(names))
