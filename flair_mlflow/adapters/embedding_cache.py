"""Vectors of frozen embeddings kept on the corpus between training runs and trials.

Flair already keeps static vectors on the sentences for the epochs of one training run
(``embeddings_storage_mode="cpu"``) and skips embedding a token that has them. A search used to
throw them away after every run; this keeps those of the embeddings an :class:`EmbeddingFactory`
shares (frozen, uniquely named) as long as they fit in a memory budget, and clears everything
else, so trained embeddings (characters, one-hot, fine-tuned transformers) are always recomputed.
The vectors are the same either way, so scores do not change; only the time does.

Before a training run, the kept embeddings' vectors still missing are computed in one pass over the
corpus, sentences of like length batched together: a training batch is drawn at random, and a
transformer pads every sentence in it to the longest, so computing them there costs about half
again as much. That pass is most of a cached search's work (a frozen transformer's forward pass over
the corpus, once per process), so it times its own batches at each of the trial's thread counts
and keeps the faster, as a trial's training does.
"""

from __future__ import annotations

import logging
from typing import Any

from .embeddings import EmbeddingFactory
from .threads import ThreadProbe

log = logging.getLogger("flair_mlflow")

#: sentences embedded together when the cache computes vectors ahead of training
FILL_BATCH_SIZE = 32


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

    def before_training_run(
        self, model: Any, corpus: Any, factory: EmbeddingFactory, thread_counts: tuple[int, ...] = (1,)
    ) -> None:
        """Drop kept vectors the model does not use (some Flair models concatenate every vector on a
        token), then compute the missing vectors of the kept embeddings it uses, at the faster of
        ``thread_counts`` (the trial's candidates)."""
        from flair.embeddings import Embeddings

        used = {module.name: module for module in model.modules() if isinstance(module, Embeddings)}
        _clear_except(corpus, set(used))
        for name in sorted(self.kept_names(factory, corpus) & set(used)):
            _fill(used[name], corpus, thread_counts)

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


def _fill(embeddings: Any, corpus: Any, thread_counts: tuple[int, ...] = (1,)) -> None:
    """Vectors of ``embeddings`` for every sentence lacking them, in batches of like length, in eval mode.

    With more than one of ``thread_counts`` its own probe times the first batches at each and the rest
    run at the faster (a frozen transformer's forward pass is arithmetic enough for two threads to pay
    on an idle machine; on a busy one they spin). Torch's thread count is restored afterwards.
    """
    import torch
    from flair.training_utils import store_embeddings

    name = embeddings.name
    missing = [s for s in corpus.get_all_sentences() if name not in s._embeddings and not _tokens_have(s, name)]
    if not missing:
        return
    missing.sort(key=len, reverse=True)  # the longest first: batches long enough to time
    training, threads = embeddings.training, torch.get_num_threads()
    probe = ThreadProbe(thread_counts)  # it sets torch's threads for each batch until it decides
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


def _tokens_have(sentence: Any, name: str) -> bool:
    """Whether the token embeddings ``name`` gave vectors to ``sentence`` (an empty sentence gets none)."""
    return len(sentence) == 0 or name in sentence[0]._embeddings
