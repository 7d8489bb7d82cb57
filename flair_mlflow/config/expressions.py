"""Search-space expressions (``{choice: [32, 64]}``, ``{uniform: {low: 0.0, high: 0.5}}``) checked without hyperopt:
options and a range's ends must be values the parameter takes; hyperopt's meaning is kept (log bounds are logs)."""

from __future__ import annotations

import math
import sys
from typing import Any, Mapping

from ..errors import ConfigError
from .parameters import PARAMETERS, checked_value, coerce_value

#: each expression's arguments, in hyperopt's order and with its names
EXPRESSIONS: dict[str, tuple[str, ...]] = {
    "choice": ("options",),
    "pchoice": ("p_options",),
    "uniform": ("low", "high"),
    "quniform": ("low", "high", "q"),
    "loguniform": ("low", "high"),
    "qloguniform": ("low", "high", "q"),
    "normal": ("mu", "sigma"),
    "qnormal": ("mu", "sigma", "q"),
    "lognormal": ("mu", "sigma"),
    "qlognormal": ("mu", "sigma", "q"),
    "randint": ("low", "high"),
    "uniformint": ("low", "high"),
}
LOG_SCALE = ("loguniform", "qloguniform", "lognormal", "qlognormal")  # arguments are logs of the values drawn


def checked_expression(name: str, spec: Any) -> dict[str, dict[str, Any]]:
    """``spec`` as ``{kind: {argument: value}}``; a ConfigError on ``search_space.<name>`` if no trial could use it."""
    field = f"search_space.{name}"
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ConfigError(field, f"must be one hyperopt expression such as {{uniform: [0.0, 0.5]}}, not {spec!r}")
    kind, arguments = next(iter(spec.items()))
    if kind not in EXPRESSIONS:
        raise ConfigError(field, f"unknown expression '{kind}'; use one of {', '.join(EXPRESSIONS)}")
    named = _named(kind, arguments, field)
    if kind == "choice":
        return {kind: {"options": [_option(name, option, field) for option in _listed(kind, named, field)]}}
    if kind == "pchoice":
        pairs = [_weighted(name, pair, field) for pair in _listed(kind, named, field)]
        if abs(sum(p for p, _ in pairs) - 1.0) > 1e-6:
            raise ConfigError(field, "pchoice probabilities must add up to 1")
        return {kind: {"p_options": pairs}}
    info = PARAMETERS.get(name)
    if info is not None and not info.numeric and not (info.kind == "flag" and kind in ("randint", "uniformint")):
        raise ConfigError(field, f"{kind} draws numbers, which {name} does not take; list its values with choice")
    for argument, value in named.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(field, f"{kind}: {argument} must be a finite number, not {value!r}")
    _check_range(name, kind, named, field)
    return {kind: named}


def _named(kind: str, arguments: Any, field: str) -> dict[str, Any]:
    """An expression's arguments by hyperopt's names, from a list or a mapping (``randint`` also takes ``upper``)."""
    names = EXPRESSIONS[kind]
    if kind == "randint" and not isinstance(arguments, Mapping):
        arguments = list(arguments) if isinstance(arguments, (list, tuple)) else [arguments]
        arguments = [0, *arguments] if len(arguments) == 1 else arguments
    if kind == "randint" and isinstance(arguments, Mapping) and "low" not in arguments:
        arguments = {"low": 0, **{("high" if k == "upper" else k): v for k, v in arguments.items()}}
    if len(names) == 1 and isinstance(arguments, (list, tuple)):
        arguments = {names[0]: arguments}
    if isinstance(arguments, (list, tuple)):
        if len(arguments) != len(names):
            raise ConfigError(field, f"{kind} takes {len(names)} values: {', '.join(names)}")
        arguments = dict(zip(names, arguments))
    if not isinstance(arguments, Mapping):
        raise ConfigError(field, f"{kind} takes {', '.join(names)}")
    unknown, missing = sorted(map(str, set(arguments) - set(names))), [n for n in names if n not in arguments]
    if unknown:
        raise ConfigError(field, f"{kind} takes {', '.join(names)}, not {', '.join(unknown)}")
    if missing:
        raise ConfigError(field, f"{kind} needs {', '.join(missing)}")
    return {n: arguments[n] for n in names}


def _listed(kind: str, named: dict[str, Any], field: str) -> list[Any]:
    listed = named[EXPRESSIONS[kind][0]]
    if not isinstance(listed, (list, tuple)) or not listed:
        raise ConfigError(field, f"{kind} needs a non-empty list of options")
    return list(listed)


def _option(name: str, option: Any, field: str) -> Any:
    if isinstance(option, (dict, list, tuple)) and name not in ("betas", "layers"):
        raise ConfigError(field, f"options must be plain values, not {option!r}")
    return checked_value(name, option, field)


def _weighted(name: str, pair: Any, field: str) -> list[Any]:
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        raise ConfigError(field, "pchoice options are [probability, value] pairs")
    if isinstance(pair[0], bool) or not isinstance(pair[0], (int, float)) or not 0 <= pair[0] <= 1:
        raise ConfigError(field, f"pchoice probabilities must be between 0 and 1, not {pair[0]!r}")
    return [pair[0], _option(name, pair[1], field)]


def _check_range(name: str, kind: str, named: dict[str, Any], field: str) -> None:
    if kind in ("randint", "uniformint"):
        for argument in ("low", "high"):
            if not float(named[argument]).is_integer():
                raise ConfigError(field, f"{kind}: {argument} must be a whole number, not {named[argument]}")
            named[argument] = int(named[argument])
    if "low" in named and named["low"] >= named["high"]:
        raise ConfigError(field, f"{kind}: low ({named['low']}) must be below high ({named['high']})")
    for argument in ("sigma", "q"):
        if named.get(argument, 1) <= 0:
            raise ConfigError(field, f"{kind}: {argument} must be positive")
    if "low" in named:  # randint's high is exclusive
        ends = [("low", named["low"]), ("high", named["high"] - (kind == "randint"))]
    else:
        ends = [("its centre", named["mu"])]
    for label, end in ends:
        if kind in LOG_SCALE and end > math.log(sys.float_info.max):
            overflow = f"exp({end:g}) is not a number; its bounds are natural logs (for 1e-4 to 0.1 write [-9.2, -2.3])"
            raise ConfigError(field, f"{kind}: {label} ({end:g}) overflows: {overflow}")
        try:
            checked_value(name, coerce_value(name, drawn(kind, named, end), field), field)
        except ConfigError as error:
            raise ConfigError(field, f"{kind}: {label} ({end:g}) draws {error.problem}") from None


def drawn(kind: str, named: Mapping[str, Any], value: float) -> float:
    """A number on an expression's own scale as the parameter receives it: exp for a log scale, rounded to q."""
    value = math.exp(value) if kind in LOG_SCALE else value
    return round(value / named["q"]) * named["q"] if "q" in named else value


def options_of(spec: Mapping[str, Any]) -> list[Any] | None:
    """The values a checked ``choice`` or ``pchoice`` lists; None for a range."""
    kind, named = next(iter(spec.items()))
    if kind == "pchoice":
        return [v for _, v in named["p_options"]]
    return list(named["options"]) if kind == "choice" else None


def representative_value(name: str, spec: Mapping[str, Any]) -> Any:
    """The first choice (pchoice: the likeliest), else the middle of the range (of its logs), rounded to ``q``."""
    kind, named = next(iter(spec.items()))
    if kind in ("choice", "pchoice"):
        return named["options"][0] if kind == "choice" else max(named["p_options"], key=lambda pair: pair[0])[1]
    middle = (named["low"] + named["high"]) / 2 if "low" in named else named["mu"]
    return coerce_value(name, drawn(kind, named, middle))
