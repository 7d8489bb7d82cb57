"""Vectors of frozen embeddings kept on the corpus between training runs and trials.

Flair already keeps static vectors on the sentences for the epochs of one training run
(``embeddings_storage_mode="cpu"``) and skips embedding a token that has them. A search used to
throw them away after every run; this keeps those of the embeddings an :class:`EmbeddingFactory`
shares (frozen, uniquely named) as long as they fit in a memory budget, and clears everything
else, so trained embeddings (characters, one-hot, fine-tuned transformers) are always recomputed.
The vectors are the same either way, so scores do not change; only the time does.
"""

from __future__ import annotations

import logging
from typing import Any

from .embeddings import EmbeddingFactory

log = logging.getLogger("flair_mlflow")


class EmbeddingCache:
    """Decides which embeddings' vectors stay on the corpus after a training run."""

    def __init__(self, budget_mb: float = 1024.0) -> None:
        self.budget_bytes = max(0.0, float(budget_mb)) * 1024 * 1024
        self._counts: tuple[int, int] | None = None
        self._refused: set[str] = set()

    @property
    def enabled(self) -> bool:
        return self.budget_bytes > 0

    def kept_names(self, factory: EmbeddingFactory, corpus: Any) -> set[str]:
        """Names of the shared frozen embeddings whose vectors fit the budget together."""
        if not self.enabled:
            return set()
        if self._counts is None:
            sentences = list(corpus.get_all_sentences())
            self._counts = (sum(len(s) for s in sentences), len(sentences))
        kept: set[str] = set()
        used = 0
        for name, size in sorted(factory.frozen_sizes(*self._counts).items()):
            if used + size <= self.budget_bytes:
                kept.add(name)
                used += size
            elif name not in self._refused:
                self._refused.add(name)
                log.warning(
                    "embedding cache: %s needs %.0f MB, over the budget of %.0f MB; its vectors are recomputed",
                    name,
                    size / 2**20,
                    self.budget_bytes / 2**20,
                )
        return kept

    @staticmethod
    def before_training_run(model: Any, corpus: Any) -> None:
        """Drop kept vectors the model does not use: some Flair models concatenate every vector on a token."""
        from flair.embeddings import Embeddings

        used = {module.name for module in model.modules() if isinstance(module, Embeddings)}
        _clear_except(corpus, used)

    def after_training_run(self, factory: EmbeddingFactory, corpus: Any) -> None:
        """Clear every vector on the corpus except those of embeddings the cache keeps."""
        _clear_except(corpus, self.kept_names(factory, corpus))


def _clear_except(corpus: Any, keep: set[str]) -> None:
    for sentence in corpus.get_all_sentences():
        names = set(sentence._embeddings)
        for token in sentence:
            names.update(token._embeddings)
        drop = [name for name in names if name not in keep]
        if drop:
            sentence.clear_embeddings(drop)
