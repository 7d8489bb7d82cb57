"""MLflow 3's conventions on a real search: dataset inputs, kept trial models, system metrics, and registering the
best trial's own model without training it again (then predicting with it through ``mlflow models predict``).

One 4-trial search of a tiny corpus (module fixture) with ``keep_models: 2``; each test reads what it left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from flair_mlflow import register_best, run_search
from flair_mlflow.register.model_logging import EXAMPLE_TEXTS
from flair_mlflow.tracking.tags import KEPT_MODEL_TAG, PARENT_RUN_ID_TAG

from .conftest import write_tiny_corpus

pytestmark = pytest.mark.slow

EXPERIMENT = """\
task: sequence_tagging
experiment: kept-models
corpus:
  folder: {folder}
  column_format: {{0: text, 1: ner}}
label_type: ner
max_epochs: 2
max_evals: 4
algorithm: rand
seed: 5
keep_models: 2
log_system_metrics: true
search_space:
  hidden_size: {{choice: [8, 16, 32]}}
  learning_rate: {{choice: [0.02, 0.1, 0.5]}}
fixed:
  embeddings: onehot
  use_crf: false
  mini_batch_size: 8
"""


@pytest.fixture(scope="module")
def search(tmp_path_factory: pytest.TempPathFactory, flair_cache):
    folder = tmp_path_factory.mktemp("kept")
    write_tiny_corpus(folder / "data")
    config = folder / "experiment.yaml"
    config.write_text(EXPERIMENT.format(folder=folder / "data"), encoding="utf-8")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    (folder / "elsewhere").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder / "elsewhere")  # MLflow's default store is another one: every call names its store
        result = run_search(config, tracking_uri=uri, show_progress=False)
        client = mlflow.MlflowClient(uri)
        parent = client.get_run(result.parent_run_id)
        runs = client.search_runs([parent.info.experiment_id], f"tags.`{PARENT_RUN_ID_TAG}` = '{parent.info.run_id}'")
        yield {"result": result, "client": client, "uri": uri, "folder": folder, "trials": runs, "parent": parent}


def test_exactly_the_two_best_trials_keep_their_models(search):
    client, trials = search["client"], search["trials"]
    assert len(trials) == 4
    best_two = sorted(trials, key=lambda r: (r.data.metrics["loss"], int(r.data.tags["flair_mlflow.trial_number"])))[:2]
    models = client.search_logged_models(experiment_ids=[search["parent"].info.experiment_id])
    assert sorted(m.source_run_id for m in models) == sorted(r.info.run_id for r in best_two)
    assert {r.info.run_id for r in trials if KEPT_MODEL_TAG in r.data.tags} == {r.info.run_id for r in best_two}
    for model in models:
        assert str(model.status) == "READY" and model.name.startswith("trial-")
        assert {m.key for m in model.metrics} >= {"final_score", "loss"}  # linked to the trial's scores
        assert Path(mlflow.artifacts.download_artifacts(model.artifact_location, tracking_uri=search["uri"])).is_dir()
    outcome = search["result"].best
    assert outcome.model_id == best_two[0].data.tags[KEPT_MODEL_TAG]


def test_every_trial_and_the_parent_record_the_corpus_as_dataset_inputs(search):
    for run in [search["parent"], *search["trials"]]:
        inputs = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
        assert set(inputs) == {"train", "dev"}  # test stays unseen: evaluate_test is off
        profiles = {context: json.loads(dataset.profile) for context, dataset in inputs.items()}
        assert profiles["train"]["sentences"] == 40 and profiles["dev"]["sentences"] == 8
        assert profiles["train"]["labels"] == 40 * 2  # a person and a place in every sentence
        assert inputs["train"].name == "data" and inputs["train"].source_type == "local"
        assert json.loads(inputs["train"].source)["uri"] == str(search["folder"] / "data")
    digests = {i.dataset.digest for run in search["trials"] for i in run.inputs.dataset_inputs}
    assert len(digests) == 2  # the same two splits in every trial


def test_trial_runs_have_system_metrics(search):
    for run in search["trials"]:
        assert any(key.startswith("system/cpu_utilization") for key in run.data.metrics), run.data.metrics


def test_register_from_trial_registers_the_kept_model_without_training(search):
    client, result = search["client"], search["result"]
    started = time.time()
    registration = register_best(result.parent_run_id, "kept-ner", from_trial=True, tracking_uri=search["uri"])
    seconds = time.time() - started
    print(f"register --from-trial took {seconds:.1f}s")
    kept = result.best.model_id
    assert registration.model_uri == f"models:/{kept}" and registration.alias == "champion"
    version = client.get_model_version("kept-ner", registration.version)
    assert version.source == client.get_logged_model(kept).artifact_location  # the trial's files, not a copy
    run = client.get_run(registration.run_id)
    assert not client.get_metric_history(run.info.run_id, "dev_score")  # no epoch: nothing was trained
    assert 0.0 <= run.data.metrics["test_score"] <= 1.0 and run.data.params["from_trial"] == "True"
    assert run.data.tags["flair_mlflow.source"].startswith("the kept model of trial")

    from flair.datasets import ColumnCorpus

    dev = ColumnCorpus(search["folder"] / "data", {0: "text", 1: "ner"}).dev
    texts = [sentence.to_plain_string() for sentence in dev]

    def predictions(uri: str) -> list:
        previous = mlflow.get_tracking_uri()  # models:/ URIs resolve through the process-wide store
        mlflow.set_tracking_uri(search["uri"])
        try:
            return mlflow.pyfunc.load_model(uri).predict(texts)
        finally:
            mlflow.set_tracking_uri(previous)

    champion = predictions("models:/kept-ner@champion")
    assert champion == predictions(f"models:/{kept}") and any(champion)


def test_mlflow_models_predict_checks_input_against_the_signature(search):
    register_best(search["result"].parent_run_id, "kept-cli", from_trial=True, tracking_uri=search["uri"])
    folder = search["folder"]
    good, bad = folder / "good.json", folder / "bad.json"
    good.write_text(json.dumps({"inputs": EXAMPLE_TEXTS}))
    bad.write_text(json.dumps({"inputs": [{"text": 3, "extra": [1]}]}))
    env = {**os.environ, "MLFLOW_TRACKING_URI": search["uri"]}

    def predict(path: Path) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "mlflow", "models", "predict", "-m", "models:/kept-cli/1", "-i", str(path)]
        command += ["-t", "json", "--env-manager", "local"]
        return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=folder)

    answered = predict(good)
    assert answered.returncode == 0, answered.stderr[-2000:]
    assert len(json.loads(answered.stdout.strip().splitlines()[-1])["predictions"]) == len(EXAMPLE_TEXTS)
    refused = predict(bad)
    assert refused.returncode != 0 and "Expected type str" in refused.stderr, refused.stderr[-2000:]
