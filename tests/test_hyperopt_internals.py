"""The private hyperopt knowledge in ``search/hyperopt_internals.py``, each piece against real hyperopt.

These fail loudly when a hyperopt release changes what the adapter relies on: how many draws fmin
takes from ``rstate`` per trial and the trial-document layout a resumed search (and the driver's
own loop of jobs) is rebuilt from. No Flair, no MLflow: fast.
"""

from __future__ import annotations

import json
from functools import partial

import hyperopt
import numpy as np
from hyperopt import hp

from flair_mlflow.search.hyperopt_internals import (
    TRIAL_KEY,
    continued_rng,
    keyed_space,
    keyed_suggest,
    restored_trials,
    sampled_point,
    split_key,
    vals_json,
)

SPACE = {
    "hidden_size": hp.choice("hidden_size", [16, 32, 64]),
    "dropout": hp.uniform("dropout", 0.0, 0.5),
    "learning_rate": hp.loguniform("learning_rate", -4.6, -0.7),
}
# TPE proper after two trials (hyperopt's default waits 20, sampling at random until then)
TPE = partial(hyperopt.tpe.suggest, n_startup_jobs=2)


def _loss(point: dict) -> float:
    return abs(point["dropout"] - 0.2) + abs(np.log(point["learning_rate"]) + 2.0) + point["hidden_size"] / 100


def _keyed_search(trials: hyperopt.Trials, max_evals: int, rstate, seen: list | None = None) -> hyperopt.Trials:
    """fmin as the search runs it: keyed space and suggest; ``seen`` collects what the objective got."""

    def objective(sampled: dict) -> dict:
        tid, vals, point = split_key(sampled)
        if seen is not None:
            seen.append((tid, vals, point))
        return {"status": "ok", "loss": _loss(point)}

    hyperopt.fmin(
        objective,
        keyed_space(SPACE),
        keyed_suggest(TPE, SPACE),
        max_evals=max_evals,
        trials=trials,
        rstate=rstate,
        show_progressbar=False,
    )
    return trials


def _points(trials: hyperopt.Trials) -> list[dict]:
    return [{k: v for k, v in doc["misc"]["vals"].items() if k != TRIAL_KEY} for doc in trials.trials]


def test_continued_rng_stands_where_fmin_leaves_the_generator():
    rng = np.random.default_rng(42)
    hyperopt.fmin(_loss, SPACE, TPE, max_evals=5, trials=hyperopt.Trials(), rstate=rng, show_progressbar=False)
    assert rng.integers(2**31 - 1) == continued_rng(42, 5).integers(2**31 - 1), (
        "fmin no longer draws one number from rstate per trial: resume.continued_rng must follow it"
    )
    assert continued_rng(None, 3) is None


def test_the_trial_key_brings_id_and_point_without_changing_what_is_sampled():
    seen: list = []
    keyed = _keyed_search(hyperopt.Trials(), 6, np.random.default_rng(7), seen)
    plain = hyperopt.Trials()
    hyperopt.fmin(_loss, SPACE, TPE, max_evals=6, trials=plain, rstate=np.random.default_rng(7), show_progressbar=False)

    assert _points(keyed) == [doc["misc"]["vals"] for doc in plain.trials]
    assert [tid for tid, _, _ in seen] == [doc["tid"] for doc in keyed.trials] == list(range(6))
    assert [vals for _, vals, _ in seen] == [json.loads(vals_json(point)) for point in _points(keyed)]
    assert [point for _, _, point in seen] == [sampled_point(SPACE, vals) for _, vals, _ in seen]
    assert all(set(point) == set(SPACE) for _, _, point in seen)


def test_restored_trials_make_a_resumed_fmin_sample_what_an_uninterrupted_one_does():
    whole = _keyed_search(hyperopt.Trials(), 6, np.random.default_rng(11))

    first = _keyed_search(hyperopt.Trials(), 3, np.random.default_rng(11))
    # what a resume reads back from the tracking store: numbers, the vals tag (JSON) and the loss
    done = [
        (doc["tid"], json.loads(vals_json(point)), doc["result"]) for doc, point in zip(first.trials, _points(first))
    ]
    resumed = _keyed_search(restored_trials(SPACE, done), 6, continued_rng(11, 3))

    assert [doc["tid"] for doc in resumed.trials] == list(range(6))
    assert _points(resumed) == _points(whole)


def test_restored_trials_keep_numbers_with_gaps_and_go_on_after_the_last():
    """A parallel search resumed: trial 2 was killed, so ids 0, 2 and 3 are restored; the next is 4."""
    first = _keyed_search(hyperopt.Trials(), 4, np.random.default_rng(3))
    docs = [first.trials[i] for i in (0, 2, 3)]
    done = [(doc["tid"], _points(first)[doc["tid"]], doc["result"]) for doc in docs]
    seen: list = []
    _keyed_search(restored_trials(SPACE, done), 4, continued_rng(3, 3), seen)
    assert [tid for tid, _, _ in seen] == [4]


def test_vals_travel_as_plain_json_and_name_the_real_values():
    vals = {"hidden_size": [np.int64(2)], "dropout": [np.float64(0.1234567890123)], "learning_rate": [0.01]}
    text = vals_json(vals)
    assert json.loads(text) == {"dropout": [0.1234567890123], "hidden_size": [2], "learning_rate": [0.01]}
    assert sampled_point(SPACE, json.loads(text)) == {
        "hidden_size": 64,
        "dropout": 0.1234567890123,
        "learning_rate": 0.01,
    }
