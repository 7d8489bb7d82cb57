"""Corpora an experiment file names, loaded seeded (a trial rebuilt in another process sees the driver's sentences)
and refused, before any run exists, where Flair could not train on or score them: every trial would fail."""

from __future__ import annotations

import functools
import logging
import os
import random
import re
from pathlib import Path
from typing import Any

import flair.datasets
from flair.data import Corpus
from flair.datasets import FlairDatapointDataset
from flair.datasets.base import find_train_dev_test_files
from flair.datasets.sequence_labeling import MultiFileColumnCorpus

from ..config import CorpusConfig, ExperimentConfig
from ..errors import CorpusError, one_line

log = logging.getLogger("flair_mlflow")
OFFLINE_HINT = (
    "to run offline, copy Flair's dataset cache to a writable folder and set FLAIR_CACHE_ROOT to it "
    "before starting, or use corpus.folder with local files"
)
DOCSTART = "-DOCSTART-"
SENTENCE_BYTES_PER_TEXT_BYTE = 100  # TREC_6's 355 kB FastText train file: 32 MB of Flair sentences
CORPUS_MEMORY_SHARE = 0.25  # of the available memory, for a FastText corpus kept whole
BOM = "\ufeff"  # Flair's reader takes it as (part of) a token, the check as nothing
MIN_DEV_LABELS = 2
FRACTION_STEPS = (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8)  # downsample fractions tried per power of ten


def load_corpus(corpus: CorpusConfig, downsample: float = 1.0, seed: int | None = None, label_type: str | None = None):
    """The corpus the experiment names, downsampled with ``seed``; with ``label_type``, checked to be scorable."""
    if seed is not None:
        flair.set_seed(seed)
    if corpus.name:
        loaded = _load_named(corpus)
    elif corpus.format == "column":
        check_column_files(corpus)
        loaded = _load_folder("ColumnCorpus", corpus, "column", corpus.column_format)
    else:
        loaded = _load_folder("ClassificationCorpus", _with_memory_mode(corpus), "FastText")
    if not corpus.keep_docstart:
        loaded = without_docstart(loaded)
    loaded = checked_sample(loaded, downsample, label_type, seed)
    if loaded.train is None or len(loaded.train) == 0:
        raise CorpusError("corpus", f"'{corpus.describe()}' has no training sentences")
    return loaded


@functools.lru_cache(maxsize=2)
def _cached(corpus_json: str, downsample: float, seed: int | None, label_type: str):
    return load_corpus(CorpusConfig.model_validate_json(corpus_json), downsample, seed, label_type)


def load_for_experiment(config: ExperimentConfig):
    """The corpus of an experiment, loaded once per process: the checks and the trials share it."""
    return _cached(config.corpus.model_dump_json(), config.downsample, config.seed, config.label_type)


def _load_named(corpus: CorpusConfig):
    dataset = getattr(flair.datasets, corpus.name or "", None)
    if not isinstance(dataset, type):
        raise CorpusError("corpus.name", f"'{corpus.name}' is not a Flair dataset (flair.datasets.{corpus.name})")
    try:
        return dataset(**corpus.arguments)
    except TypeError as error:
        raise CorpusError("corpus.arguments", f"{corpus.name}: {error}") from error
    except Exception as error:
        problem = f"cannot load {corpus.name}: {type(error).__name__}: {one_line(error)}; {OFFLINE_HINT}"
        raise CorpusError("corpus.name", problem) from error


def _load_folder(class_name: str, corpus: CorpusConfig, kind: str, *arguments: Any):
    files = {"train_file": corpus.train_file, "dev_file": corpus.dev_file, "test_file": corpus.test_file}
    try:
        return getattr(flair.datasets, class_name)(corpus.folder, *arguments, **files, **corpus.arguments)
    except Exception as error:  # any reader error is the folder's
        problem = f"cannot read {kind} files in '{corpus.folder}': {one_line(error)}"
        raise CorpusError("corpus.folder", problem) from error


def without_docstart(corpus: Any) -> Any:
    """The corpus without CoNLL's ``-DOCSTART-`` markers (one-token sentences to Flair), each a document boundary."""
    if not isinstance(corpus, MultiFileColumnCorpus):  # only column files have them
        return corpus
    splits, dropped = {}, {}
    for name in ("train", "dev", "test"):
        split = getattr(corpus, name)
        markers = [s for s in split or [] if len(s) == 1 and s[0].text == DOCSTART]
        for marker in markers:
            marker.is_document_boundary = True  # Flair's context stops at it
        if markers:
            split = FlairDatapointDataset([s for s in split if not (len(s) == 1 and s[0].text == DOCSTART)])
            dropped[name] = len(markers)
        splits[name] = split
    if not dropped:
        return corpus
    counts = ", ".join(f"{name} {count}" for name, count in dropped.items())
    message = "dropped %d %s pseudo-sentences (%s); set corpus.keep_docstart: true to keep them"
    log.info(message, sum(dropped.values()), DOCSTART, counts)
    return Corpus(**splits, name=corpus.name, sample_missing_splits=False)


def memory_mode_for(text_bytes: int, available_bytes: int) -> str:
    """``full`` (parsed once: the embedding cache hits) if its sentences fit the share, else ``partial`` or ``disk``."""
    budget = CORPUS_MEMORY_SHARE * available_bytes
    if text_bytes * SENTENCE_BYTES_PER_TEXT_BYTE <= budget:
        return "full"
    return "partial" if text_bytes <= budget else "disk"


def _with_memory_mode(corpus: CorpusConfig) -> CorpusConfig:
    if "memory_mode" in corpus.arguments:  # the user's choice
        return corpus
    files = find_train_dev_test_files(Path(corpus.folder or "."), corpus.dev_file, corpus.test_file, corpus.train_file)
    text_bytes = sum(Path(path).stat().st_size for path in files if path is not None)
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    mode = memory_mode_for(text_bytes, available)
    message = "FastText corpus '%s': memory_mode %s (%.1f MB of text, %.0f MB available)"
    log.info(message, corpus.folder, mode, text_bytes / 2**20, available / 2**20)
    return corpus.model_copy(update={"arguments": {**corpus.arguments, "memory_mode": mode}})


def check_column_files(corpus: CorpusConfig) -> None:
    """Refuse files whose token lines lack the columns ``column_format`` names or differ in their number."""
    folder = Path(corpus.folder or ".")
    dev, test, train = find_train_dev_test_files(folder, corpus.dev_file, corpus.test_file, corpus.train_file)
    if train is None:
        problem = f"no training file in '{folder}': name one with 'train' in it, or set corpus.train_file"
        raise CorpusError("corpus.folder", problem)
    needed = max(corpus.column_format or {0: "text"}) + 1
    for path in (Path(p) for p in (train, dev, test) if p is not None):
        try:
            _check_column_file(path, corpus.arguments, needed)
        except UnicodeDecodeError as error:
            raise CorpusError("corpus.folder", f"{path.name} is not {error.encoding} text") from None


def _check_column_file(path: Path, arguments: dict[str, Any], needed: int) -> None:
    delimiter, comment = re.compile(arguments.get("column_delimiter", r"\s+")), arguments.get("comment_symbol")
    first: tuple[int, int] | None = None  # line number and columns of the first token line
    with open(path, encoding=arguments.get("encoding", "utf-8")) as handle:  # streamed: checked whole, any size
        for number, line in enumerate(handle, start=1):
            line = line.replace(BOM, "")
            if not line.strip() or (comment and line.startswith(comment)):
                continue
            columns = len(delimiter.split(line.rstrip()))
            if columns < needed:
                problem = f"{path.name} line {number} has {columns} column(s); column_format needs {needed}"
                raise CorpusError("corpus.folder", problem)
            if first is None:
                first = (number, columns)
            elif columns != first[1]:
                problem = f"{path.name} line {number} has {columns} columns but line {first[0]} has {first[1]}: "
                problem += "not a column file (one token per line, a blank line between sentences)"
                raise CorpusError("corpus.folder", problem)


def scoring_problem(train: list[str], dev: list[str], label_type: str) -> str | None:
    """Why Flair could not train on labels ``train`` and score labels ``dev`` (each a list of values), or None."""
    if not train:
        return f"the training sentences have no '{label_type}' labels"
    if len(dev) < MIN_DEV_LABELS:
        count = f"{len(dev)} '{label_type}' label" + ("" if len(dev) == 1 else "s")
        return f"dev has {count}, too few for Flair to score it (it needs {MIN_DEV_LABELS})"
    unseen = sorted(set(dev) - set(train))
    if unseen:
        shown = ", ".join(unseen[:5]) + (", ..." if len(unseen) > 5 else "")
        return f"dev has '{label_type}' labels the training sentences lack ({shown}), which Flair cannot score"
    return None


def checked_sample(corpus: Any, fraction: float, label_type: str | None = None, seed: int | None = None) -> Any:
    """``corpus`` downsampled, refused (with the smallest fraction that works) where Flair could not train and score."""
    state = random.getstate()  # Flair samples with Python's random: the draw can be replayed
    whole = (corpus.train, corpus.dev, corpus.test)
    if fraction < 1.0:
        corpus.downsample(fraction)
    if label_type is None or whole[1] is None or not any(s.get_labels(label_type) for s in whole[0] or ()):
        return corpus  # check_corpus names what is missing
    problem = _problem(corpus.train, corpus.dev, whole, fraction, label_type)
    if problem is None:
        return corpus
    smallest = _smallest_working_fraction(whole, state, fraction, label_type) if fraction < 1 else None
    if smallest is None:
        raise CorpusError("corpus", problem)
    repeat = f"with seed {seed}" if seed is not None else "for this draw (set seed: to repeat it)"
    sizes = f"{len(corpus.train)} of {len(whole[0])} training and {len(corpus.dev)} of {len(whole[1])} dev sentences"
    problem = f"{fraction:g} leaves {sizes}: {problem}; the smallest downsample that works {repeat} is {smallest:g}"
    raise CorpusError("downsample", problem)


def _problem(train: Any, dev: Any, whole: tuple, fraction: float, label_type: str) -> str | None:
    def labels(split: Any, sample: Any) -> list[str]:  # a downsample is a torch Subset of the whole split
        kept = sample.indices if fraction < 1.0 else range(len(sample))
        return [label.value for index in kept for label in split[index].get_labels(label_type)]

    return scoring_problem(labels(whole[0], train), labels(whole[1], dev), label_type)


def _smallest_working_fraction(whole: tuple, state: Any, fraction: float, label_type: str) -> float | None:
    """The first fraction above ``fraction`` whose sample, drawn as this one was, works; None if not even 1.0."""
    candidates = sorted({round(step * 10.0**power, 12) for power in range(-6, 1) for step in FRACTION_STEPS})
    drawn = random.getstate()
    try:
        for candidate in [c for c in candidates if fraction < c < 1.0] + [1.0]:
            random.setstate(state)
            sample = Corpus(*whole, sample_missing_splits=False).downsample(candidate)
            if _problem(sample.train, sample.dev, whole, candidate, label_type) is None:
                return candidate
        return None
    finally:
        random.setstate(drawn)


def check_corpus(corpus: Any, label_type: str) -> None:
    """Refuse a corpus the search cannot score: no labels of the type asked for, or no dev split."""
    present = {name for sentence in corpus.train for name in sentence.annotation_layers}
    if label_type not in present:
        known = ", ".join(sorted(present)) or "none"
        raise CorpusError("label_type", f"the corpus has no '{label_type}' labels (it has: {known})")
    if corpus.dev is None or len(corpus.dev) == 0:
        raise CorpusError("corpus", "has no dev split; the search scores trials on dev")


def for_trials(corpus: Any, evaluate_test: bool) -> Any:
    """Without its test split unless the search scores test too."""
    if evaluate_test:
        return corpus
    return Corpus(train=corpus.train, dev=corpus.dev, test=None, name=corpus.name, sample_missing_splits=False)
