"""A downsampled column corpus, parsed only where the sample keeps it.

Flair parses every sentence of a column corpus before ``downsample`` drops most of them: for a
tenth of WNUT-17 that was 0.7 s and about 58 MB spent on sentences no trial reads. Here Flair reads
the files as lines only (``in_memory=False``), the sample is drawn over the same number of
sentences per split as on the parsed corpus (so Python's ``random`` makes the same draws), and a
sentence is parsed when first read, then kept: every later read (the embedding cache's among them)
gets the same object. The corpus is the one the whole parse gives: the same sentences in the same
order, -DOCSTART- markers dropped and counted the same way, and each sentence's context (its
neighbours in its file, cut at a dropped marker) the same.

Where that cannot be promised (banned sentences, a block of only comments, which Flair's parse
drops, a loader that does not read lines on request), :func:`lines_only` says so and
:func:`parsed_on_demand` returns None: the caller parses the whole corpus.
"""

from __future__ import annotations

import bisect
import dataclasses
import inspect
from typing import Any

from torch.utils.data import ConcatDataset, Dataset, Subset

from ..core.corpus_config import CorpusConfig
from .corpus_content import is_docstart, log_dropped_docstart


def lines_only(corpus: CorpusConfig, corpus_class: type) -> CorpusConfig | None:
    """``corpus`` set to be read as lines, or None where its loader cannot be (or the user chose)."""
    from flair.datasets.sequence_labeling import MultiFileColumnCorpus

    arguments = corpus.arguments
    if (
        "in_memory" in arguments
        or arguments.get("banned_sentences")
        or not issubclass(corpus_class, MultiFileColumnCorpus)
    ):
        return None
    try:
        parameters = inspect.signature(corpus_class).parameters.values()
    except (TypeError, ValueError):
        return None
    # named, or passed on to ColumnCorpus through **kwargs (parsed_on_demand checks that it arrived)
    if not any(p.name == "in_memory" or p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return dataclasses.replace(corpus, arguments={**arguments, "in_memory": False})


def parsed_on_demand(read: Any, drop_docstart: bool) -> Any | None:
    """The corpus ``read`` (a Flair corpus read as lines) as sentences parsed on first read, without
    -DOCSTART- markers if ``drop_docstart``; None where it would not be the corpus a whole parse gives."""
    from flair.data import Corpus

    splits = {name: getattr(read, name) for name in ("train", "dev", "test")}
    positions = {name: _positions(split) if split is not None else [] for name, split in splits.items()}
    if any(entries is None for entries in positions.values()):
        return None
    datasets = {id(dataset): dataset for entries in positions.values() for dataset, _ in entries}
    leaves = {key: _parsed_file(dataset, drop_docstart) for key, dataset in datasets.items()}
    if any(leaf is None for leaf in leaves.values()):
        return None
    kept: dict[str, Any] = {}
    dropped: dict[str, int] = {}
    for name, split in splits.items():
        if split is None:
            kept[name] = None
            continue
        entries = [(leaves[id(dataset)], index) for dataset, index in positions[name]]
        sentences = [(leaf, index) for leaf, index in entries if not leaf.is_marker(index)]
        if len(sentences) < len(entries):
            dropped[name] = len(entries) - len(sentences)
        kept[name] = _KeptSentences(sentences)
    if dropped:
        log_dropped_docstart(dropped)
    return Corpus(**kept, name=read.name, sample_missing_splits=False)


def _positions(split: Any) -> list[tuple[Any, int]] | None:
    """Each sentence of a split as (its column file's dataset, its block there); None if not all read as lines."""
    from flair.datasets.sequence_labeling import ColumnDataset

    if isinstance(split, Subset):
        inner = _positions(split.dataset)
        return None if inner is None else [inner[index] for index in split.indices]
    if isinstance(split, ConcatDataset):
        parts = [_positions(part) for part in split.datasets]
        return None if any(part is None for part in parts) else [entry for part in parts for entry in part]
    if isinstance(split, ColumnDataset) and not split.in_memory:
        return [(split, index) for index in range(len(split))]
    return None


def _parsed_file(dataset: Any, drop_docstart: bool) -> _ParsedFile | None:
    """One column file read as lines, ready to parse on demand; None where Flair's whole parse would
    not keep every block (it skips banned sentences and blocks of only comments)."""
    comment = dataset.comment_symbol
    token_lines = [
        sum(1 for line in block if comment is None or not line.startswith(comment)) for block in dataset.sentences_raw
    ]
    if dataset.banned_sentences or not all(token_lines):
        return None
    # -DOCSTART- markers: only one-token blocks can be, so only those are parsed to tell
    markers = [
        index
        for index, count in enumerate(token_lines)
        if drop_docstart and count == 1 and is_docstart(_parse(dataset, dataset.sentences_raw[index]))
    ]
    return _ParsedFile(dataset, markers)


def _parse(dataset: Any, block: list[str]) -> Any:
    """One block of lines as Flair parses it (its own reader, its own columns)."""
    return dataset._convert_lines_to_sentence(
        block,
        word_level_tag_columns=dataset.word_level_tag_columns,
        span_level_tag_columns=dataset.span_level_tag_columns,
    )


class _ParsedFile:
    """One column file's sentences, each parsed on first read and kept."""

    def __init__(self, dataset: Any, markers: list[int]) -> None:
        self.dataset = dataset
        self.markers = markers  # sorted: block indices of the dropped -DOCSTART- markers
        self.parsed: dict[int, Any] = {}
        self.documents: dict[int, _Document] = {}

    def is_marker(self, index: int) -> bool:
        at = bisect.bisect_left(self.markers, index)
        return at < len(self.markers) and self.markers[at] == index

    def sentence(self, index: int) -> Any:
        sentence = self.parsed.get(index)
        if sentence is None:
            sentence = self.parsed[index] = _parse(self.dataset, self.dataset.sentences_raw[index])
            document = self._document(index)
            sentence._position_in_dataset = (document, index - document.start)  # its context, read on request
        return sentence

    def _document(self, index: int) -> _Document:
        """The run of blocks between two dropped markers that holds ``index``: a sentence's context stops at them."""
        at = bisect.bisect_right(self.markers, index)
        start = self.markers[at - 1] + 1 if at else 0
        document = self.documents.get(start)
        if document is None:
            end = self.markers[at] if at < len(self.markers) else len(self.dataset)
            document = self.documents[start] = _Document(self, start, end)
        return document


class _Document(Dataset):
    """Blocks ``start`` to ``end`` of one file: where Flair looks up a sentence's neighbours."""

    def __init__(self, file: _ParsedFile, start: int, end: int) -> None:
        self.file, self.start, self.end = file, start, end

    def __len__(self) -> int:
        return self.end - self.start

    def __getitem__(self, index: int) -> Any:
        return self.file.sentence(self.start + index)


class _KeptSentences(Dataset):
    """One split: its sentences in order, markers left out, each parsed when first read."""

    def __init__(self, sentences: list[tuple[_ParsedFile, int]]) -> None:
        self.sentences = sentences

    def __len__(self) -> int:
        return len(self.sentences)

    def __getitem__(self, index: int) -> Any:
        file, block = self.sentences[index]
        return file.sentence(block)
