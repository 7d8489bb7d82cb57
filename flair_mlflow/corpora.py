"""Corpora from an experiment file: a Flair dataset by name, or local column / FastText files.

Loading is deterministic for a given seed (Flair samples missing dev splits and downsamples
with Python's global ``random``), so a trial rebuilt in another process sees the same
sentences as the driver did.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from .config import CorpusConfig, ExperimentConfig
from .errors import CorpusError

log = logging.getLogger("flair_mlflow")

OFFLINE_HINT = (
    "to run offline, copy Flair's dataset cache to a writable folder and set FLAIR_CACHE_ROOT to it "
    "before starting, or use corpus.folder with local files"
)


def load_corpus(corpus: CorpusConfig, downsample: float = 1.0, seed: int | None = None):
    """Load the corpus the experiment names, downsampled with ``seed`` for repeatability."""
    import flair

    if seed is not None:
        flair.set_seed(seed)
    if corpus.name:
        loaded = _load_named(corpus)
    elif corpus.format == "column":
        loaded = _load_column(corpus)
    else:
        loaded = _load_fasttext(corpus)
    if downsample < 1.0:
        loaded = loaded.downsample(downsample)
    if loaded.train is None or len(loaded.train) == 0:
        raise CorpusError("corpus", f"'{corpus.describe()}' has no training sentences")
    return loaded


@functools.lru_cache(maxsize=2)
def _load_cached(corpus_yaml: str, downsample: float, seed: int | None):
    return load_corpus(CorpusConfig(**_from_yaml(corpus_yaml)), downsample, seed)


def _from_yaml(text: str) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(text)


def load_for_experiment(config: ExperimentConfig):
    """The corpus of an experiment, loaded once per process (trials on one worker share it)."""
    import yaml

    data = {k: v for k, v in config.corpus.__dict__.items()}
    return _load_cached(yaml.safe_dump(data, sort_keys=True), config.downsample, config.seed)


def _load_named(corpus: CorpusConfig):
    import flair.datasets

    dataset = getattr(flair.datasets, corpus.name, None)
    if dataset is None or not isinstance(dataset, type):
        raise CorpusError("corpus.name", f"'{corpus.name}' is not a Flair dataset (flair.datasets.{corpus.name})")
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

    try:
        return ColumnCorpus(
            corpus.folder,
            corpus.column_format,
            train_file=corpus.train_file,
            dev_file=corpus.dev_file,
            test_file=corpus.test_file,
            **corpus.arguments,
        )
    except Exception as error:
        message = " ".join(str(error).split())[:300]
        raise CorpusError("corpus.folder", f"cannot read column files in '{corpus.folder}': {message}") from error


def _load_fasttext(corpus: CorpusConfig):
    from flair.datasets import ClassificationCorpus

    try:
        return ClassificationCorpus(
            corpus.folder,
            train_file=corpus.train_file,
            dev_file=corpus.dev_file,
            test_file=corpus.test_file,
            **corpus.arguments,
        )
    except Exception as error:
        message = " ".join(str(error).split())[:300]
        raise CorpusError("corpus.folder", f"cannot read FastText files in '{corpus.folder}': {message}") from error


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


def without_test(corpus):
    """The same corpus minus its test split, so training never evaluates on test during a search."""
    from flair.data import Corpus

    return Corpus(train=corpus.train, dev=corpus.dev, test=None, name=corpus.name, sample_missing_splits=False)
