"""Embeddings for fresh models: frozen ones built once per process and shared (named by their configuration, so
their vectors can be kept between runs), trainable ones new for every run, so none starts from trained weights."""

from __future__ import annotations

import contextlib
import copy
import random
from functools import partial
from typing import Any, Iterator

import numpy as np
import torch
from flair.data import Dictionary
from flair.embeddings import (
    DocumentEmbeddings,
    DocumentPoolEmbeddings,
    DocumentRNNEmbeddings,
    StackedEmbeddings,
    TransformerDocumentEmbeddings,
)

from ..errors import EmbeddingError
from .specs import build_token_part, is_frozen, normalise_spec, resolve_transformer, spec_of, with_clear_errors

_BUILT: dict[tuple, Any] = {}  # frozen embeddings built in this process, by configuration, the longest unused first
KEEP_BUILT = 8
RNN_ARGUMENTS = (
    "hidden_size rnn_layers reproject_words reproject_words_dimension bidirectional dropout word_dropout "
    "locked_dropout rnn_type".split()
)


class EmbeddingFactory:
    """Turns embedding names (or Flair objects given in Python) into embeddings for one training run."""

    def __init__(self, corpus: Any = None) -> None:
        self.corpus = corpus
        self.frozen: dict[tuple, Any] = {}
        self._pristine: dict[int, Any] = {}
        self._characters: Any = None

    def token_embeddings(self, value: Any, fine_tune: bool = False, layers: str = "-1", field: str = "embeddings"):
        """One ``TokenEmbeddings`` (a ``StackedEmbeddings`` for several) for a fresh model."""
        if not isinstance(value, (str, list, tuple)):
            return self._fresh_object(value)
        parts = normalise_spec(value).split("+")
        if len(set(parts)) != len(parts):
            raise EmbeddingError(field, f"'{'+'.join(parts)}' stacks the same embedding twice")
        built = [self._token_part(part, fine_tune, layers, field) for part in parts]
        return built[0] if len(built) == 1 else StackedEmbeddings(built, overwrite_names=False)

    def _token_part(self, part: str, fine_tune: bool, layers: str, field: str):
        frozen = part.lower() not in ("char", "onehot") and not (fine_tune and part.lower().startswith("transformer:"))
        build = partial(build_token_part, part, fine_tune, layers, field, self.corpus, self.character_dictionary)
        return self._shared(("token", part, fine_tune, layers), frozen, part, field, build)

    def _shared(self, key: tuple, frozen: bool, spec: str, field: str, build: Any) -> Any:
        """Frozen ones are built without drawing from the seeded generators: a seed gives one model in any process."""
        if key in self.frozen or key in _BUILT:
            self.frozen[key] = _BUILT[key] = _BUILT.pop(key, None) or self.frozen[key]  # now the latest used
            return self.frozen[key]
        with _random_state_kept() if frozen else contextlib.nullcontext():
            embeddings = with_clear_errors(spec, field, build)
        if frozen and is_frozen(embeddings):
            embeddings.name = "flair_mlflow:" + "|".join(str(part) for part in key)
            self.frozen[key] = _BUILT[key] = embeddings
            while len(_BUILT) > KEEP_BUILT:
                _BUILT.pop(next(iter(_BUILT)))
        return embeddings

    def frozen_sizes(self, token_count: int, sentence_count: int) -> dict[str, int]:
        """Bytes the vectors of each shared frozen embedding take when kept for a whole corpus."""
        return {
            e.name: (sentence_count if isinstance(e, DocumentEmbeddings) else token_count) * e.embedding_length * 4
            for e in self.frozen.values()
        }

    def character_dictionary(self):
        """Every character of the corpus, sorted, so that each process builds the same dictionary."""
        if self._characters is None:
            sentences = self.corpus.get_all_sentences() if self.corpus else []
            characters = {character for sentence in sentences for token in sentence for character in token.text}
            self._characters = Dictionary(add_unk=True)
            for character in sorted(characters):
                self._characters.add_item(character)
        return self._characters

    def document_embeddings(self, params: dict[str, Any]):
        """From ``transformer_model``, else ``document_embeddings``, else ``embeddings`` pooled."""
        fine_tune, layers = params.get("fine_tune", True), params.get("layers", "-1")
        if params.get("transformer_model") is not None:
            return self._document_transformer(params["transformer_model"], fine_tune, layers, "transformer_model")
        value, embeddings = params.get("document_embeddings"), params.get("embeddings")
        if value is None and embeddings is not None:
            if not isinstance(embeddings, str):  # embedding objects given in Python
                return DocumentPoolEmbeddings([self._stack(embeddings)], pooling=params.get("pooling", "mean"))
            value = f"pool:{spec_of(embeddings)}"
        if value is None:
            raise EmbeddingError("document_embeddings", "no document embeddings given")
        if not isinstance(value, str):
            return self._fresh_object(value)
        kind, _, rest = value.partition(":")
        if kind.lower() == "transformer":
            return self._document_transformer(rest, fine_tune, layers, "document_embeddings")
        if kind.lower() not in ("pool", "rnn") or not rest:
            problem = f"'{value}' must be transformer:<name>, pool:<embeddings> or rnn:<embeddings>"
            raise EmbeddingError("document_embeddings", problem)
        # Flair renames what it stacks ("0-name"); one fresh stack keeps the shared names (and kept vectors) intact
        words = [self._stack(rest)]
        if kind.lower() == "pool":
            return DocumentPoolEmbeddings(words, pooling=params.get("pooling", "mean"))
        return DocumentRNNEmbeddings(words, **{n: params[n] for n in RNN_ARGUMENTS if params.get(n) is not None})

    def _stack(self, value: Any):
        words = self.token_embeddings(value, field="document_embeddings")
        return words if isinstance(words, StackedEmbeddings) else StackedEmbeddings([words], overwrite_names=False)

    def _document_transformer(self, name: str, fine_tune: bool, layers: str, field: str):
        def build() -> Any:
            return TransformerDocumentEmbeddings(resolve_transformer(name), fine_tune=fine_tune, layers=layers)

        return self._shared(("document", name, fine_tune, layers), not fine_tune, f"transformer:{name}", field, build)

    def _fresh_object(self, embeddings: Any):
        """Share a frozen object given in Python; give each run an untrained copy of a trainable one."""
        if is_frozen(embeddings):
            return embeddings
        if isinstance(embeddings, StackedEmbeddings):
            return StackedEmbeddings([self._fresh_object(e) for e in embeddings.embeddings], overwrite_names=False)
        return copy.deepcopy(self._pristine.setdefault(id(embeddings), copy.deepcopy(embeddings)))

    def check(self, value: Any, field: str, task: str, params: dict[str, Any]) -> None:
        """Build an embedding once, so a name that cannot load fails before any run exists."""
        if task == "text_classification" and field in ("transformer_model", "document_embeddings"):
            self.document_embeddings({**params, field: value})
        else:
            self.token_embeddings(value, field=field)


@contextlib.contextmanager
def _random_state_kept() -> Iterator[None]:
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        yield
    random.setstate(python_state)
    np.random.set_state(numpy_state)
