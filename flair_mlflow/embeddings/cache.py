"""Vectors of frozen embeddings kept on the corpus between training runs and trials.

Flair keeps static vectors on the sentences for the epochs of one training run
(``embeddings_storage_mode="cpu"``) and skips embedding a token that has them. A search used to throw them
away after every run; this keeps those of the embeddings an :class:`EmbeddingFactory` shares (frozen,
uniquely named) while they fit a memory budget, and clears the rest, so trained embeddings are always
recomputed. The vectors are the same either way: scores do not change, only the time does.

Before a training run the missing vectors are computed in one pass, sentences of like length batched
together (a transformer pads each batch to its longest sentence; a random training batch wastes a third
of the work on padding), at the faster of the trial's thread counts, timed as training is.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from .factory import EmbeddingFactory

log = logging.getLogger("flair_mlflow")

#: sentences embedded together when the cache computes vectors ahead of training
FILL_BATCH_SIZE = 32


def _has(sentence: Any, name: str) -> bool:
    """Whether ``sentence`` (or, for token embeddings, its first token) holds vectors of ``name``."""
    return bool(sentence.get_each_embedding([name])) or (
        len(sentence) == 0 or bool(sentence[0].get_each_embedding([name]))
    )


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
                log.warning(
                    "embedding cache: %s needs %.0f MB, over the budget of %.0f MB; its vectors are recomputed",
                    name,
                    size / 2**20,
                    self.budget_bytes / 2**20,
                )
        return kept

    def before_training_run(
        self, model: Any, corpus: Any, factory: EmbeddingFactory, thread_counts: Sequence[int], probe: Any
    ) -> None:
        """Drop kept vectors the model does not use (a model may concatenate every vector on a token), then
        compute the missing vectors of the kept embeddings it uses; ``probe`` times them at ``thread_counts``."""
        from flair.embeddings import Embeddings

        used = {module.name: module for module in model.modules() if isinstance(module, Embeddings)}
        _clear(corpus, {e.name for e in factory.frozen.values()} - set(used))
        for name in sorted(self.kept_names(factory, corpus) & set(used)):
            _fill(used[name], corpus, probe(thread_counts))

    def after_training_run(self, model: Any, factory: EmbeddingFactory, corpus: Any) -> None:
        """Clear every vector the model's embeddings left on the corpus, but those the cache keeps."""
        from flair.embeddings import Embeddings

        used = {module.name for module in model.modules() if isinstance(module, Embeddings)}
        _clear(corpus, used - self.kept_names(factory, corpus))


def _clear(corpus: Any, names: set[str]) -> None:
    if names:
        for sentence in corpus.get_all_sentences():
            sentence.clear_embeddings(sorted(names))


def _fill(embeddings: Any, corpus: Any, probe: Any) -> None:
    """Vectors of ``embeddings`` for every sentence lacking them, longest first (batches long enough to time),
    in eval mode; torch's thread count is as before afterwards."""
    import torch
    from flair.training_utils import store_embeddings

    missing = [s for s in corpus.get_all_sentences() if not _has(s, embeddings.name)]
    if not missing:
        return
    missing.sort(key=len, reverse=True)
    training, threads = embeddings.training, torch.get_num_threads()
    embeddings.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(missing), FILL_BATCH_SIZE):
                batch = missing[start : start + FILL_BATCH_SIZE]
                probe.start(batch)
                embeddings.embed(batch)
                probe.stop()
                store_embeddings(batch, "cpu")  # where Flair keeps vectors between epochs
    finally:
        embeddings.train(training)
        torch.set_num_threads(threads)
