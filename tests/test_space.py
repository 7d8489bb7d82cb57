"""Every hyperopt expression written in an experiment file samples real values of the right type."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hyperopt import hp
from hyperopt.pyll import stochastic

from flair_mlflow import ConfigError, Parameter, SearchSpace
from flair_mlflow.config.expressions import EXPRESSIONS, checked_expression
from flair_mlflow.config.parameters import coerce_value
from flair_mlflow.search.space import hyperopt_space

SPECS = {
    "choice": ("hidden_size", {"choice": [16, 32]}, lambda v: v in (16, 32) and isinstance(v, int)),
    "pchoice": ("optimizer", {"pchoice": [[0.3, "sgd"], [0.7, "adam"]]}, lambda v: v in ("sgd", "adam")),
    "uniform": ("dropout", {"uniform": {"low": 0.1, "high": 0.2}}, lambda v: 0.1 <= v <= 0.2),
    "quniform": ("hidden_size", {"quniform": [16, 64, 16]}, lambda v: isinstance(v, int) and v % 16 == 0),
    "loguniform": ("learning_rate", {"loguniform": [-4.6, -0.7]}, lambda v: 0.01 <= v <= 0.5),
    "qloguniform": ("mini_batch_size", {"qloguniform": [2.0, 4.0, 4]}, lambda v: isinstance(v, int) and v % 4 == 0),
    "normal": ("weight_decay", {"normal": {"mu": 0.0, "sigma": 0.001}}, lambda v: isinstance(v, float)),
    "qnormal": ("rnn_layers", {"qnormal": [2, 0.5, 1]}, lambda v: isinstance(v, int)),
    "lognormal": ("eps", {"lognormal": [-18, 1]}, lambda v: v > 0),
    "qlognormal": ("patience", {"qlognormal": [1.0, 0.3, 1]}, lambda v: isinstance(v, int) and v >= 0),
    "randint": ("rnn_layers", {"randint": [1, 4]}, lambda v: v in (1, 2, 3)),
    "uniformint": ("hidden_size", {"uniformint": {"low": 8, "high": 12}}, lambda v: 8 <= v <= 12),
}
assert set(SPECS) == set(EXPRESSIONS)


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_every_expression_samples_real_values(kind):
    name, spec, check = SPECS[kind]
    expression = hyperopt_space({name: checked_expression(name, spec)})[name]
    rng = np.random.default_rng(0)
    for _ in range(20):
        value = coerce_value(name, stochastic.sample(expression, rng=rng))
        assert check(value), (kind, value)


def test_booleans_and_betas_are_coerced():
    assert coerce_value("use_crf", 1) is True
    assert coerce_value("betas", [0.9, 0.99]) == (0.9, 0.99)
    assert coerce_value("layers", [-1, -2]) == "-1,-2"
    assert math.isclose(coerce_value("learning_rate", "0.1"), 0.1)


def test_tutorial_search_space_api():
    space = SearchSpace()
    space.add(Parameter.HIDDEN_SIZE, hp.choice, options=[32, 64, 128])
    space.add(Parameter.DROPOUT, hp.uniform, low=0.0, high=0.5)
    sample = stochastic.sample(space.get_search_space(), rng=np.random.default_rng(1))
    assert set(sample) == {"hidden_size", "dropout"}
    assert sample["hidden_size"] in (32, 64, 128)


def test_a_python_space_keeps_what_the_user_added():
    space = (
        SearchSpace().add(Parameter.DROPOUT, hp.uniform, low=0.0, high=0.5).add("hidden_size", hp.choice, options=[8])
    )
    assert space.entries == {
        "dropout": {"uniform": {"low": 0.0, "high": 0.5}},
        "hidden_size": {"choice": {"options": [8]}},
    }
    with pytest.raises(ConfigError, match="not one of hyperopt's hp functions"):
        SearchSpace().add(Parameter.DROPOUT, lambda label, low, high: None, low=0.0, high=0.5)
