"""Corpora from an experiment file: a Flair dataset by name, or local column / FastText files.

Loading is deterministic for a given seed (Flair samples missing dev splits and downsamples
with Python's global ``random``), so a trial rebuilt in another process sees the same
sentences as the driver did.
"""

from __future__ import annotations

import functools
import logging
import random
from typing import Any

from ..core.config import ExperimentConfig
from ..core.corpus_config import CorpusConfig
from ..core.errors import CorpusError
from .corpus_checks import check_column_files, checked_sample
from .corpus_content import with_memory_mode, without_docstart
from .corpus_lazy import lines_only, parsed_on_demand

log = logging.getLogger("flair_mlflow")

OFFLINE_HINT = (
    "to run offline, copy Flair's dataset cache to a writable folder and set FLAIR_CACHE_ROOT to it "
    "before starting, or use corpus.folder with local files"
)


def load_corpus(corpus: CorpusConfig, downsample: float = 1.0, seed: int | None = None, label_type: str | None = None):
    """Load the corpus the experiment names, downsampled with ``seed`` for repeatability; with
    ``label_type``, refused where Flair could not train on it and score it (see :mod:`.corpus_checks`)."""
    import flair

    if seed is not None:
        flair.set_seed(seed)
    drawn = random.getstate()  # where a whole parse must start from if reading only the sample gives up
    loaded = _sampled_only(corpus) if downsample < 1.0 else None
    if loaded is None:
        random.setstate(drawn)
        loaded = _parsed_whole(corpus)
    loaded = checked_sample(loaded, downsample, label_type, seed)
    if loaded.train is None or len(loaded.train) == 0:
        raise CorpusError("corpus", f"'{corpus.describe()}' has no training sentences")
    return loaded


def _parsed_whole(corpus: CorpusConfig):
    """The corpus as Flair loads it, every sentence parsed (and -DOCSTART- markers dropped)."""
    if corpus.name:
        loaded = _load_named(corpus)
    elif corpus.format == "column":
        loaded = _load_column(corpus)
    else:
        loaded = _load_fasttext(corpus)
    if not corpus.keep_docstart and corpus.arguments.get("in_memory", True):
        loaded = without_docstart(loaded)
    return loaded


def _sampled_only(corpus: CorpusConfig):
    """A column corpus read as lines, its sentences parsed when a sample reads them (see :mod:`.corpus_lazy`);
    None where only a whole parse gives the right corpus."""
    from flair.datasets import ColumnCorpus

    corpus_class = _dataset_class(corpus) if corpus.name else ColumnCorpus if corpus.format == "column" else None
    as_lines = lines_only(corpus, corpus_class) if corpus_class is not None else None
    if as_lines is None:
        return None
    try:
        read = _load_named(as_lines) if corpus.name else _load_column(as_lines)
    except CorpusError:  # a loader that refuses in_memory, or a real problem the whole parse names again
        return None
    return parsed_on_demand(read, drop_docstart=not corpus.keep_docstart)


@functools.lru_cache(maxsize=2)
def _load_cached(corpus_yaml: str, downsample: float, seed: int | None, label_type: str | None = None):
    return load_corpus(CorpusConfig(**_from_yaml(corpus_yaml)), downsample, seed, label_type)


def _from_yaml(text: str) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(text)


def load_for_experiment(config: ExperimentConfig):
    """The corpus of an experiment, loaded once per process (trials on one worker share it)."""
    import yaml

    data = {k: v for k, v in config.corpus.__dict__.items()}
    return _load_cached(yaml.safe_dump(data, sort_keys=True), config.downsample, config.seed, config.label_type)


def _dataset_class(corpus: CorpusConfig) -> type:
    import flair.datasets

    dataset = getattr(flair.datasets, corpus.name, None)
    if dataset is None or not isinstance(dataset, type):
        raise CorpusError("corpus.name", f"'{corpus.name}' is not a Flair dataset (flair.datasets.{corpus.name})")
    return dataset


def _load_named(corpus: CorpusConfig):
    dataset = _dataset_class(corpus)
    try:
        return dataset(**corpus.arguments)
    except TypeError as error:
        raise CorpusError("corpus.arguments", f"{corpus.name}: {error}") from error
    except Exception as error:
        message = " ".join(str(error).split())[:300]
        raise CorpusError(
            "corpus.name", f"cannot load {corpus.name}: {type(error).__name__}: {message}; {OFFLINE_HINT}"
        ) from error


def _load_column(corpus: CorpusConfig):
    from flair.datasets import ColumnCorpus

    check_column_files(corpus)
    return _load_folder(ColumnCorpus, corpus, "column", corpus.column_format)


def _load_fasttext(corpus: CorpusConfig):
    from flair.datasets import ClassificationCorpus

    return _load_folder(ClassificationCorpus, with_memory_mode(corpus), "FastText")


def _load_folder(corpus_class: Any, corpus: CorpusConfig, kind: str, *arguments: Any):
    """A Flair corpus of local files, any reader error named as the folder's."""
    try:
        return corpus_class(
            corpus.folder,
            *arguments,
            train_file=corpus.train_file,
            dev_file=corpus.dev_file,
            test_file=corpus.test_file,
            **corpus.arguments,
        )
    except Exception as error:
        message = " ".join(str(error).split())[:300]
        raise CorpusError("corpus.folder", f"cannot read {kind} files in '{corpus.folder}': {message}") from error


def label_types(corpus) -> set[str]:
    """Label types present in the training split (span and sentence labels alike)."""
    found: set[str] = set()
    for sentence in corpus.train:
        found.update(sentence.annotation_layers.keys())
    return found


def check_corpus(corpus, label_type: str) -> None:
    """Refuse a corpus the search cannot score: no dev split, or no labels of the type asked for."""
    present = label_types(corpus)
    if label_type not in present:
        known = ", ".join(sorted(present)) or "none"
        raise CorpusError("label_type", f"the corpus has no '{label_type}' labels (it has: {known})")
    if corpus.dev is None or len(corpus.dev) == 0:
        raise CorpusError("corpus", "has no dev split; the search scores trials on dev")


def for_trials(corpus, evaluate_test: bool):
    """The corpus trials train and score on: without its test split unless the search scores test too."""
    return corpus if evaluate_test else without_test(corpus)


def without_test(corpus):
    """The same corpus minus its test split, so training never evaluates on test during a search."""
    from flair.data import Corpus

    return Corpus(train=corpus.train, dev=corpus.dev, test=None, name=corpus.name, sample_missing_splits=False)
