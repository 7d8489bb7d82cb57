"""The search space: which parameters exist, how they are sampled, and their real values.

A space is written either in Python with hyperopt's ``hp`` functions (the API of Flair's old
tuning tutorial, :class:`SearchSpace`) or in the experiment file as a mapping from parameter
name to one hyperopt expression (``{"uniform": {"low": 0.0, "high": 0.5}}``). Both become the
same thing: a flat ``dict`` of hyperopt expressions, so every trial carries the same set of
parameter names and MLflow's parallel-coordinates chart can compare them.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from hyperopt import hp
from hyperopt.pyll import Apply

from .errors import ConfigError


class Parameter(enum.Enum):
    """Names of searchable parameters, as in Flair's old ``flair.hyperparameter.Parameter``."""

    # sequence tagger
    EMBEDDINGS = "embeddings"
    HIDDEN_SIZE = "hidden_size"
    USE_CRF = "use_crf"
    USE_RNN = "use_rnn"
    RNN_LAYERS = "rnn_layers"
    RNN_TYPE = "rnn_type"
    DROPOUT = "dropout"
    WORD_DROPOUT = "word_dropout"
    LOCKED_DROPOUT = "locked_dropout"
    REPROJECT_EMBEDDINGS = "reproject_embeddings"
    # text classifier
    TRANSFORMER_MODEL = "transformer_model"
    LAYERS = "layers"
    FINE_TUNE = "fine_tune"
    DOCUMENT_EMBEDDINGS = "document_embeddings"
    POOLING = "pooling"
    BIDIRECTIONAL = "bidirectional"
    REPROJECT_WORDS = "reproject_words"
    REPROJECT_WORD_DIMENSION = "reproject_words_dimension"
    # training
    LEARNING_RATE = "learning_rate"
    MINI_BATCH_SIZE = "mini_batch_size"
    OPTIMIZER = "optimizer"
    ANNEAL_FACTOR = "anneal_factor"
    ANNEAL_WITH_RESTARTS = "anneal_with_restarts"
    PATIENCE = "patience"
    MIN_LEARNING_RATE = "min_learning_rate"
    WARMUP_FRACTION = "warmup_fraction"
    # optimizer arguments
    MOMENTUM = "momentum"
    DAMPENING = "dampening"
    WEIGHT_DECAY = "weight_decay"
    NESTEROV = "nesterov"
    AMSGRAD = "amsgrad"
    BETAS = "betas"
    EPS = "eps"


class OptimizationValue(enum.Enum):
    """What a trial is judged by: the dev score (maximised) or the dev loss (minimised)."""

    DEV_LOSS = "loss"
    DEV_SCORE = "score"

    @classmethod
    def parse(cls, value: "OptimizationValue | str") -> "OptimizationValue":
        if isinstance(value, cls):
            return value
        names = {"dev_score": cls.DEV_SCORE, "score": cls.DEV_SCORE, "dev_loss": cls.DEV_LOSS, "loss": cls.DEV_LOSS}
        try:
            return names[str(value).lower()]
        except KeyError:
            raise ConfigError("optimization_value", f"must be dev_score or dev_loss, not {value!r}") from None

    @property
    def config_name(self) -> str:
        return "dev_score" if self is OptimizationValue.DEV_SCORE else "dev_loss"


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.lower() in ("true", "yes", "1")
    raise TypeError(f"expected true or false, not {value!r}")


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(f"expected an integer, not {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"expected an integer, not {value!r}")
        return int(round(value))
    return int(value)


def _as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError(f"expected a number, not {value!r}")
    return float(value)


def _as_betas(value: Any) -> tuple[float, float]:
    if isinstance(value, str):
        value = [v for v in value.replace("(", "").replace(")", "").split(",") if v.strip()]
    betas = tuple(float(v) for v in value)
    if len(betas) != 2:
        raise TypeError(f"expected two numbers, not {value!r}")
    return betas  # type: ignore[return-value]


def _as_layers(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(int(v)) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return value
    raise TypeError(f"expected 'all' or layer indices such as '-1,-2', not {value!r}")


def _as_identity(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class ParameterInfo:
    """Where a parameter goes when a trial is set up, and what type its real value has."""

    name: str
    group: str  # "model", "training" or "optimizer"
    coerce: Callable[[Any], Any]
    tasks: tuple[str, ...] = ("sequence_tagging", "text_classification")


_BOTH = ("sequence_tagging", "text_classification")
_TAG = ("sequence_tagging",)
_CLS = ("text_classification",)

PARAMETERS: dict[str, ParameterInfo] = {
    info.name: info
    for info in [
        ParameterInfo("embeddings", "model", _as_identity, _BOTH),
        ParameterInfo("hidden_size", "model", _as_int, _BOTH),
        ParameterInfo("use_crf", "model", _as_bool, _TAG),
        ParameterInfo("use_rnn", "model", _as_bool, _TAG),
        ParameterInfo("rnn_layers", "model", _as_int, _BOTH),
        ParameterInfo("rnn_type", "model", str, _BOTH),
        ParameterInfo("dropout", "model", _as_float, _BOTH),
        ParameterInfo("word_dropout", "model", _as_float, _BOTH),
        ParameterInfo("locked_dropout", "model", _as_float, _BOTH),
        ParameterInfo("reproject_embeddings", "model", _as_bool, _TAG),
        ParameterInfo("transformer_model", "model", _as_identity, _BOTH),
        ParameterInfo("layers", "model", _as_layers, _BOTH),
        ParameterInfo("fine_tune", "model", _as_bool, _BOTH),
        ParameterInfo("document_embeddings", "model", _as_identity, _CLS),
        ParameterInfo("pooling", "model", str, _CLS),
        ParameterInfo("bidirectional", "model", _as_bool, _CLS),
        ParameterInfo("reproject_words", "model", _as_bool, _CLS),
        ParameterInfo("reproject_words_dimension", "model", _as_int, _CLS),
        ParameterInfo("learning_rate", "training", _as_float, _BOTH),
        ParameterInfo("mini_batch_size", "training", _as_int, _BOTH),
        ParameterInfo("optimizer", "training", _as_identity, _BOTH),
        ParameterInfo("anneal_factor", "training", _as_float, _BOTH),
        ParameterInfo("anneal_with_restarts", "training", _as_bool, _BOTH),
        ParameterInfo("patience", "training", _as_int, _BOTH),
        ParameterInfo("min_learning_rate", "training", _as_float, _BOTH),
        ParameterInfo("warmup_fraction", "training", _as_float, _BOTH),
        ParameterInfo("momentum", "optimizer", _as_float, _BOTH),
        ParameterInfo("dampening", "optimizer", _as_float, _BOTH),
        ParameterInfo("weight_decay", "optimizer", _as_float, _BOTH),
        ParameterInfo("nesterov", "optimizer", _as_bool, _BOTH),
        ParameterInfo("amsgrad", "optimizer", _as_bool, _BOTH),
        ParameterInfo("betas", "optimizer", _as_betas, _BOTH),
        ParameterInfo("eps", "optimizer", _as_float, _BOTH),
    ]
}
assert set(PARAMETERS) == {p.value for p in Parameter}


def coerce_value(name: str, value: Any, field: str | None = None) -> Any:
    """The real value of a sampled parameter: hyperopt's quniform gives 64.0 where Flair wants 64."""
    info = PARAMETERS.get(name)
    if info is None or value is None:
        return value
    try:
        return info.coerce(value)
    except (TypeError, ValueError) as error:
        raise ConfigError(field or name, str(error)) from None


# --- hyperopt expressions written in the experiment file -------------------------------------

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
        raise ConfigError(
            field, f"must be one hyperopt expression such as {{uniform: [0.0, 0.5]}}, not {spec!r}"
        )
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
        values = [arguments[a] for a in argument_names]
    elif isinstance(arguments, (list, tuple)):
        if len(arguments) != len(argument_names):
            raise ConfigError(field, f"{kind} takes {len(argument_names)} values: {', '.join(argument_names)}")
        values = list(arguments)
    else:
        raise ConfigError(field, f"{kind} takes {', '.join(argument_names)}")

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


def _coerce_option(name: str, option: Any, field: str) -> Any:
    if isinstance(option, (dict, list)) and name not in ("betas", "layers"):
        raise ConfigError(field, f"options must be plain values, not {option!r}")
    if isinstance(option, list):
        option = tuple(option)
    return coerce_value(name, option, field)


def check_parameter_name(name: str, task: str, field: str) -> ParameterInfo:
    """Refuse names Flair would not understand for this task, before any run is created."""
    info = PARAMETERS.get(name)
    if info is None:
        raise ConfigError(field, f"unknown parameter '{name}'; known: {', '.join(sorted(PARAMETERS))}")
    if task not in info.tasks:
        raise ConfigError(field, f"'{name}' is not a parameter of {task}")
    return info


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

    @property
    def names(self) -> list[str]:
        return list(self.search_space)

    def __len__(self) -> int:
        return len(self.search_space)
