"""A downsampled column corpus is read as lines and parsed only where the sample reads it, and it is
the corpus a whole parse gives: the same sentences in the same order, the same -DOCSTART- count, the
same context. Real WNUT_17 files, and column folders made from them.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import flair
import pytest
from flair.datasets import WNUT_17
from flair.datasets.sequence_labeling import ColumnDataset

from flair_mlflow.adapters import corpora
from flair_mlflow.adapters.corpus_checks import checked_sample
from flair_mlflow.adapters.corpus_lazy import _KeptSentences
from flair_mlflow.core.corpus_config import corpus_from

from .test_trust import _column_folder

COLUMNS = {0: "text", 1: "ner"}


@pytest.fixture(autouse=True)
def _fresh_corpus_cache():
    corpora._load_cached.cache_clear()
    yield
    corpora._load_cached.cache_clear()


@pytest.fixture()
def parses(monkeypatch) -> Counter:
    """How many blocks of lines Flair's column reader has turned into sentences, per file."""
    counted: Counter[str] = Counter()
    convert = ColumnDataset._convert_lines_to_sentence

    def counting(self, lines, *args, **kwargs):
        counted[self.path_to_column_file.name] += 1
        return convert(self, lines, *args, **kwargs)

    monkeypatch.setattr(ColumnDataset, "_convert_lines_to_sentence", counting)
    return counted


def _as_read(corpus) -> list:
    """Every split's sentences (tagged) with the sentences Flair gives as their context."""

    def text(sentence) -> str | None:
        return sentence.to_tagged_string() if sentence is not None else None

    return [
        [(text(s), text(s.previous_sentence()), text(s.next_sentence())) for s in split] if split is not None else None
        for split in (corpus.train, corpus.dev, corpus.test)
    ]


def _whole(settings: dict, fraction: float, seed: int):
    """The corpus as before: every sentence parsed, markers dropped, then sampled."""
    corpus = corpus_from(settings)
    flair.set_seed(seed)
    return checked_sample(corpora._parsed_whole(corpus), fraction, "ner", seed)


def test_a_tenth_of_wnut_17_is_flairs_own_sample_and_parses_only_what_it_reads(flair_cache, parses):
    corpus = corpora.load_corpus(corpus_from({"name": "WNUT_17"}), 0.1, seed=11, label_type="ner")
    loading = sum(parses.values())  # the train and dev sentences the sample check read, and one-line blocks
    assert isinstance(corpus.train.dataset, _KeptSentences)
    read = _as_read(corpus)  # reading the context parses the neighbours too

    parses.clear()
    flair.set_seed(11)
    flair_own = WNUT_17().downsample(0.1)
    assert _as_read(flair_own) == read
    assert (len(corpus.train), len(corpus.dev), len(corpus.test)) == (339, 101, 129)
    whole = 3394 + 1009 + 1287  # Flair parses each sentence, and five per file to tell its columns apart
    assert sum(parses.values()) == whole + 3 * 5 and loading < whole / 5, loading


def test_a_sampled_column_folder_is_the_whole_parses_sample_with_its_docstart_count_and_context(
    flair_cache, tmp_path, caplog
):
    folder = tmp_path / "conll"
    _column_folder(folder, flair_cache)
    (folder / "dev.txt").unlink()  # Flair samples dev from train: the split is a Subset of the file
    settings = {"folder": str(folder), "column_format": COLUMNS}
    for seed in (1, 5):
        with caplog.at_level(logging.INFO, logger="flair_mlflow"):
            caplog.clear()
            whole = _whole(settings, 0.3, seed)
            said_whole = [r.getMessage() for r in caplog.records if "DOCSTART" in r.getMessage()]
            corpora._load_cached.cache_clear()
            caplog.clear()
            sampled = corpora.load_corpus(corpus_from(settings), 0.3, seed=seed, label_type="ner")
            said_sampled = [r.getMessage() for r in caplog.records if "DOCSTART" in r.getMessage()]
        assert isinstance(sampled.train.dataset, _KeptSentences)
        assert _as_read(sampled) == _as_read(whole)
        assert said_sampled == said_whole and "dropped 28 -DOCSTART-" in said_sampled[0]  # 24 in train.txt (some of
        # them now in the dev split sampled from it), 4 in test.txt
    kept = {**settings, "keep_docstart": True}
    assert _as_read(corpora.load_corpus(corpus_from(kept), 0.3, seed=5, label_type="ner")) == _as_read(
        _whole(kept, 0.3, 5)
    )


@pytest.mark.parametrize("change", ["a block of only comments", "banned sentences"])
def test_a_folder_the_lines_cannot_promise_the_same_corpus_for_is_parsed_whole(flair_cache, tmp_path, change):
    folder = tmp_path / "conll"
    _column_folder(folder, flair_cache)
    settings: dict = {"folder": str(folder), "column_format": COLUMNS}
    if change == "banned sentences":
        settings["arguments"] = {"banned_sentences": ["@paulwalk"]}
    else:  # Flair's whole parse skips the block; read as lines it would count, and every later draw would move
        train = folder / "train.txt"
        train.write_text("# only a comment\n\n" + train.read_text("utf-8"), "utf-8")
        settings["arguments"] = {"comment_symbol": "#"}
    corpus = corpora.load_corpus(corpus_from(settings), 0.3, seed=2, label_type="ner")
    assert not isinstance(corpus.train.dataset, _KeptSentences)
    assert _as_read(corpus) == _as_read(_whole(settings, 0.3, 2))


def test_a_sampled_corpus_trains_on_the_sentences_it_keeps(flair_cache, tmp_path):
    """The objects a trial reads are the ones kept: what a sentence holds (the embedding cache's
    vectors) is still there on the next read."""
    corpus = corpora.load_corpus(corpus_from({"name": "WNUT_17"}), 0.05, seed=3, label_type="ner")
    first = [corpus.train[i] for i in range(len(corpus.train))]
    assert all(a is b for a, b in zip(first, (corpus.train[i] for i in range(len(corpus.train)))))
    assert Path(corpus.train.dataset.sentences[0][0].dataset.path_to_column_file).name == "wnut17train.conll"
