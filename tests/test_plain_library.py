"""A plain library: importing or using the package changes no process-wide state its caller did not ask for,
and what it needs of Flair and MLflow beyond their public APIs fails here, loudly, when they change."""

from __future__ import annotations

import ast
import gc
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from .conftest import ROOT

PACKAGE = ROOT / "flair_mlflow"
#: the other libraries' loggers a search, a range test or a training touches
LOGGERS = ("flair", "hyperopt", "mlflow", "alembic", "urllib3", "py4j")


def _state() -> dict:
    import flair
    import torch

    return {
        "flair device": str(flair.device),
        "gc enabled": gc.isenabled(),
        "gc frozen": gc.get_freeze_count(),
        "environment": dict(os.environ),
        "logger levels": {name: logging.getLogger(name).level for name in LOGGERS},
        "torch threads": torch.get_num_threads(),
        "tracking uri": mlflow.get_tracking_uri(),
        "stderr": sys.stderr,
    }


def test_using_the_package_leaves_the_process_as_it_was(tmp_path: Path, wnut_corpus, tracking_uri):
    from flair.embeddings import OneHotEmbeddings
    from flair.models import SequenceTagger
    from flair.trainers import ModelTrainer

    import flair_mlflow
    from flair_mlflow import MLflowLoggerPlugin, find_learning_rate

    before = _state()
    for name in flair_mlflow.__all__:
        getattr(flair_mlflow, name)
    tagger = SequenceTagger(
        OneHotEmbeddings.from_corpus(wnut_corpus, embedding_length=8),
        wnut_corpus.make_label_dictionary("ner", add_unk=False),
        "ner",
        hidden_size=8,
        use_crf=False,
    )
    trainer = ModelTrainer(tagger, wnut_corpus)
    find_learning_rate(trainer, tmp_path / "lr", iterations=10, mini_batch_size=16)
    with mlflow.start_run():
        trainer.train(
            tmp_path / "train", max_epochs=1, mini_batch_size=16, plugins=[MLflowLoggerPlugin()], save_final_model=False
        )
    assert _state() == before


def test_no_garbage_collector_calls_and_no_patching_of_other_libraries():
    """Read off the source: no ``gc`` at all, and no assignment to an attribute of anything the package imported
    (but the command line's own process, where a dropped Ctrl-C is delivered again: ``sys.unraisablehook``)."""
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {
            alias.asname or alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names
        }
        assert "gc" not in imported, path
        for node in ast.walk(tree):
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AugAssign)
                else []
            )
            for target in targets:
                if ast.unparse(target) == "flair.device" and path.name == "device.py":
                    continue  # Flair's own way to choose a device, put back by training.device.on_device
                while isinstance(target, ast.Attribute):
                    target = target.value
                allowed = {"os"} | ({"sys"} if path.name == "cli.py" else set())
                assert not (isinstance(target, ast.Name) and target.id in imported - allowed), (
                    f"{path}: patches {target.id}"
                )


def test_importing_the_package_and_its_command_line_changes_no_environment_variable():
    code = "import os, json; before = dict(os.environ); import flair_mlflow, flair_mlflow.cli; print(json.dumps(dict(os.environ) == before))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.stdout.strip() == "true", done.stderr


# -- what the package needs of other libraries beyond their public APIs -------------------------------
def test_flair_still_sends_the_events_the_plugins_hook(wnut_corpus):
    """Flair refuses a plugin whose event it does not know; attaching each shows it still sends them all."""
    from flair.models import SequenceTagger
    from flair.trainers import ModelTrainer

    from flair_mlflow.training.plugins import FrozenEmbeddingsInEval, MedianStoppingPlugin, MLflowLoggerPlugin
    from flair_mlflow.training.threads import ThreadProbe

    tagger = SequenceTagger(
        _onehot(wnut_corpus), wnut_corpus.make_label_dictionary("ner", add_unk=False), "ner", hidden_size=4
    )
    trainer = ModelTrainer(tagger, wnut_corpus)
    for plugin in (
        MLflowLoggerPlugin(enabled=False),
        MedianStoppingPlugin(None, 1),
        FrozenEmbeddingsInEval([]),
        ThreadProbe((1,)),
    ):
        plugin.attach_to(trainer)
    assert {"_training_exception", "after_training", "after_evaluation", "metric_recorded"} <= ModelTrainer.valid_events


def _onehot(corpus):
    from flair.embeddings import OneHotEmbeddings

    return OneHotEmbeddings.from_corpus(corpus, embedding_length=4)


def test_mlflows_probe_answers_a_server_and_fails_fast_without_one(mlflow_server):
    """The one private use of MLflow: a tracking server probed with no retries (see tracking/mlflow_internals.py)."""
    from flair_mlflow.tracking.mlflow_internals import probe_server

    from .servers import free_port

    probe_server(mlflow_server)
    started = time.monotonic()
    with pytest.raises(Exception):  # noqa: B017 (requests' or MLflow's, as MLflow raises it)
        probe_server(f"http://127.0.0.1:{free_port()}")
    assert time.monotonic() - started < 30


def test_mlflows_artifact_repository_deletes_a_logged_models_files(tmp_path: Path):
    """A private use of MLflow: deleting a dropped kept model's files as ``mlflow gc`` does."""
    from flair_mlflow.tracking.mlflow_internals import delete_artifacts

    (tmp_path / "model" / "artifacts").mkdir(parents=True)
    (tmp_path / "model" / "artifacts" / "flair_model").write_bytes(b"weights")
    delete_artifacts((tmp_path / "model").as_uri())
    assert not any((tmp_path / "model").rglob("*"))


def test_mlflows_system_metrics_monitor_logs_to_a_run_by_id(tracking_uri):
    """A private use of MLflow: its system-metrics monitor, pointed at a run by id and store."""
    from flair_mlflow.tracking.mlflow_internals import system_metrics

    client = mlflow.MlflowClient(tracking_uri)
    run = client.create_run(client.create_experiment("monitor"))
    with system_metrics(run.info.run_id, tracking_uri, enabled=True):
        pass  # shorter than the monitor's interval: the last sample is logged on the way out
    assert any(key.startswith("system/cpu_utilization") for key in client.get_run(run.info.run_id).data.metrics)
