"""The parameters a trial can set: their names, where each goes, the type of its real value and the values
Flair and torch accept. Values are converted and checked by pydantic, the package's one coercion path."""

from __future__ import annotations

import enum
import functools
import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, TypeAdapter, ValidationError

from ..errors import ConfigError

TASKS = ("sequence_tagging", "text_classification")
ALGORITHMS = ("tpe", "rand", "anneal", "atpe")  # hyperopt's, by the names the experiment file uses


class OptimizationValue(enum.Enum):
    """What a trial is judged by: the dev score (maximised) or the dev loss (minimised)."""

    DEV_LOSS = "loss"
    DEV_SCORE = "score"

    @classmethod
    def parse(cls, value: OptimizationValue | str) -> OptimizationValue:
        names = {"dev_score": cls.DEV_SCORE, "score": cls.DEV_SCORE, "dev_loss": cls.DEV_LOSS, "loss": cls.DEV_LOSS}
        if isinstance(value, cls) or str(value).lower() in names:
            return value if isinstance(value, cls) else names[str(value).lower()]
        raise ConfigError("optimization_value", f"must be dev_score or dev_loss, not {value!r}")

    @property
    def config_name(self) -> str:
        return "dev_score" if self is OptimizationValue.DEV_SCORE else "dev_loss"


def _rounded(value: Any) -> Any:
    """A drawn number for a whole-number parameter: hyperopt's quniform gives 64.0 where Flair wants 64."""
    return round(value) if isinstance(value, float) and math.isfinite(value) else value


def _layers(value: Any) -> str:
    text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value).strip()
    if text == "all" or (text and all(part.strip().lstrip("-").isdigit() for part in text.split(","))):
        return text
    raise ValueError(f"expected 'all' or layer indices such as '-1,-2', not {value!r}")


def _pair(value: Any) -> Any:
    if isinstance(value, str):
        value = [part for part in value.strip("()[] ").split(",") if part.strip()]
    return tuple(value) if isinstance(value, list) else value


#: the type of each kind of value; with ParameterInfo's limits, what is accepted
KINDS: dict[str, Any] = {
    "flag": bool,
    "whole": Annotated[int, BeforeValidator(_rounded)],
    "number": Annotated[float, Field(allow_inf_nan=False)],
    "layers": Annotated[str, BeforeValidator(_layers)],
    "pair": Annotated[tuple[float, float], BeforeValidator(_pair)],
    "rnn_type": Literal["LSTM", "GRU", "RNN"],
    "pooling": Literal["mean", "max", "min"],
    "object": Any,  # embeddings and optimizers: names, or Flair / torch objects given in Python
}


@dataclass(frozen=True)
class ParameterInfo:
    """A parameter's group (model, training, optimizer), kind, tasks and the limits Flair and torch impose."""

    name: str
    group: str
    kind: str
    tasks: tuple[str, ...] = TASKS
    limits: tuple[tuple[str, float], ...] = ()

    @property
    def numeric(self) -> bool:
        """Whether any number a range expression draws is a value of this parameter (after rounding)."""
        return self.kind in ("whole", "number")


_TAG, _CLS = ("sequence_tagging",), ("text_classification",)
_ONE, _ZERO, _POSITIVE, _BELOW_ONE = (("ge", 1),), (("ge", 0),), (("gt", 0),), (("ge", 0), ("lt", 1))
PARAMETERS: dict[str, ParameterInfo] = {
    info.name: info
    for info in [
        ParameterInfo("embeddings", "model", "object"),
        ParameterInfo("hidden_size", "model", "whole", limits=_ONE),
        ParameterInfo("use_crf", "model", "flag", _TAG),
        ParameterInfo("use_rnn", "model", "flag", _TAG),
        ParameterInfo("rnn_layers", "model", "whole", limits=_ONE),
        ParameterInfo("rnn_type", "model", "rnn_type"),
        ParameterInfo("dropout", "model", "number", limits=_BELOW_ONE),  # a dropout of 1 drops everything
        ParameterInfo("word_dropout", "model", "number", limits=_BELOW_ONE),
        ParameterInfo("locked_dropout", "model", "number", limits=_BELOW_ONE),
        ParameterInfo("reproject_embeddings", "model", "flag", _TAG),
        ParameterInfo("transformer_model", "model", "object"),
        ParameterInfo("layers", "model", "layers"),
        ParameterInfo("fine_tune", "model", "flag"),
        ParameterInfo("document_embeddings", "model", "object", _CLS),
        ParameterInfo("pooling", "model", "pooling", _CLS),
        ParameterInfo("bidirectional", "model", "flag", _CLS),
        ParameterInfo("reproject_words", "model", "flag", _CLS),
        ParameterInfo("reproject_words_dimension", "model", "whole", _CLS, _ONE),
        ParameterInfo("learning_rate", "training", "number", limits=_POSITIVE),
        ParameterInfo("mini_batch_size", "training", "whole", limits=_ONE),
        ParameterInfo("optimizer", "training", "object"),
        ParameterInfo("anneal_factor", "training", "number", limits=(("gt", 0), ("lt", 1))),
        ParameterInfo("anneal_with_restarts", "training", "flag"),
        ParameterInfo("patience", "training", "whole", limits=_ZERO),
        ParameterInfo("min_learning_rate", "training", "number", limits=_ZERO),
        ParameterInfo("warmup_fraction", "training", "number", limits=(("ge", 0), ("le", 1))),
        ParameterInfo("momentum", "optimizer", "number", limits=_ZERO),
        ParameterInfo("dampening", "optimizer", "number"),
        ParameterInfo("weight_decay", "optimizer", "number", limits=_ZERO),
        ParameterInfo("nesterov", "optimizer", "flag"),
        ParameterInfo("amsgrad", "optimizer", "flag"),
        ParameterInfo("betas", "optimizer", "pair", limits=_BELOW_ONE),
        ParameterInfo("eps", "optimizer", "number", limits=_ZERO),
    ]
}
#: the names of Flair's old ``flair.hyperparameter.Parameter`` (``Parameter.DROPOUT``); Flair spelt one otherwise
_OLD_NAMES = {**{name.upper(): name for name in PARAMETERS}, "REPROJECT_WORD_DIMENSION": "reproject_words_dimension"}
Parameter = enum.Enum("Parameter", _OLD_NAMES, module=__name__)


@functools.lru_cache(maxsize=None)
def _adapter(name: str, checked: bool) -> TypeAdapter:
    info = PARAMETERS[name]
    finite = {"allow_inf_nan": False} if info.kind in ("number", "pair") else {}
    limits = Field(**finite, **dict(info.limits))
    if not checked or not info.limits:
        return TypeAdapter(KINDS[info.kind])
    if info.kind == "pair":
        return TypeAdapter(Annotated[tuple[Annotated[float, limits], Annotated[float, limits]], BeforeValidator(_pair)])
    return TypeAdapter(Annotated[KINDS[info.kind], limits])


def _validated(name: str, value: Any, field: str, checked: bool) -> Any:
    if name not in PARAMETERS or value is None:
        return value
    try:
        return _adapter(name, checked).validate_python(value)
    except ValidationError as error:
        detail = error.errors()[0]
        cause = detail.get("ctx", {}).get("error")
        message = str(cause) if cause is not None else f"{detail['msg'][0].lower()}{detail['msg'][1:]}, not {value!r}"
        raise ConfigError(field, f"{name}: {message}") from None


def coerce_value(name: str, value: Any, field: str | None = None) -> Any:
    """A sampled value as the model takes it, unchecked: a draw that Flair refuses fails its trial."""
    return _validated(name, value, field or name, checked=False)


def checked_value(name: str, value: Any, field: str) -> Any:
    """A value the experiment sets (fixed, an option, a range's end), refused on ``field`` when no run could use it."""
    return _validated(name, value, field, checked=True)


def check_parameter_name(name: str, task: str, field: str) -> ParameterInfo:
    """Refuse names Flair would not understand for this task."""
    if name not in PARAMETERS:
        raise ConfigError(field, f"unknown parameter '{name}'; known: {', '.join(sorted(PARAMETERS))}")
    if task not in PARAMETERS[name].tasks:
        raise ConfigError(field, f"'{name}' is not a parameter of {task}")
    return PARAMETERS[name]


#: training arguments a search sets itself, and why a user may not
RESERVED_TRAINING_ARGUMENTS = {
    "base_path": "model files go to a temporary folder",
    "max_epochs": "set max_epochs at the top level",
    "main_evaluation_metric": "set main_evaluation_metric at the top level",
    "plugins": "the search attaches its own plugins",
    "train_with_dev": "a search needs the dev split to score trials",
    "train_with_test": "the test split is never trained on",
    "monitor_test": "set evaluate_test at the top level",
    "save_final_model": "model files of trials are not kept",
    "use_final_model_for_eval": "set by the search",
    "create_file_logs": "set by the search",
    "create_loss_file": "set by the search",
    "epoch": "trials start from scratch",
    "multi_gpu": "not supported in a search",
}
#: every argument of Flair 0.15's ``ModelTrainer.train``, ``fine_tune`` and ``train_custom``: what ``fixed:`` may
#: also hold, known without importing Flair (a test compares it with the installed Flair)
TRAINING_ARGUMENTS = frozenset(
    "anneal_factor anneal_with_restarts attach_default_scheduler base_path create_file_logs create_loss_file "
    "decoder_learning_rate embeddings_storage_mode epoch eval_batch_size exclude_labels "
    "gold_label_dictionary_for_eval initial_extra_patience learning_rate main_evaluation_metric max_epochs "
    "max_grad_norm min_learning_rate mini_batch_chunk_size mini_batch_size monitor_test monitor_train_sample "
    "multi_gpu optimizer patience plugins reduce_transformer_vocab sampler save_final_model "
    "save_model_each_k_epochs save_optimizer_state shuffle shuffle_first_epoch train_with_dev train_with_test "
    "use_amp use_final_model_for_eval warmup_fraction write_weights".split()
)


def fixed_value(name: str, value: Any, task: str) -> Any:
    """A value ``fixed:`` sets: a parameter or a training argument, refused on ``fixed.<name>`` if no run can use it."""
    field = f"fixed.{name}"
    if name in RESERVED_TRAINING_ARGUMENTS:
        raise ConfigError(field, f"cannot be fixed: {RESERVED_TRAINING_ARGUMENTS[name]}")
    if name not in PARAMETERS and name not in TRAINING_ARGUMENTS:
        raise ConfigError(field, f"unknown parameter '{name}': not a search parameter nor a Flair training argument")
    if name in PARAMETERS:
        check_parameter_name(name, task, field)
        if isinstance(value, list) and name not in ("betas", "layers", "embeddings"):
            raise ConfigError(field, "a fixed parameter takes one value; put alternatives in search_space")
    return checked_value(name, value, field)
