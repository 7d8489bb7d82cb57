"""The parameters a trial can set: their names, where each goes, and the type of its real value."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Callable

from .coerce import as_betas, as_bool, as_float, as_identity, as_int, as_layers
from .errors import ConfigError

#: hyperopt's search algorithms by the names the experiment file and the CLI use
ALGORITHMS = ("tpe", "rand", "anneal", "atpe")


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


@dataclass(frozen=True)
class Interval:
    """The numbers a parameter may take (None: unbounded on that side); an open end is excluded."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, number: float) -> bool:
        if self.low is not None and (number < self.low or (self.low_open and number == self.low)):
            return False
        return self.high is None or not (number > self.high or (self.high_open and number == self.high))

    def describe(self) -> str:
        """``at least 1``, ``above 0``, ``at least 0 and below 1``."""
        ends = []
        if self.low is not None:
            ends.append(f"{'above' if self.low_open else 'at least'} {self.low:g}")
        if self.high is not None:
            ends.append(f"{'below' if self.high_open else 'at most'} {self.high:g}")
        return " and ".join(ends)


AT_LEAST_ONE = Interval(1)
NOT_NEGATIVE = Interval(0)
POSITIVE = Interval(0, low_open=True)
FRACTION = Interval(0, 1)  # both ends included
PROBABILITY_BELOW_ONE = Interval(0, 1, high_open=True)  # a dropout of 1 drops everything (or divides by 0)


@dataclass(frozen=True)
class ParameterInfo:
    """Where a parameter goes when a trial is set up, the type of its real value, and the values Flair
    and torch accept: ``valid`` for numbers (each of them, for ``betas``), ``options`` for names.

    The ranges are what a training run refuses or cannot learn from; the experiment file is checked
    against them before any run exists (fixed values, choice options, the bounds of a range).
    """

    name: str
    group: str  # "model", "training" or "optimizer"
    coerce: Callable[[Any], Any]
    tasks: tuple[str, ...] = ("sequence_tagging", "text_classification")
    valid: Interval | None = None
    options: tuple[str, ...] = ()

    @property
    def numeric(self) -> bool:
        """Whether any number a range expression draws is a value of this parameter (after rounding)."""
        return self.coerce in (as_int, as_float)


_BOTH = ("sequence_tagging", "text_classification")
_TAG = ("sequence_tagging",)
_CLS = ("text_classification",)

PARAMETERS: dict[str, ParameterInfo] = {
    info.name: info
    for info in [
        ParameterInfo("embeddings", "model", as_identity, _BOTH),
        ParameterInfo("hidden_size", "model", as_int, _BOTH, AT_LEAST_ONE),
        ParameterInfo("use_crf", "model", as_bool, _TAG),
        ParameterInfo("use_rnn", "model", as_bool, _TAG),
        ParameterInfo("rnn_layers", "model", as_int, _BOTH, AT_LEAST_ONE),
        ParameterInfo("rnn_type", "model", str, _BOTH, options=("LSTM", "GRU", "RNN")),
        ParameterInfo("dropout", "model", as_float, _BOTH, PROBABILITY_BELOW_ONE),
        ParameterInfo("word_dropout", "model", as_float, _BOTH, PROBABILITY_BELOW_ONE),
        ParameterInfo("locked_dropout", "model", as_float, _BOTH, PROBABILITY_BELOW_ONE),
        ParameterInfo("reproject_embeddings", "model", as_bool, _TAG),
        ParameterInfo("transformer_model", "model", as_identity, _BOTH),
        ParameterInfo("layers", "model", as_layers, _BOTH),
        ParameterInfo("fine_tune", "model", as_bool, _BOTH),
        ParameterInfo("document_embeddings", "model", as_identity, _CLS),
        ParameterInfo("pooling", "model", str, _CLS, options=("mean", "max", "min")),
        ParameterInfo("bidirectional", "model", as_bool, _CLS),
        ParameterInfo("reproject_words", "model", as_bool, _CLS),
        ParameterInfo("reproject_words_dimension", "model", as_int, _CLS, AT_LEAST_ONE),
        ParameterInfo("learning_rate", "training", as_float, _BOTH, POSITIVE),
        ParameterInfo("mini_batch_size", "training", as_int, _BOTH, AT_LEAST_ONE),
        ParameterInfo("optimizer", "training", as_identity, _BOTH),
        ParameterInfo("anneal_factor", "training", as_float, _BOTH, Interval(0, 1, low_open=True, high_open=True)),
        ParameterInfo("anneal_with_restarts", "training", as_bool, _BOTH),
        ParameterInfo("patience", "training", as_int, _BOTH, NOT_NEGATIVE),
        ParameterInfo("min_learning_rate", "training", as_float, _BOTH, NOT_NEGATIVE),
        ParameterInfo("warmup_fraction", "training", as_float, _BOTH, FRACTION),
        ParameterInfo("momentum", "optimizer", as_float, _BOTH, NOT_NEGATIVE),
        ParameterInfo("dampening", "optimizer", as_float, _BOTH),
        ParameterInfo("weight_decay", "optimizer", as_float, _BOTH, NOT_NEGATIVE),
        ParameterInfo("nesterov", "optimizer", as_bool, _BOTH),
        ParameterInfo("amsgrad", "optimizer", as_bool, _BOTH),
        ParameterInfo("betas", "optimizer", as_betas, _BOTH, PROBABILITY_BELOW_ONE),
        ParameterInfo("eps", "optimizer", as_float, _BOTH, NOT_NEGATIVE),
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


def value_problem(name: str, value: Any) -> str | None:
    """What is wrong with a parameter's real value for Flair or torch (``must be at least 1``), or None."""
    info = PARAMETERS.get(name)
    if info is None or value is None:
        return None
    if info.options and value not in info.options:
        return f"must be one of {', '.join(info.options)}"
    numbers = value if isinstance(value, tuple) else (value,)  # betas: each of them
    if info.valid is not None and not all(number in info.valid for number in numbers):
        return f"must be {info.valid.describe()}" + (" (each of them)" if len(numbers) > 1 else "")
    return None


def checked_value(name: str, value: Any, field: str) -> Any:
    """A value the experiment file sets (fixed, or a choice option): its real value, refused with one
    line on ``field`` when no training run could use it. Sampled values are only coerced: a draw
    that fails fails its trial."""
    value = coerce_value(name, value, field)
    problem = value_problem(name, value)
    if problem is not None:
        raise ConfigError(field, f"{name} {problem}, not {value!r}")
    return value


def check_parameter_name(name: str, task: str, field: str) -> ParameterInfo:
    """Refuse names Flair would not understand for this task, before any run is created."""
    info = PARAMETERS.get(name)
    if info is None:
        raise ConfigError(field, f"unknown parameter '{name}'; known: {', '.join(sorted(PARAMETERS))}")
    if task not in info.tasks:
        raise ConfigError(field, f"'{name}' is not a parameter of {task}")
    return info


#: Flair's old ``EvaluationMetric`` values and the ``main_evaluation_metric`` they mean today.
EVALUATION_METRICS = {
    "micro-average f1-score": ("micro avg", "f1-score"),
    "macro-average f1-score": ("macro avg", "f1-score"),
    "micro-average accuracy": ("micro avg", "accuracy"),
    "macro-average accuracy": ("macro avg", "accuracy"),
}


#: Every argument of Flair 0.15's ``ModelTrainer.train``, ``fine_tune`` and ``train_custom``: what a
#: ``fixed:`` value may also be. Kept here so the experiment file is checked without importing Flair;
#: a test compares it with the installed Flair's signatures.
TRAINING_ARGUMENTS = frozenset(
    {
        "anneal_factor",
        "anneal_with_restarts",
        "attach_default_scheduler",
        "base_path",
        "create_file_logs",
        "create_loss_file",
        "decoder_learning_rate",
        "embeddings_storage_mode",
        "epoch",
        "eval_batch_size",
        "exclude_labels",
        "gold_label_dictionary_for_eval",
        "initial_extra_patience",
        "learning_rate",
        "main_evaluation_metric",
        "max_epochs",
        "max_grad_norm",
        "min_learning_rate",
        "mini_batch_chunk_size",
        "mini_batch_size",
        "monitor_test",
        "monitor_train_sample",
        "multi_gpu",
        "optimizer",
        "patience",
        "plugins",
        "reduce_transformer_vocab",
        "sampler",
        "save_final_model",
        "save_model_each_k_epochs",
        "save_optimizer_state",
        "shuffle",
        "shuffle_first_epoch",
        "train_with_dev",
        "train_with_test",
        "use_amp",
        "use_final_model_for_eval",
        "warmup_fraction",
        "write_weights",
    }
)
