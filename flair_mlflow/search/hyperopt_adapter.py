"""Everything this package knows about hyperopt beyond ``fmin`` and ``Trials``: one place to fix when it changes.

Public interfaces where hyperopt has them: a suggest function wrapped as hyperopt's own ``partial``
wraps one, ``hyperopt.Domain``, ``Trials.new_trial_ids``/``new_trial_docs``/``insert_trial_docs``.
Where it has none, the private knowledge is here, each piece checked by ``tests/test_hyperopt_adapter.py``:
how many draws ``fmin`` takes from ``rstate`` per trial, the ``_dynamic_trials`` list that still holds
cancelled and failed trials, the ``misc.error`` pair SparkTrials writes, and the trial-document layout.

hyperopt does not tell an objective which trial it evaluates (SparkTrials passes no ``ctrl``), so the
space carries it: :func:`keyed_space` adds a parameter :data:`TRIAL_KEY` that no algorithm samples,
and :func:`keyed_suggest` fills it with the trial id and hyperopt's record of the point (``misc.vals``).
A trial in any process then knows its number and can tag its run with the point it evaluates.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping

import numpy as np

from ..core.errors import ConfigError
from ..core.parameters import ALGORITHMS

#: the label of the parameter that carries a trial's id and point into the objective
TRIAL_KEY = "flair_mlflow.trial"


def algorithm_suggest(name: str) -> Callable:
    """hyperopt's suggest function for one of :data:`ALGORITHMS` (``tpe``, ``rand``, ``anneal``, ``atpe``)."""
    import hyperopt

    if name == "atpe":
        try:
            from hyperopt import atpe

            return atpe.suggest
        except ImportError:
            raise ConfigError(
                "algorithm", "'atpe' needs lightgbm and scikit-learn: pip install 'flair-mlflow[atpe]'"
            ) from None
    suggest = {"tpe": hyperopt.tpe.suggest, "rand": hyperopt.rand.suggest, "anneal": hyperopt.anneal.suggest}
    if name not in suggest:
        raise ConfigError("algorithm", f"must be one of {', '.join(ALGORITHMS)}, not {name!r}")
    return suggest[name]


# -- the trial's id and point, passed through the space -------------------------------------------
def keyed_space(space: Mapping[str, Any]) -> dict[str, Any]:
    """``space`` plus the :data:`TRIAL_KEY` parameter; give it to ``fmin`` with :func:`keyed_suggest`."""
    from hyperopt.pyll import scope

    return {**space, TRIAL_KEY: scope.hyperopt_param(TRIAL_KEY, scope.randint(1))}


def keyed_suggest(suggest: Callable, space: Mapping[str, Any]) -> Callable:
    """``suggest`` over ``space`` alone, each new trial's :data:`TRIAL_KEY` set to its id and point.

    The algorithm never sees the key, so it samples exactly what it would without it.
    """
    import hyperopt

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
    import hyperopt

    return hyperopt.space_eval(dict(space), {label: values[0] for label, values in vals.items() if values})


def vals_json(vals: Mapping[str, Any]) -> str:
    """hyperopt's ``misc.vals`` of one trial as JSON (numpy numbers made plain; floats round-trip exactly)."""

    def plain(value: Any) -> Any:
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if isinstance(value, (int, np.integer)):
            return int(value)
        if isinstance(value, (float, np.floating)):
            return float(value)
        return value

    return json.dumps({label: [plain(v) for v in values] for label, values in vals.items()}, sort_keys=True)


# -- rebuilding a search: finished trials and the random state ----------------------------------
def restored_trials(space: Mapping[str, Any], done: list[tuple[int, Mapping[str, list], dict[str, Any]]]):
    """hyperopt's ``Trials`` holding finished trials ``(tid, misc.vals, result)``, as if it had run them.

    Every id below the highest is reserved, so a new trial's id (and number) follows the last one.
    """
    import hyperopt
    from hyperopt.utils import coarse_utcnow

    trials = hyperopt.Trials()
    if not done:
        return trials
    labels = list(hyperopt.Domain(lambda point: 0.0, dict(space)).params)
    trials.new_trial_ids(max(tid for tid, _, _ in done) + 1)
    miscs = []
    for tid, vals, _ in done:
        full = {label: list(vals.get(label, [])) for label in labels}
        idxs = {label: [tid] if values else [] for label, values in full.items()}
        misc = {"tid": tid, "cmd": None, "workdir": None, "idxs": idxs, "vals": full}
        _add_key(misc)
        miscs.append(misc)
    tids = [tid for tid, _, _ in done]
    docs = trials.new_trial_docs(tids, [None] * len(done), [result for _, _, result in done], miscs)
    now = coarse_utcnow()
    for doc in docs:
        doc.update(state=hyperopt.JOB_STATE_DONE, book_time=now, refresh_time=now)
    trials.insert_trial_docs(docs)
    trials.refresh()
    return trials


def continued_rng(seed: int | None, done: int) -> np.random.Generator | None:
    """The seeded generator as ``fmin`` leaves it after ``done`` trials: it draws one number per trial.

    Without this a resumed search would replay the first trials' random draws.
    """
    if seed is None:
        return None
    rng = np.random.default_rng(seed)
    for _ in range(done):
        rng.integers(2**31 - 1)
    return rng


# -- reading trials back, cancelled and failed ones included --------------------------------------
def every_trial(trials: Any) -> list[dict[str, Any]]:
    """All trial documents in id order; ``Trials.trials`` leaves out the cancelled and failed ones."""
    return sorted(trials._dynamic_trials, key=lambda doc: doc["tid"])


def is_cancelled(doc: Mapping[str, Any]) -> bool:
    """SparkTrials cancelled the trial (an early stop, a time budget, a signal) before it returned."""
    from hyperopt.base import JOB_STATE_CANCEL

    return doc.get("state") == JOB_STATE_CANCEL


def is_lost(doc: Mapping[str, Any]) -> bool:
    """The trial's evaluation itself raised (in SparkTrials: its Spark task failed)."""
    from hyperopt.base import JOB_STATE_ERROR

    return doc.get("state") == JOB_STATE_ERROR


def trial_error(doc: Mapping[str, Any]) -> tuple[str, str]:
    """The failure SparkTrials kept for a trial: the exception's class name, and its traceback or message.

    hyperopt stores ``(str(type(error)), text)``; the class comes back as a bare name (``"<class
    'py4j.protocol.Py4JJavaError'>"`` → ``Py4JJavaError``).
    """
    kind, detail = (list(doc.get("misc", {}).get("error") or ()) + [None, None])[:2]
    name = str(kind or "").removeprefix("<class '").removesuffix("'>").rsplit(".", 1)[-1]
    return name, str(detail or "")


# -- SparkTrials' Spark jobs ----------------------------------------------------------------------
def reusing_workers(session: Any) -> Any:
    """``session`` as SparkTrials should get it, so that one Python worker runs trial after trial.

    SparkTrials runs a trial as ``sparkContext.parallelize([0], 1).mapPartitions(task)``, and its
    ``task`` never reads its partition. PySpark hands a Python worker to the next task only once the
    last one read its input to the end, so every trial started a fresh Python process that imported
    Flair and loaded the corpus and embeddings again (seconds each time). Through this session every
    ``mapPartitions`` function reads its input first; everything else is the session's own.
    """
    context = session.sparkContext

    def parallelize(*args: Any, **kwargs: Any) -> Any:
        rdd = context.parallelize(*args, **kwargs)
        return _Delegate(rdd, mapPartitions=lambda task, *more: rdd.mapPartitions(_reading_input(task), *more))

    return _Delegate(session, sparkContext=_Delegate(context, parallelize=parallelize))


class _Delegate:
    """``inner`` with some attributes replaced."""

    def __init__(self, inner: Any, **replaced: Any) -> None:
        self._inner = inner
        self._replaced = replaced

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_inner", "_replaced"):  # not set yet (a copy being made)
            raise AttributeError(name)
        if name in self._replaced:
            return self._replaced[name]
        return getattr(self._inner, name)


def _reading_input(task: Callable) -> Callable:
    def run(partition: Any) -> Any:
        return task(iter(list(partition)))  # read to the end: the worker can take the next task

    return run


# -- a space built in Python, written back as the experiment file's expressions -------------------
class NotWritable(ValueError):
    """Something of a search started from Python that the experiment file has no form for."""


def written_expression(name: str, expression: Any) -> dict[str, Any]:
    """One ``hp.*`` expression as the experiment file writes it: ``{"uniform": {"low": 0.0, "high": 0.5}}``.

    Walks hyperopt's pyll graph (``switch`` over ``hyperopt_param(randint | categorical)`` for
    ``choice``/``pchoice``, ``float``/``int`` over ``hyperopt_param(<distribution>)`` for the rest).
    Choice options are left as the objects they are, for the caller to name. Raises
    :class:`NotWritable` for a nested expression, a constant, or a label other than ``name``.
    """
    from hyperopt.pyll import Apply

    from ..core.space import EXPRESSIONS

    if not isinstance(expression, Apply):
        raise NotWritable(f"{name}: {expression!r} is not a hyperopt expression")
    node, casts = expression, []
    while node.name in ("float", "int"):
        casts.append(node.name)
        node = node.pos_args[0]
    if node.name == "switch":
        label, distribution = _labelled(name, node.pos_args[0])
        options = [_constant(name, option) for option in node.pos_args[1:]]
        if distribution.name == "categorical":
            probabilities = _constant(name, distribution.arg["p"])
            spec = {"pchoice": {"p_options": [[p, option] for p, option in zip(probabilities, options)]}}
        else:
            spec = {"choice": {"options": options}}
    else:
        label, distribution = _labelled(name, node)
        kind = "uniformint" if distribution.name == "quniform" and casts[:1] == ["int"] else distribution.name
        if kind not in EXPRESSIONS:
            raise NotWritable(f"{name}: hyperopt's {kind} has no experiment-file form")
        arguments = {a: _constant(name, distribution.arg.get(a)) for a in EXPRESSIONS[kind][1]}
        if kind == "randint" and arguments["high"] is None:  # hp.randint(label, upper)
            arguments = {"low": 0, "high": arguments["low"]}
        spec = {kind: arguments}
    if label != name:
        raise NotWritable(f"{name}: the expression is labelled {label!r}; label it {name!r} (SearchSpace.add does)")
    return spec


def _labelled(name: str, node: Any) -> tuple[str, Any]:
    """``hyperopt_param(label, distribution)`` → (label, distribution)."""
    if node.name != "hyperopt_param":
        raise NotWritable(f"{name}: a {node.name} expression has no experiment-file form")
    return node.arg["label"].obj, node.arg["obj"]


def _constant(name: str, node: Any) -> Any:
    """The value of a graph node that samples nothing; None for an argument left out."""
    from hyperopt.pyll import Apply, dfs, rec_eval
    from hyperopt.pyll.base import MissingArgument

    if node is None or node is MissingArgument:
        return None
    if not isinstance(node, Apply):
        return node
    if any(inner.name == "hyperopt_param" for inner in dfs(node)):
        raise NotWritable(f"{name}: nested expressions (a choice among expressions) have no experiment-file form")
    return rec_eval(node)
