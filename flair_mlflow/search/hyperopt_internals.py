"""hyperopt beyond ``fmin`` and ``Trials``, in one module so tests/test_hyperopt_internals.py catches each change."""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping

import hyperopt
import numpy as np
from hyperopt.base import JOB_STATE_DONE
from hyperopt.pyll import scope
from hyperopt.utils import coarse_utcnow

TRIAL_KEY = "flair_mlflow.trial"


def keyed_space(space: Mapping[str, Any]) -> dict[str, Any]:
    """``space`` plus :data:`TRIAL_KEY`: hyperopt does not tell an objective its trial, so the space carries it."""
    return {**space, TRIAL_KEY: scope.hyperopt_param(TRIAL_KEY, scope.randint(1))}


def keyed_suggest(suggest: Callable, space: Mapping[str, Any]) -> Callable:
    """``suggest`` over ``space`` alone (sampling as it would without the key), each new trial keyed by id and point."""
    plain = hyperopt.Domain(lambda point: 0.0, dict(space))

    def keyed(new_ids: list[int], domain: Any, trials: Any, seed: int) -> list[dict[str, Any]]:
        docs = suggest(new_ids, plain, trials, seed)
        for doc in docs:
            _add_key(doc["misc"])
        return docs

    return keyed


def _add_key(misc: dict[str, Any]) -> None:
    point = {label: values for label, values in misc["vals"].items() if label != TRIAL_KEY}
    misc["vals"][TRIAL_KEY] = [{"tid": int(misc["tid"]), "vals": json.loads(vals_json(point))}]
    misc["idxs"][TRIAL_KEY] = [misc["tid"]]


def split_key(sampled: Mapping[str, Any]) -> tuple[int, dict[str, list], dict[str, Any]]:
    """A keyed point as the objective gets it → (trial id, hyperopt's ``misc.vals``, the parameters)."""
    key = sampled[TRIAL_KEY]
    return int(key["tid"]), key["vals"], {name: value for name, value in sampled.items() if name != TRIAL_KEY}


def sampled_point(space: Mapping[str, Any], vals: Mapping[str, list]) -> dict[str, Any]:
    """The parameters hyperopt's record of a point (``misc.vals``) stands for in ``space``."""
    return hyperopt.space_eval(dict(space), {label: values[0] for label, values in vals.items() if values})


def vals_json(vals: Mapping[str, Any]) -> str:
    """hyperopt's ``misc.vals`` of one trial as JSON (numpy numbers made plain; floats round-trip exactly)."""
    plain = {label: [v.item() if isinstance(v, np.generic) else v for v in values] for label, values in vals.items()}
    return json.dumps(plain, sort_keys=True)


def restored_trials(space: Mapping[str, Any], done: list[tuple[int, Mapping[str, list], dict[str, Any]]]):
    """hyperopt's ``Trials`` holding ``(tid, misc.vals, result)`` as if it ran them; new ids follow the highest."""
    trials = hyperopt.Trials()
    if not done:
        return trials
    labels = list(hyperopt.Domain(lambda point: 0.0, dict(space)).params)
    trials.new_trial_ids(max(tid for tid, _, _ in done) + 1)
    miscs = []
    for tid, vals, _ in done:
        full = {label: list(vals.get(label, [])) for label in labels}
        idxs = {k: [tid] if v else [] for k, v in full.items()}
        misc = {"tid": tid, "cmd": None, "workdir": None, "idxs": idxs, "vals": full}
        _add_key(misc)
        miscs.append(misc)
    docs = trials.new_trial_docs([tid for tid, _, _ in done], [None] * len(done), [r for _, _, r in done], miscs)
    now = coarse_utcnow()
    for doc in docs:
        doc.update(state=JOB_STATE_DONE, book_time=now, refresh_time=now)
    trials.insert_trial_docs(docs)
    trials.refresh()
    return trials


def continued_rng(seed: int | None, done: int) -> np.random.Generator | None:
    """The seeded generator as ``fmin`` leaves it after ``done`` trials (one draw each): a resume replays no draw."""
    if seed is None:
        return None
    rng = np.random.default_rng(seed)
    for _ in range(done):
        rng.integers(2**31 - 1)
    return rng
