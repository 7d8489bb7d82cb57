"""Embeddings for fresh models: frozen ones built once per process and shared, trainable ones new.

Frozen embeddings give the same vectors in every training run, so an :class:`EmbeddingFactory`
builds each of them once per process and hands the same object to every model; trainable ones
(character, one-hot, fine-tuned transformers) are built fresh for every training run so no run
starts from weights another run has trained. Names are parsed in :mod:`.embedding_specs`.
"""

from __future__ import annotations

import contextlib
import copy
import random
from typing import Any, Iterator

from ..core.errors import EmbeddingError
from .embedding_specs import (
    build_token_part,
    is_frozen,
    normalise_spec,
    resolve_transformer,
    spec_of,
    with_clear_errors,
)

#: frozen embeddings built in this process, by configuration: every factory (each search, each runner
#: a Spark task unpickles) hands out the same object instead of loading the vectors or weights again
_BUILT: dict[tuple, Any] = {}
KEEP_BUILT = 8  # the most kept; the longest unused goes first


class EmbeddingFactory:
    """Turns embedding strings (or Flair objects) into embeddings for one training run.

    Frozen embeddings are cached by their string and shared; trainable ones are built anew (or,
    for objects a user passed in, copied from a pristine snapshot taken before any training).
    """

    def __init__(self, corpus: Any = None) -> None:
        self.corpus = corpus
        self._frozen: dict[tuple, Any] = {}
        self._pristine: dict[int, Any] = {}

    # -- token embeddings (sequence tagging, pooled or RNN document embeddings) ----------------
    def token_embeddings(self, value: Any, fine_tune: bool = False, layers: str = "-1", field: str = "embeddings"):
        """One ``TokenEmbeddings`` (a ``StackedEmbeddings`` for several) for a fresh model."""
        from flair.embeddings import StackedEmbeddings

        if not isinstance(value, (str, list, tuple)):
            return self._fresh_object(value)
        spec = normalise_spec(value)
        parts = spec.split("+")
        if len(set(parts)) != len(parts):
            raise EmbeddingError(field, f"'{spec}' stacks the same embedding twice")
        built = [self._token_part(part, fine_tune, layers, field) for part in parts]
        if len(built) == 1:
            return built[0]
        return StackedEmbeddings(built, overwrite_names=False)

    def _token_part(self, part: str, fine_tune: bool, layers: str, field: str):
        key = ("token", part, fine_tune, layers)
        if key in self._frozen or self._adopt(key):
            return self._frozen[key]
        with _random_state_kept(_builds_frozen(part, fine_tune)):
            embeddings = with_clear_errors(
                part,
                field,
                lambda: build_token_part(part, fine_tune, layers, field, self.corpus, self.character_dictionary),
            )
        if is_frozen(embeddings):
            self._share(key, embeddings)
        return embeddings

    def _share(self, key: tuple, embeddings: Any) -> None:
        """Keep a frozen embedding for every later model, under a name unique to its configuration.

        Flair stores vectors on tokens by embedding name and skips embedding a token that already
        has them; a unique name is what makes keeping those vectors between runs safe.
        """
        embeddings.name = "flair_mlflow:" + "|".join(str(part) for part in key)
        self._frozen[key] = _BUILT[key] = embeddings
        while len(_BUILT) > KEEP_BUILT:
            _BUILT.pop(next(iter(_BUILT)))

    def _adopt(self, key: tuple) -> bool:
        """Take the frozen embedding of ``key`` another factory of this process built, if there is one."""
        embeddings = _BUILT.pop(key, None)
        if embeddings is None:
            return False
        self._frozen[key] = _BUILT[key] = embeddings  # now the most recently used
        return True

    def frozen_modules(self) -> list:
        """The shared frozen embeddings (to keep them in eval mode while a model trains)."""
        return list(self._frozen.values())

    def frozen_sizes(self, token_count: int, sentence_count: int) -> dict[str, int]:
        """Bytes the vectors of each shared frozen embedding take when kept for a whole corpus."""
        from flair.embeddings import DocumentEmbeddings

        sizes = {}
        for embeddings in self._frozen.values():
            count = sentence_count if isinstance(embeddings, DocumentEmbeddings) else token_count
            sizes[embeddings.name] = count * embeddings.embedding_length * 4
        return sizes

    def character_dictionary(self):
        """Every character of the corpus, sorted so that each process builds the same dictionary."""
        from flair.data import Dictionary

        if getattr(self, "_characters", None) is None:
            characters: set[str] = set()
            if self.corpus is not None:
                for sentence in self.corpus.get_all_sentences():
                    for token in sentence:
                        characters.update(token.text)
            dictionary = Dictionary(add_unk=True)
            for character in sorted(characters):
                dictionary.add_item(character)
            self._characters = dictionary
        return self._characters

    # -- document embeddings (text classification) --------------------------------------------
    def document_embeddings(self, params: dict[str, Any], default_fine_tune: bool = True):
        """Document embeddings from a trial's parameters.

        ``transformer_model`` gives a transformer (as in Flair's old selector); otherwise
        ``document_embeddings`` is ``transformer:<name>``, ``pool:<token embeddings>`` or
        ``rnn:<token embeddings>``, and ``embeddings`` alone means pooled word embeddings.
        """
        from flair.embeddings import DocumentPoolEmbeddings, DocumentRNNEmbeddings, StackedEmbeddings

        fine_tune = params.get("fine_tune", default_fine_tune)
        layers = params.get("layers", "-1")
        if params.get("transformer_model") is not None:
            return self._document_transformer(params["transformer_model"], fine_tune, layers, "transformer_model")
        value = params.get("document_embeddings")
        if value is None:
            value = f"pool:{spec_of(params['embeddings'])}" if params.get("embeddings") is not None else None
        if value is None:
            raise EmbeddingError("document_embeddings", "no document embeddings given")
        if not isinstance(value, str):
            return self._fresh_object(value)
        kind, _, rest = value.partition(":")
        kind = kind.lower()
        if kind == "transformer":
            return self._document_transformer(rest, fine_tune, layers, "document_embeddings")
        if kind not in ("pool", "rnn") or not rest:
            raise EmbeddingError(
                "document_embeddings", f"'{value}' must be transformer:<name>, pool:<embeddings> or rnn:<embeddings>"
            )
        token = params.get("embeddings") if rest == "" else rest
        words = self.token_embeddings(token, field="document_embeddings")
        if not isinstance(words, StackedEmbeddings):
            words = StackedEmbeddings([words], overwrite_names=False)
        # Flair's document embeddings stack what they are given and rename each member ("0-name");
        # handing them a list holding one fresh stack keeps shared embeddings' names (and vectors) intact
        word_list = [words]
        if kind == "pool":
            return DocumentPoolEmbeddings(word_list, pooling=params.get("pooling", "mean"))
        rnn_arguments = {
            name: params[name]
            for name in (
                "hidden_size",
                "rnn_layers",
                "reproject_words",
                "reproject_words_dimension",
                "bidirectional",
                "dropout",
                "word_dropout",
                "locked_dropout",
                "rnn_type",
            )
            if params.get(name) is not None
        }
        return DocumentRNNEmbeddings(word_list, **rnn_arguments)

    def _document_transformer(self, name: str, fine_tune: bool, layers: str, field: str):
        from flair.embeddings import TransformerDocumentEmbeddings

        key = ("document", name, fine_tune, layers)
        if key in self._frozen or self._adopt(key):
            return self._frozen[key]
        with _random_state_kept(not fine_tune):
            embeddings = with_clear_errors(
                f"transformer:{name}",
                field,
                lambda: TransformerDocumentEmbeddings(resolve_transformer(name), fine_tune=fine_tune, layers=layers),
            )
        if not fine_tune:
            self._share(key, embeddings)
        return embeddings

    # -- objects passed through the Python API -----------------------------------------------
    def _fresh_object(self, embeddings: Any):
        """Share a frozen object; give each run an untrained copy of a trainable one."""
        if is_frozen(embeddings):
            return embeddings
        from flair.embeddings import StackedEmbeddings

        if isinstance(embeddings, StackedEmbeddings):
            return StackedEmbeddings([self._fresh_object(e) for e in embeddings.embeddings], overwrite_names=False)
        pristine = self._pristine.setdefault(id(embeddings), copy.deepcopy(embeddings))
        return copy.deepcopy(pristine)

    def check(self, value: Any, field: str, task: str, params: dict[str, Any] | None = None) -> None:
        """Build an embedding once so a name that cannot load fails before any run exists."""
        if task == "text_classification" and field in ("transformer_model", "document_embeddings"):
            self.document_embeddings({**(params or {}), field: value})
        else:
            self.token_embeddings(value, field=field)


def _builds_frozen(part: str, fine_tune: bool) -> bool:
    """Whether the embedding named ``part`` comes out frozen, known from its name before it is built."""
    lowered = part.lower()
    if lowered in ("char", "onehot"):
        return False
    return not (fine_tune and lowered.startswith("transformer:"))


@contextlib.contextmanager
def _random_state_kept(keep: bool) -> Iterator[None]:
    """Build a shared (frozen) embedding without drawing from the seeded random generators.

    Building one initialises weights it then overwrites; it happens in whichever trial first needs the
    embedding in a process (the driver's checks, a Spark worker's first task), and a trial's seed must
    give the same model whether or not its process built something first.
    """
    if not keep:
        yield
        return
    import numpy as np
    import torch

    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        yield
    random.setstate(python_state)
    np.random.set_state(numpy_state)
