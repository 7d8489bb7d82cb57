"""The search space: hyperopt expressions from the experiment file, and the tutorial's builder.

A space is written either in Python with hyperopt's ``hp`` functions (the API of Flair's old
tuning tutorial, :class:`SearchSpace`) or in the experiment file as a mapping from parameter
name to one hyperopt expression (``{"uniform": {"low": 0.0, "high": 0.5}}``). Both become the
same thing: a flat ``dict`` of hyperopt expressions, so every trial carries the same set of
parameter names and MLflow's parallel-coordinates chart can compare them.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Callable, Mapping

from hyperopt import hp
from hyperopt.pyll import Apply

from .coerce import as_bool
from .errors import ConfigError
from .parameters import PARAMETERS, Parameter, check_parameter_name, checked_value, coerce_value, value_problem

#: Each hyperopt expression with its arguments in hyperopt's own order and names.
EXPRESSIONS: dict[str, tuple[Callable[..., Apply], tuple[str, ...]]] = {
    "choice": (hp.choice, ("options",)),
    "pchoice": (hp.pchoice, ("p_options",)),
    "uniform": (hp.uniform, ("low", "high")),
    "quniform": (hp.quniform, ("low", "high", "q")),
    "loguniform": (hp.loguniform, ("low", "high")),
    "qloguniform": (hp.qloguniform, ("low", "high", "q")),
    "normal": (hp.normal, ("mu", "sigma")),
    "qnormal": (hp.qnormal, ("mu", "sigma", "q")),
    "lognormal": (hp.lognormal, ("mu", "sigma")),
    "qlognormal": (hp.qlognormal, ("mu", "sigma", "q")),
    "randint": (hp.randint, ("low", "high")),
    "uniformint": (hp.uniformint, ("low", "high")),
}


def _number(field: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(field, f"'{name}' must be a finite number, not {value!r}")
    return value


def expression_from_spec(name: str, spec: Any, field: str | None = None) -> Apply:
    """Build one hyperopt expression from its experiment-file form.

    ``{"choice": [32, 64]}``, ``{"uniform": [0.0, 0.5]}`` and ``{"uniform": {"low": 0, "high": 0.5}}``
    are accepted; arguments keep hyperopt's meaning (loguniform's bounds are natural logs). Options
    and the ends of a range must be values the parameter can take (see ``ParameterInfo``).
    """
    field = field or f"search_space.{name}"
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ConfigError(field, f"must be one hyperopt expression such as {{uniform: [0.0, 0.5]}}, not {spec!r}")
    kind, arguments = next(iter(spec.items()))
    if kind not in EXPRESSIONS:
        raise ConfigError(field, f"unknown expression '{kind}'; use one of {', '.join(EXPRESSIONS)}")
    if kind in ("choice", "pchoice"):
        return _choice_expression(name, kind, arguments, field)
    _check_drawn_kind(name, kind, field)
    function, argument_names = EXPRESSIONS[kind]
    values = _argument_values(kind, arguments, argument_names, field)
    values = [_number(field, a, v) for a, v in zip(argument_names, values)]
    named = dict(zip(argument_names, values))
    if kind in ("randint", "uniformint"):
        for argument in ("low", "high"):
            if not float(named[argument]).is_integer():
                raise ConfigError(field, f"{kind}: {argument} must be a whole number, not {named[argument]}")
        values = [int(v) for v in values]
    if "low" in named and named["low"] >= named["high"]:
        raise ConfigError(field, f"{kind}: low ({named['low']}) must be below high ({named['high']})")
    if "sigma" in named and named["sigma"] <= 0:
        raise ConfigError(field, f"{kind}: sigma must be positive")
    if "q" in named and named["q"] <= 0:
        raise ConfigError(field, f"{kind}: q must be positive")
    _check_draws(name, kind, named, field)
    return function(name, *values)


def _listed(kind: str, arguments: Any) -> Any:
    """What a ``choice`` or ``pchoice`` lists, from its list or its mapping (``options``, ``p_options``)."""
    return arguments.get(EXPRESSIONS[kind][1][0]) if isinstance(arguments, Mapping) else arguments


def _choice_expression(name: str, kind: str, arguments: Any, field: str) -> Apply:
    function = EXPRESSIONS[kind][0]
    options = _listed(kind, arguments)
    if not isinstance(options, list) or not options:
        raise ConfigError(field, f"{kind} needs a non-empty list of options")
    if kind == "choice":
        return function(name, [_coerce_option(name, option, field) for option in options])
    pairs = []
    for pair in options:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ConfigError(field, "pchoice options are [probability, value] pairs")
        probability = _number(field, "probability", pair[0])
        if not 0 <= probability <= 1:
            raise ConfigError(field, f"pchoice probabilities must be between 0 and 1, not {probability}")
        pairs.append((probability, _coerce_option(name, pair[1], field)))
    if abs(sum(p for p, _ in pairs) - 1.0) > 1e-6:
        raise ConfigError(field, "pchoice probabilities must add up to 1")
    return function(name, pairs)


def _check_drawn_kind(name: str, kind: str, field: str) -> None:
    """Range expressions draw numbers: for a flag only whole ones (randint, uniformint), for a name none."""
    info = PARAMETERS.get(name)
    if info is None or info.numeric or (info.coerce is as_bool and kind in ("randint", "uniformint")):
        return
    raise ConfigError(field, f"{kind} draws numbers, which {name} does not take; list its values with choice")


#: expressions whose arguments are natural logs of the values drawn
LOG_SCALE = ("loguniform", "qloguniform", "lognormal", "qlognormal")
#: the largest x whose exp(x) is a finite float
_MAX_LOG = math.log(sys.float_info.max)


def _drawn_ends(kind: str, named: Mapping[str, float], field: str) -> list[tuple[str, float]]:
    """The values an expression draws at the ends of its range (or at its centre, if unbounded),
    each labelled with the argument it comes from, as the parameter would receive them."""
    ends = [("low", named["low"]), ("high", named["high"])] if "low" in named else [("mu", named["mu"])]
    if kind == "randint":  # its high is exclusive
        ends = [("low", named["low"]), ("high", named["high"] - 1)]
    for label, value in ends:
        if kind in LOG_SCALE and value > _MAX_LOG:
            raise ConfigError(
                field,
                f"{kind}: {label} ({value:g}) overflows: exp({value:g}) is not a number; {kind}'s bounds are "
                "natural logs (for 1e-4 to 0.1 write [-9.2, -2.3])",
            )
    return [(label, _as_drawn(kind, named, value)) for label, value in ends]


def _as_drawn(kind: str, named: Mapping[str, float], value: float) -> float:
    """A number on a range expression's own scale as the parameter receives it: exp of it for a
    log-scale expression, rounded to its ``q``."""
    if kind in LOG_SCALE:
        value = math.exp(value)
    if "q" in named:
        value = round(value / named["q"]) * named["q"]
    return value


def _check_draws(name: str, kind: str, named: Mapping[str, float], field: str) -> None:
    """Refuse a range whose ends (or, unbounded, whose centre) the parameter cannot take."""
    for label, drawn in _drawn_ends(kind, named, field):
        value = coerce_value(name, drawn, field)
        problem = value_problem(name, value)
        if problem is not None:
            where = "its centre" if label == "mu" else label
            raise ConfigError(field, f"{kind}: {where} ({named[label]:g}) draws {name} = {value:g}; {name} {problem}")


def _argument_values(kind: str, arguments: Any, argument_names: tuple[str, ...], field: str) -> list[Any]:
    """An expression's arguments in hyperopt's order, from a list or a mapping of its names."""
    if kind == "randint" and not isinstance(arguments, Mapping):
        # hp.randint(label, upper) or hp.randint(label, low, high)
        arguments = list(arguments) if isinstance(arguments, (list, tuple)) else [arguments]
        if len(arguments) == 1:
            arguments = [0, arguments[0]]
    if isinstance(arguments, Mapping):
        unknown = set(arguments) - set(argument_names)
        if unknown:
            raise ConfigError(field, f"{kind} takes {', '.join(argument_names)}, not {', '.join(sorted(unknown))}")
        missing = [a for a in argument_names if a not in arguments]
        if kind == "randint" and missing == ["low"]:
            arguments = {"low": 0, **arguments}
            missing = []
        if missing:
            raise ConfigError(field, f"{kind} needs {', '.join(missing)}")
        return [arguments[a] for a in argument_names]
    if isinstance(arguments, (list, tuple)):
        if len(arguments) != len(argument_names):
            raise ConfigError(field, f"{kind} takes {len(argument_names)} values: {', '.join(argument_names)}")
        return list(arguments)
    raise ConfigError(field, f"{kind} takes {', '.join(argument_names)}")


def _coerce_option(name: str, option: Any, field: str) -> Any:
    if isinstance(option, (dict, list)) and name not in ("betas", "layers"):
        raise ConfigError(field, f"options must be plain values, not {option!r}")
    if isinstance(option, list):
        option = tuple(option)
    return checked_value(name, option, field)


class SearchSpace:
    """The tutorial's search-space builder: ``space.add(Parameter.DROPOUT, hp.uniform, low=0, high=0.5)``."""

    def __init__(self) -> None:
        self.search_space: dict[str, Apply] = {}

    def add(self, parameter: Parameter | str, func: Callable[..., Apply], **kwargs: Any) -> "SearchSpace":
        name = parameter.value if isinstance(parameter, Parameter) else str(parameter)
        if name not in PARAMETERS:
            raise ConfigError(f"search_space.{name}", f"unknown parameter '{name}'")
        self.search_space[name] = func(name, **kwargs)
        return self

    @classmethod
    def from_config(cls, spec: Mapping[str, Any], task: str) -> "SearchSpace":
        space = cls()
        for name, expression in spec.items():
            check_parameter_name(name, task, f"search_space.{name}")
            space.search_space[name] = expression_from_spec(name, expression)
        return space

    def get_search_space(self) -> dict[str, Apply]:
        return dict(self.search_space)

    def __len__(self) -> int:
        return len(self.search_space)


def spec_options(spec: Any) -> list[Any] | None:
    """The values a ``choice`` or ``pchoice`` lists, as written; None for a range expression."""
    kind, arguments = next(iter(spec.items()))
    if kind not in ("choice", "pchoice"):
        return None
    options = _listed(kind, arguments)
    return [pair[1] for pair in options] if kind == "pchoice" else list(options)


def representative_value(name: str, spec: Any) -> Any:
    """One value of a searched parameter: the first choice (pchoice: the likeliest), the middle of a
    range (of its logs, for a log-scale one), rounded to its ``q``."""
    kind, arguments = next(iter(spec.items()))
    if kind == "pchoice":
        return coerce_value(name, max(_listed(kind, arguments), key=lambda pair: pair[0])[1])
    if kind == "choice":
        return coerce_value(name, spec_options(spec)[0])
    argument_names = EXPRESSIONS[kind][1]
    named = dict(zip(argument_names, _argument_values(kind, arguments, argument_names, f"search_space.{name}")))
    middle = (named["low"] + named["high"]) / 2 if "low" in named else named["mu"]
    return coerce_value(name, _as_drawn(kind, named, middle))


def representative_params(search_space: Mapping[str, Any], fixed: Mapping[str, Any]) -> dict[str, Any]:
    """One whole configuration of a search, for what must hold before any trial runs (its set-up is
    checked up front; the range test trains it): the fixed values, a representative of the rest."""
    params = {name: representative_value(name, spec) for name, spec in search_space.items()}
    params.update(fixed)
    return params
