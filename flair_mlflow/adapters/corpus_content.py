"""What a loaded corpus holds, and how Flair keeps it: the three things a search must not get wrong silently.

- ``-DOCSTART-`` lines of CoNLL files are document markers, not sentences; Flair keeps them as
  one-token sentences unless told otherwise, so they are dropped here (and counted).
- Flair's ``ClassificationCorpus`` keeps only the lines of a FastText file by default and parses a
  sentence anew on every access, so nothing kept on a sentence (the embedding cache's vectors)
  survives; the memory mode is chosen here from the corpus' size and the memory available.
- What predicting one constant thing scores on dev, the bar a search's best trial must clear.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from ..core.corpus_config import CorpusConfig
from ..core.rules import LearningCheck, constant_predictor_score

log = logging.getLogger("flair_mlflow")

DOCSTART = "-DOCSTART-"


def is_docstart(sentence: Any) -> bool:
    """A CoNLL document marker read as a sentence: the one token ``-DOCSTART-``."""
    return len(sentence) == 1 and sentence[0].text == DOCSTART


def without_docstart(corpus: Any) -> Any:
    """The corpus without ``-DOCSTART-`` pseudo-sentences (the same corpus when it has none); logs how many went.

    Only column corpora have them. The sentences on either side of a marker no longer see each
    other as context: the marker was a document boundary.
    """
    from flair.data import Corpus
    from flair.datasets import FlairDatapointDataset
    from flair.datasets.sequence_labeling import MultiFileColumnCorpus

    if not isinstance(corpus, MultiFileColumnCorpus):
        return corpus
    splits: dict[str, Any] = {}
    dropped: dict[str, int] = {}
    for name in ("train", "dev", "test"):
        split = getattr(corpus, name)
        markers = [sentence for sentence in split or [] if is_docstart(sentence)]
        if markers:
            _cut_context_at(markers)
            split = FlairDatapointDataset([sentence for sentence in split if not is_docstart(sentence)])
            dropped[name] = len(markers)
        splits[name] = split
    if not dropped:
        return corpus
    log_dropped_docstart(dropped)
    return Corpus(**splits, name=corpus.name, sample_missing_splits=False)


def log_dropped_docstart(dropped: dict[str, int]) -> None:
    """Say how many markers each split lost, and the setting that keeps them."""
    counts = ", ".join(f"{name} {count}" for name, count in dropped.items())
    log.info(
        "dropped %d %s pseudo-sentences (%s); set corpus.keep_docstart: true to keep them",
        sum(dropped.values()),
        DOCSTART,
        counts,
    )


def _cut_context_at(markers: Sequence[Any]) -> None:
    for marker in markers:
        before, after = marker._previous_sentence, marker._next_sentence
        if before is not None and before._next_sentence is marker:
            before._next_sentence = None
        if after is not None and after._previous_sentence is marker:
            after._previous_sentence = None


# -- FastText folders: how Flair keeps the sentences ------------------------------------------------
#: bytes of Flair sentences per byte of FastText text (TREC_6's 355 kB train file: 32 MB of sentences)
SENTENCE_BYTES_PER_TEXT_BYTE = 100
#: the share of the available memory a corpus may take (embeddings, their cached vectors and models need the rest)
CORPUS_MEMORY_SHARE = 0.25
#: what is assumed available where the machine does not say
ASSUMED_AVAILABLE_BYTES = 4 * 2**30


def memory_mode_for(text_bytes: int, available_bytes: int) -> str:
    """Flair's ``memory_mode`` for a FastText corpus of ``text_bytes``.

    ``full`` (parsed once, sentences kept: the embedding cache hits) when the sentences fit in a
    quarter of the available memory; ``partial`` (lines kept, each access parses again) when the
    text does; ``disk`` (each access reads the file) otherwise.
    """
    budget = CORPUS_MEMORY_SHARE * available_bytes
    if text_bytes * SENTENCE_BYTES_PER_TEXT_BYTE <= budget:
        return "full"
    return "partial" if text_bytes <= budget else "disk"


def available_memory() -> int:
    """Bytes of memory available to this process now (an assumed 4 GiB where the machine does not say)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return ASSUMED_AVAILABLE_BYTES


def with_memory_mode(corpus: CorpusConfig) -> CorpusConfig:
    """A FastText folder's settings with the memory mode chosen (and logged), unless the user set one."""
    from flair.datasets.base import find_train_dev_test_files

    if "memory_mode" in corpus.arguments:
        return corpus
    files = find_train_dev_test_files(Path(corpus.folder or "."), corpus.dev_file, corpus.test_file, corpus.train_file)
    text_bytes = sum(Path(path).stat().st_size for path in files if path is not None)
    available = available_memory()
    mode = memory_mode_for(text_bytes, available)
    log.info(
        "FastText corpus '%s': memory_mode %s (%.2f MB of text, about %.0f MB as sentences; %.0f MB available)",
        corpus.folder,
        mode,
        text_bytes / 2**20,
        text_bytes * SENTENCE_BYTES_PER_TEXT_BYTE / 2**20,
        available / 2**20,
    )
    return dataclasses.replace(corpus, arguments={**corpus.arguments, "memory_mode": mode})


# -- the bar a search must clear -----------------------------------------------------------------
def constant_predictor(corpus: Any, label_type: str) -> tuple[float, str]:
    """What predicting one constant thing scores on the dev split, and what that thing is.

    Span labels (NER): predicting no spans. Token or sentence labels: the most frequent label for
    every token or sentence (see :func:`..core.rules.constant_predictor_score`).
    """
    from flair.data import Sentence, Token

    counts: Counter[str] = Counter()
    kinds: set[str] = set()
    sentences = tokens = 0
    for sentence in corpus.dev or []:
        sentences += 1
        tokens += len(sentence)
        for label in sentence.get_labels(label_type):
            point = label.data_point
            kinds.add("sentence" if isinstance(point, Sentence) else "token" if isinstance(point, Token) else "span")
            counts[label.value] += 1
    if not counts or "span" in kinds:
        return 0.0, "predicting no spans" if counts else "predicting nothing"
    value, most = counts.most_common(1)[0]
    units = tokens if "token" in kinds else sentences
    return constant_predictor_score(most, sum(counts.values()), units), f"always predicting '{value}'"


def learning_check(corpus: Any, label_type: str, max_epochs: int) -> LearningCheck:
    """What a search's trials on ``corpus`` must beat on dev, with the settings its warning names."""
    baseline, name = constant_predictor(corpus, label_type)
    return LearningCheck(baseline, name, max_epochs, label_type, len(corpus.train))
