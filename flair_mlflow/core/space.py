"""The search space: hyperopt expressions from the experiment file, and the tutorial's builder.

A space is written either in Python with hyperopt's ``hp`` functions (the API of Flair's old
tuning tutorial, :class:`SearchSpace`) or in the experiment file as a mapping from parameter
name to one hyperopt expression (``{"uniform": {"low": 0.0, "high": 0.5}}``). Both become the
same thing: a flat ``dict`` of hyperopt expressions, so every trial carries the same set of
parameter names and MLflow's parallel-coordinates chart can compare them.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

from hyperopt import hp
from hyperopt.pyll import Apply

from .errors import ConfigError
from .parameters import PARAMETERS, Parameter, check_parameter_name, coerce_value

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
    are accepted; arguments keep hyperopt's meaning (loguniform's bounds are natural logs).
    """
    field = field or f"search_space.{name}"
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ConfigError(field, f"must be one hyperopt expression such as {{uniform: [0.0, 0.5]}}, not {spec!r}")
    kind, arguments = next(iter(spec.items()))
    if kind not in EXPRESSIONS:
        raise ConfigError(field, f"unknown expression '{kind}'; use one of {', '.join(EXPRESSIONS)}")
    function, argument_names = EXPRESSIONS[kind]

    if kind in ("choice", "pchoice"):
        options = arguments.get(argument_names[0]) if isinstance(arguments, Mapping) else arguments
        if not isinstance(options, list) or not options:
            raise ConfigError(field, f"{kind} needs a non-empty list of options")
        if kind == "pchoice":
            pairs = []
            for pair in options:
                if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                    raise ConfigError(field, "pchoice options are [probability, value] pairs")
                pairs.append((_number(field, "probability", pair[0]), _coerce_option(name, pair[1], field)))
            if abs(sum(p for p, _ in pairs) - 1.0) > 1e-6:
                raise ConfigError(field, "pchoice probabilities must add up to 1")
            return function(name, pairs)
        return function(name, [_coerce_option(name, option, field) for option in options])

    values = _argument_values(kind, arguments, argument_names, field)
    values = [_number(field, a, v) for a, v in zip(argument_names, values)]
    named = dict(zip(argument_names, values))
    if "low" in named and named["low"] >= named["high"]:
        raise ConfigError(field, f"{kind}: low ({named['low']}) must be below high ({named['high']})")
    if "sigma" in named and named["sigma"] <= 0:
        raise ConfigError(field, f"{kind}: sigma must be positive")
    if "q" in named and named["q"] <= 0:
        raise ConfigError(field, f"{kind}: q must be positive")
    if kind in ("randint", "uniformint"):
        values = [int(v) for v in values]
    return function(name, *values)


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
    return coerce_value(name, option, field)


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


def representative_value(name: str, spec: Any) -> Any:
    """One value of a searched parameter for the range test's model: first choice, middle of a range."""
    kind, arguments = next(iter(spec.items()))
    if kind == "choice":
        options = arguments.get("options") if isinstance(arguments, Mapping) else arguments
        return coerce_value(name, options[0])
    if kind == "pchoice":
        options = arguments.get("p_options") if isinstance(arguments, Mapping) else arguments
        return coerce_value(name, max(options, key=lambda pair: pair[0])[1])
    values = list(arguments.values()) if isinstance(arguments, Mapping) else list(arguments)
    if kind in ("uniform", "quniform", "randint", "uniformint"):
        middle = (values[0] + values[1]) / 2 if len(values) > 1 else values[0] / 2
    elif kind in ("loguniform", "qloguniform"):
        middle = math.exp((values[0] + values[1]) / 2)
    elif kind in ("normal", "qnormal"):
        middle = values[0]
    else:  # lognormal, qlognormal
        middle = math.exp(values[0])
    return coerce_value(name, middle)
