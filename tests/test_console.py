"""What a user reads on the console: a quiet search with a useful summary, where lr-find's files are."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner

from flair_mlflow.cli import main
from flair_mlflow.config import OptimizationValue
from flair_mlflow.search.loop import score_name, trial_line
from flair_mlflow.search.outcome import TrialOutcome, TrialState
from flair_mlflow.tracking.store import say_where
from flair_mlflow.tracking.writer import RunWriter

from .conftest import ROOT, WNUT_TINY

#: what Flair, hyperopt and torch print when nothing holds them back
NOISE = ("GradScaler", "build_posterior_wrapper", "TPE using", "Computing label dictionary", "it/s]", "Epoch ")


@pytest.mark.slow
def test_a_search_prints_a_line_per_trial_and_a_summary_with_next_steps(tmp_path: Path, write_config):
    """The command as a user runs it, in its own process: everything it prints, counted."""
    config = write_config(WNUT_TINY, max_evals=1)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    command = [sys.executable, "-m", "flair_mlflow.cli", "tune", str(config), "--max-epochs", "1"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    # the lines a terminal keeps: a progress bar redraws its own line with carriage returns
    printed = [line.split("\r")[-1] for line in (done.stdout + done.stderr).split("\n") if line.strip()]

    (search,) = mlflow.MlflowClient(store).search_runs(
        [mlflow.MlflowClient(store).get_experiment_by_name("test").experiment_id],
        filter_string="tags.`flair_mlflow.search` = 'true'",
    )
    parameters = 6  # searched and fixed: embeddings, hidden_size, dropout, learning_rate, mini_batch_size, use_crf
    # per trial its line; the summary; one warning (the tiny search learns nothing), one to spare
    budget = 1 + (2 + parameters + 3) + 1 + 1
    assert len(printed) <= budget, "\n".join(printed)
    assert not [line for line in printed if any(noise in line for noise in NOISE)], "\n".join(printed)
    assert any(line.startswith("trial 1/1: dev micro-F1 ") for line in printed)
    run_id = search.info.run_id
    assert f"best trial 1 (run {search.data.tags['best_trial_run_id']}): dev micro-F1 " in done.stdout
    assert f"mlflow ui --backend-store-uri {store}" in done.stdout
    assert f"flair-mlflow register {run_id} --name test" in done.stdout


def test_the_summary_and_trial_lines_name_the_metric():
    assert score_name(OptimizationValue.DEV_SCORE, ("micro avg", "f1-score")) == "dev micro-F1"
    assert score_name(OptimizationValue.DEV_SCORE, ("macro avg", "f1-score")) == "dev macro-F1"
    assert score_name(OptimizationValue.DEV_SCORE, ("micro avg", "accuracy")) == "dev accuracy"
    assert score_name(OptimizationValue.DEV_LOSS, ("micro avg", "f1-score")) == "dev loss"
    best = TrialOutcome(number=1, params={"dropout": 0.1}, final_score=0.25)
    second = TrialOutcome(number=2, params={"dropout": 0.123456, "embeddings": "glove"}, final_score=0.2, duration_s=7)
    line = trial_line(second, best, "dev micro-F1", ["dropout", "embeddings"], 4)
    assert line == "trial 2/4: dev micro-F1 0.2000 (best 0.2500, trial 1), 7s  dropout=0.1235, embeddings=glove"
    failed = TrialOutcome(number=3, params={}, status=TrialState.FAILED, error="ValueError: bad\nthing")
    assert trial_line(failed, best, "dev loss", [], 4) == "trial 3/4: failed (ValueError: bad thing)"


def test_a_run_made_in_another_experiment_says_so_in_one_line(tracking_uri, caplog):
    writer = RunWriter(tracking_uri)
    with caplog.at_level(logging.WARNING, logger="flair_mlflow"):
        say_where(writer, "0", "wnut17-ner")
        say_where(writer, "0", "Default")
        say_where(writer, "0", None)
    (record,) = [r for r in caplog.records if r.name == "flair_mlflow"]
    assert "'Default'" in record.getMessage() and "--experiment-name wnut17-ner" in record.getMessage()


@pytest.mark.slow
def test_lr_find_prints_where_its_files_are(tmp_path: Path, flair_cache, tracking_uri, write_config):
    config = write_config(WNUT_TINY)
    out = tmp_path / "out"
    arguments = ["lr-find", str(config), "--iterations", "8", "--mini-batch-size", "8", "--output", str(out)]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    (files_line,) = [line for line in result.stdout.splitlines() if line.startswith("files: ")]
    artifact_uri = files_line.split(" in the run's artefacts, ")[1]
    names = {"learning_rate.tsv", "learning_rate.png", "learning_rate_suggestion.json"}
    assert names <= {p.name for p in Path(artifact_uri.removeprefix("file://")).iterdir()}
    assert f"  and in {out}" in result.stdout and names <= {p.name for p in out.iterdir()}
    assert "flair-mlflow-lr-" not in result.output  # no path inside a folder that is gone


def test_readme_command_files_the_main_search_in_the_examples_experiment():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "mlflow run . --env-manager local --experiment-name wnut17-ner" in readme
