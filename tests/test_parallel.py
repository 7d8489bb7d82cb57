"""Trials side by side on local Spark, logging to a real tracking server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import pytest

from flair_mlflow import run_search
from flair_mlflow.tracking.tags import TRIAL_NUMBER_TAG as TRIAL_TAG
from flair_mlflow.tracking.tags import VALS_TAG

from .conftest import WNUT_TINY

pytest.importorskip("pyspark")


def _children(client: mlflow.MlflowClient, parent_run_id: str) -> list:
    parent = client.get_run(parent_run_id)
    runs = client.search_runs([parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'")
    return sorted(runs, key=lambda r: r.info.run_name)


@pytest.mark.slow
def test_parallel_search_has_the_shape_of_a_sequential_one(flair_cache, mlflow_server, write_config, monkeypatch):
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    config = write_config(WNUT_TINY, experiment="spark", max_evals=3)
    parallel = run_search(config, overrides={"parallelism": 2}, tracking_uri=mlflow_server, show_progress=False)
    sequential = run_search(config, tracking_uri=mlflow_server, show_progress=False)

    client = mlflow.MlflowClient(mlflow_server)
    parent = client.get_run(parallel.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.params["parallelism"] == "2"
    children = _children(client, parallel.parent_run_id)
    assert [c.info.run_name for c in children] == ["trial-001", "trial-002", "trial-003"]
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags[TRIAL_TAG] == str(int(child.info.run_name.removeprefix("trial-")))
        assert set(json.loads(child.data.tags[VALS_TAG])) == {"embeddings", "hidden_size", "dropout"}
        history = client.get_metric_history(child.info.run_id, "run_1/dev_score")
        assert sorted(m.step for m in history) == [1, 2]
        assert "final_score" in child.data.metrics
    sequential_children = _children(client, sequential.parent_run_id)
    assert len(sequential_children) == len(children)
    assert {frozenset(c.data.params) for c in children} == {frozenset(c.data.params) for c in sequential_children}
    inputs = [
        {(d.dataset.name, d.dataset.digest) for d in c.inputs.dataset_inputs} for c in children + sequential_children
    ]
    assert len(inputs[0]) >= 2 and all(one == inputs[0] for one in inputs), inputs  # Spark trials record the corpus too
    assert parent.data.tags["best_trial_run_id"] in {c.info.run_id for c in children}
    assert {"param_selection.txt", "trials.csv", "best_params.yaml"} <= {
        a.path for a in client.list_artifacts(parallel.parent_run_id)
    }


@pytest.mark.slow
def test_remote_spark_with_a_local_store_is_refused(tmp_path: Path, write_config):
    config = write_config(WNUT_TINY)
    store = tmp_path / "local.db"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "flair_mlflow.cli",
            "tune",
            str(config),
            "--parallelism",
            "4",
            "--spark-master",
            "spark://spark-master.invalid:7077",
            "--tracking-uri",
            f"sqlite:///{store}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert "tracking_uri" in result.stderr and "tracking server" in result.stderr
    if store.exists():  # the reachability probe may create an empty store; no run may be in it
        client = mlflow.MlflowClient(f"sqlite:///{store}")
        assert not client.search_runs([e.experiment_id for e in client.search_experiments()])


@pytest.mark.slow
def test_parallel_search_stops_without_improvement(flair_cache, mlflow_server, write_config, monkeypatch):
    """The no-improvement rule reads the outcomes the driver holds: once it fires no trial starts, and the trials
    under way finish and count (a sequential search stops after the trial that fired it, with nothing under way)."""
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    config = write_config(WNUT_TINY, experiment="spark-stall", max_evals=8)
    overrides = {"parallelism": 2, "early_stop_trials": 1, "max_epochs": 1, "optimization_value": "dev_loss"}
    result = run_search(config, overrides=overrides, tracking_uri=mlflow_server, show_progress=False)

    parent = mlflow.MlflowClient(mlflow_server).get_run(result.parent_run_id)
    assert parent.data.tags["stop_reason"] == "no_improvement"
    assert len(result.outcomes) < 8 and parent.data.metrics["trials"] == len(result.outcomes)
    children = _children(mlflow.MlflowClient(mlflow_server), result.parent_run_id)
    assert [c.info.status for c in children] == ["FINISHED"] * len(children), "a trial under way was cut off"
    assert {c.info.run_id for c in children} == {o.run_id for o in result.outcomes}
    assert [o.number for o in result.outcomes] == list(range(1, len(result.outcomes) + 1))

    # resumed with --parallelism 1: the counted trials are restored under their numbers, the next follows the last
    more = {**overrides, "parallelism": 1, "early_stop_trials": None, "max_evals": len(result.outcomes) + 1}
    resumed = run_search(
        config, overrides=more, tracking_uri=mlflow_server, show_progress=False, resume=result.parent_run_id
    )
    numbers = [o.number for o in result.outcomes]
    assert [o.number for o in resumed.outcomes] == numbers + [max(numbers) + 1]
    assert [o.run_id for o in resumed.outcomes][:-1] == [o.run_id for o in result.outcomes]
    parent = mlflow.MlflowClient(mlflow_server).get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials"] == len(numbers) + 1


def _spark_python_workers() -> list[int]:
    """PIDs of PySpark's forked Python workers: the children of its daemon (this package's
    ``spark_daemon`` on a local master, ``pyspark.daemon`` elsewhere)."""
    daemons, parents = set(), {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"pyspark.daemon" in cmdline or b"flair_mlflow.search.spark_daemon" in cmdline:
            daemons.add(int(entry.name))
            parents[int(entry.name)] = ppid
    return [pid for pid, ppid in parents.items() if ppid in daemons]


@pytest.mark.slow
def test_a_lost_spark_worker_fails_its_trial_and_the_search_goes_on(
    flair_cache, mlflow_server, write_config, monkeypatch
):
    """Python workers killed mid-trial: a trial's child run ends FAILED under its number, nothing stays
    RUNNING. (The other worker's trial may not have made its run yet: it fails with no run.)"""
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    config = write_config(WNUT_TINY, experiment="spark-lost", max_evals=3)
    client = mlflow.MlflowClient(mlflow_server)
    killed: list[int] = []

    def kill_a_worker_mid_trial() -> None:
        deadline = time.time() + 240
        while time.time() < deadline and not killed:
            experiment = client.get_experiment_by_name("spark-lost")
            training = experiment and client.search_runs(
                [experiment.experiment_id],
                filter_string="attributes.status = 'RUNNING' and metrics.`run_1/dev_score` > -1",
            )
            if training:
                for pid in _spark_python_workers():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.1)

    killer = threading.Thread(target=kill_a_worker_mid_trial, daemon=True)
    killer.start()
    # an epoch here takes about 0.15 s: with 30 a trial trains for seconds, not for less than one poll
    result = run_search(
        config, overrides={"parallelism": 2, "max_epochs": 30}, tracking_uri=mlflow_server, show_progress=False
    )
    killer.join(timeout=5)
    assert killed, "no Spark worker was seen training"

    children = _children(client, result.parent_run_id)
    assert [c.info.status for c in children if c.info.status == "RUNNING"] == []
    names = [c.info.run_name for c in children]
    assert names == sorted(set(names)) and set(names) <= {f"trial-{n:03d}" for n in range(1, 4)}
    lost = [c for c in children if c.data.tags.get("error.class") == "SparkTaskFailed"]
    assert lost and all(c.info.status == "FAILED" for c in lost)
    assert {o.run_id for o in result.outcomes if o.run_id} == {c.info.run_id for c in children}
    runless = [o for o in result.outcomes if not o.run_id]
    assert all(o.status == "fail" and "SparkTaskFailed" in o.error for o in runless)
    assert client.get_run(result.parent_run_id).data.metrics["failed_trials"] >= len(lost)


@pytest.mark.slow
def test_asha_on_spark_runs_jobs_side_by_side_and_promotions_continue_their_run(
    flair_cache, mlflow_server, write_config, monkeypatch, tmp_path
):
    from flair_mlflow.config import ExperimentConfig
    from flair_mlflow.search.spark import spark_session
    from flair_mlflow.tracking import tags as T

    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    config = write_config(WNUT_TINY, experiment="spark-asha", max_evals=4)
    # both slots' Python workers with what a job's task unpickles imported (Flair, this package's training), as a warm
    # worker earlier tests left would otherwise start its jobs seconds before a cold one creates its first run
    context = spark_session(ExperimentConfig.from_file(config, {"parallelism": 2})).sparkContext
    imported = context.parallelize([0, 1], 2).map(lambda _: (__import__("flair_mlflow.search.spark"), os.getpid())[1])
    assert len(set(imported.collect())) == 2
    checkpoints = tmp_path / "checkpoints"
    rungs = {"type": "asha", "min_epochs": 1, "reduction_factor": 2, "checkpoint_dir": str(checkpoints)}
    overrides = {"parallelism": 2, "max_epochs": 4, "scheduler": rungs}
    result = run_search(config, overrides=overrides, tracking_uri=mlflow_server, show_progress=False)
    assert all(o.ok for o in result.outcomes), [o.error for o in result.outcomes]

    client = mlflow.MlflowClient(mlflow_server)
    runs = {o.number: client.get_run(o.run_id) for o in result.outcomes}
    reached = {n: int(r.data.tags[T.EPOCHS_REACHED_TAG]) for n, r in runs.items()}
    assert sorted(runs) == [1, 2, 3, 4] and set(reached.values()) <= {1, 2, 4}
    assert result.best.epochs == 4 and sum(1 for e in reached.values() if e >= 2) >= 2  # the top half went on
    first_rung_ends = {}
    for number, run in runs.items():
        assert run.info.status == "FINISHED"
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "run_1/dev_score"))
        assert steps == list(range(1, reached[number] + 1))  # one run per trial, its epochs continuing on any worker
        scores = client.get_metric_history(run.info.run_id, "rung_score")
        first_rung_ends[number] = min(m.timestamp for m in scores if m.step == 1)
    assert runs[2].info.start_time < first_rung_ends[1]  # two Spark jobs at once, not one after the other
    assert not (checkpoints / result.parent_run_id).exists()
    trials_at = {m.step: m.value for m in client.get_metric_history(result.parent_run_id, "rung_trials")}
    assert trials_at[1] == 4 and trials_at[4] >= 1


@pytest.mark.slow
def test_spark_jobs_one_after_another_reuse_their_python_workers(write_config, monkeypatch):
    """A job's Python worker (a trial's, or a rung's) goes back to PySpark's pool, so the next job finds Flair imported
    and the corpus loaded; a job whose task leaves its input unread (as hyperopt's SparkTrials' do) gets a new process
    every time."""
    from flair_mlflow.config import ExperimentConfig
    from flair_mlflow.search.spark import one_task_job, spark_session

    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    config = ExperimentConfig.from_file(write_config(WNUT_TINY), {"parallelism": 2})
    context = spark_session(config).sparkContext
    reused = {one_task_job(context, os.getpid) for _ in range(4)}
    assert len(reused) <= 2  # at most a worker per slot of local[2]: the pool hands back the ones earlier jobs used
    unread = {context.parallelize([0], 1).mapPartitions(lambda _: [os.getpid()]).collect()[0] for _ in range(4)}
    assert len(unread) == 4  # the contrast docs/spark-and-deployment.md states of SparkTrials' jobs
