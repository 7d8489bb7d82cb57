"""Every type coercion in one place: settings of the experiment file, and parameter values.

Settings (``max_evals: "20"`` from the command line) are converted strictly, with a
:class:`ConfigError` naming the setting. Parameter values are converted to the type the model
takes (hyperopt's ``quniform`` gives ``64.0`` where Flair wants ``64``); their converters raise
``TypeError``/``ValueError``, which :func:`~flair_mlflow.core.parameters.coerce_value` names.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import ConfigError


def setting(name: str, value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ConfigError(name, f"must be true or false, not {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise ConfigError(name, f"must be an integer, not {value!r}")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        if isinstance(value, int):
            return value
        raise ConfigError(name, f"must be an integer, not {value!r}")
    if kind is float:
        if isinstance(value, bool):
            raise ConfigError(name, f"must be a number, not {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(name, f"must be a number, not {value!r}") from None
    return value


def positive_int(name: str, value: Any) -> int:
    value = setting(name, value, int)
    if value < 1:
        raise ConfigError(name, f"must be at least 1, not {value}")
    return value


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.lower() in ("true", "yes", "1")
    raise TypeError(f"expected true or false, not {value!r}")


def as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(f"expected an integer, not {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"expected an integer, not {value!r}")
        return int(round(value))
    return int(value)


def as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError(f"expected a number, not {value!r}")
    return float(value)


def as_betas(value: Any) -> tuple[float, float]:
    if isinstance(value, str):
        value = [v for v in value.replace("(", "").replace(")", "").split(",") if v.strip()]
    betas = tuple(float(v) for v in value)
    if len(betas) != 2:
        raise TypeError(f"expected two numbers, not {value!r}")
    return betas  # type: ignore[return-value]


def as_layers(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(int(v)) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and (value.strip() == "all" or _integers(value)):
        return value.strip()
    raise TypeError(f"expected 'all' or layer indices such as '-1,-2', not {value!r}")


def _integers(text: str) -> bool:
    try:
        return all(int(part) is not None for part in text.split(","))
    except ValueError:
        return False


def as_identity(value: Any) -> Any:
    return value
