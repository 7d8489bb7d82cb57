"""The experiment file as pydantic models: plain data, so another process rebuilds a trial from it alone; all that
can be checked without Flair is checked here, each refusal one :class:`ConfigError` naming its field."""

from __future__ import annotations

import codecs
import hashlib
import json
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Iterator, Literal, Mapping

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from ..errors import ConfigError
from .expressions import checked_expression, representative_value
from .parameters import ALGORITHMS, OptimizationValue, check_parameter_name, fixed_value

#: trials in one search at most: TPE's suggestions slow down with every trial, and each is a run
MAX_EVALS = 10_000
#: a trial's training runs are seeded seed + 1000 * trial + run, which must stay below numpy's 2**32
MAX_SEED = 2**31 - 1
#: Flair's old ``EvaluationMetric`` values and the ``main_evaluation_metric`` they mean today
EVALUATION_METRICS = {
    "micro-average f1-score": ("micro avg", "f1-score"),
    "macro-average f1-score": ("macro avg", "f1-score"),
    "micro-average accuracy": ("micro avg", "accuracy"),
    "macro-average accuracy": ("macro avg", "accuracy"),
}
AVERAGES = ("micro avg", "macro avg", "weighted avg")
METRICS = ("f1-score", "precision", "recall", "accuracy")
#: the settings a command line (``--max-evals``, ``-P max_evals=``) may override
OVERRIDABLE = (
    "max_epochs training_runs max_evals optimization_value algorithm seed experiment downsample evaluate_test "
    "label_type lr_from embedding_cache_mb early_stop_trials time_budget_minutes parallelism spark_master threads device keep_models log_system_metrics scheduler"
).split()


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class CorpusConfig(_Settings):
    """Where the data comes from: a Flair dataset by name, or a local folder of column or FastText files."""

    name: str | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)
    folder: str | None = None
    format: Literal["column", "fasttext"] = "column"
    column_format: dict[int, str] | None = None
    train_file: str | None = None
    dev_file: str | None = None
    test_file: str | None = None
    keep_docstart: bool = False  # CoNLL's -DOCSTART- lines are dropped from column corpora unless set

    @model_validator(mode="after")
    def _check(self) -> CorpusConfig:
        if bool(self.name) == bool(self.folder):
            raise ConfigError("corpus", "give either 'name' (a Flair dataset) or 'folder' (local files), not both")
        delimiter, encoding = self.arguments.get("column_delimiter"), self.arguments.get("encoding")
        try:
            re.compile(delimiter) if delimiter is not None else None
        except (re.error, TypeError) as error:
            problem = f"{delimiter!r} is not a regular expression ({error})"
            raise ConfigError("corpus.arguments.column_delimiter", problem) from None
        try:
            codecs.lookup(encoding) if encoding is not None else None
        except (LookupError, TypeError):
            problem = f"{encoding!r} is not a text encoding Python knows"
            raise ConfigError("corpus.arguments.encoding", problem) from None
        if self.folder and not Path(self.folder).is_dir():
            raise ConfigError("corpus.folder", f"folder '{self.folder}' does not exist")
        if self.folder and self.format == "column" and not self.column_format:
            raise ConfigError("corpus.column_format", "is required for a column corpus, e.g. {0: text, 1: ner}")
        for name in ("train_file", "dev_file", "test_file"):
            if self.folder and getattr(self, name) and not (Path(self.folder) / getattr(self, name)).is_file():
                raise ConfigError(f"corpus.{name}", f"'{Path(self.folder) / getattr(self, name)}' does not exist")
        return self

    def describe(self) -> str:
        return self.name if self.name else f"{self.format}:{self.folder}"


class PruningConfig(_Settings):
    """The median stopping rule: after ``warmup_epochs``, once ``startup_trials`` have finished."""

    warmup_epochs: int = Field(2, ge=0)
    startup_trials: int = Field(3, ge=0)


class SchedulerConfig(_Settings):
    """Multi-fidelity search over epochs: ``asha`` (one bracket), ``hyperband`` (``brackets``, default all) or none."""

    type: Literal["none", "asha", "hyperband"] = "none"
    min_epochs: int = Field(1, ge=1)  # the first rung's epochs
    reduction_factor: int = Field(3, ge=2)  # the top 1/reduction_factor of a rung (at least one) go on
    brackets: int | None = Field(None, ge=1)
    checkpoint_dir: str | None = None  # where paused trials' state waits (default: a folder in the system temp)

    @model_validator(mode="after")
    def _check(self) -> SchedulerConfig:
        if self.brackets is not None and self.type != "hyperband":
            raise ConfigError("scheduler.brackets", "only applies to type hyperband")
        return self

    def describe(self) -> str:
        """What rungs a search ran, for the parent's params (compared in the UI, checked by ``--resume``)."""
        settings = self.model_dump(exclude={"type", "checkpoint_dir"}, exclude_none=True)
        return self.type if self.type == "none" else f"{self.type}({','.join(f'{k}={v}' for k, v in settings.items())})"


def _threads(value: Any) -> int | str:
    text = str(value).strip().lower()
    if text == "auto" or (not isinstance(value, bool) and text.isdigit() and int(text) >= 1):
        return text if text == "auto" else int(text)
    if isinstance(value, float) and value.is_integer() and value >= 1:
        return int(value)
    raise ValueError(f"must be auto or a number of threads (1 or more), not {value!r}")


def _metric(value: Any) -> tuple[str, str]:
    value = EVALUATION_METRICS.get(str(getattr(value, "value", value)), value)
    if not isinstance(value, (list, tuple)) or len(value) != 2 or value[0] not in AVERAGES or value[1] not in METRICS:
        averages, metrics = ", ".join(AVERAGES), ", ".join(METRICS)
        raise ValueError(f"must be [average, metric] of {averages} and {metrics}, not {value!r}")
    return (str(value[0]), str(value[1]))


def _lower(value: Any) -> Any:
    """``TPE`` is ``tpe``; ``score`` and ``loss`` are the old names of ``dev_score`` and ``dev_loss``."""
    aliases = {"score": "dev_score", "loss": "dev_loss"}
    return aliases.get(value.lower(), value.lower()) if isinstance(value, str) else value


class ExperimentConfig(_Settings):
    """One search, as written in the experiment file (after command-line overrides)."""

    task: Literal["sequence_tagging", "text_classification"]
    corpus: Annotated[CorpusConfig, BeforeValidator(lambda v: {"name": v} if isinstance(v, str) else v)]
    label_type: str = Field(min_length=1)
    search_space: dict[str, Any] = Field(default_factory=dict)
    fixed: dict[str, Any] = Field(default_factory=dict)
    multi_label: bool = False
    downsample: float = Field(1.0, gt=0, le=1)
    max_epochs: int = Field(10, ge=1)
    training_runs: int = Field(1, ge=1)
    max_evals: int = Field(10, ge=1, le=MAX_EVALS)
    optimization_value: Annotated[Literal["dev_score", "dev_loss"], BeforeValidator(_lower)] = "dev_score"
    main_evaluation_metric: Annotated[tuple[str, str], BeforeValidator(_metric)] = ("micro avg", "f1-score")
    algorithm: Annotated[Literal[ALGORITHMS], BeforeValidator(_lower)] = "tpe"  # type: ignore[valid-type]
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    experiment: str | None = Field(None, min_length=1)
    evaluate_test: bool = False
    lr_from: str | None = Field(None, min_length=1)  # run id of a learning-rate finder run
    embedding_cache_mb: float = Field(1024.0, ge=0)  # frozen embeddings' vectors kept between runs; 0: off
    pruning: Annotated[
        PruningConfig | None, BeforeValidator(lambda v: {} if v is True else None if v is False else v)
    ] = None
    early_stop_trials: int | None = Field(None, ge=1)  # end after this many trials without a new best
    time_budget_minutes: float | None = Field(None, gt=0)  # end (between trials) once this much time is spent
    parallelism: int = Field(1, ge=1)  # trials side by side on Spark when above 1
    spark_master: Annotated[str | None, BeforeValidator(lambda v: v.strip() or None if isinstance(v, str) else v)] = (
        None
    )
    threads: Annotated[Any, BeforeValidator(_threads)] = "auto"  # torch threads per trial, or auto
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")  # auto: CUDA where there is one
    keep_models: int = Field(1, ge=0)  # the best trials' trained models kept as logged models; 0: none
    log_system_metrics: bool = False  # CPU, memory (and GPU) per trial run, by MLflow's monitor
    scheduler: Annotated[SchedulerConfig, BeforeValidator(lambda v: {"type": v} if isinstance(v, str) else v)] = Field(
        default_factory=SchedulerConfig
    )

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        if self.task == "sequence_tagging" and self.multi_label:
            raise ConfigError("multi_label", "only applies to text_classification")
        if not self.search_space:
            raise ConfigError("search_space", "is empty: name at least one parameter to search")
        for name, spec in self.search_space.items():
            check_parameter_name(name, self.task, f"search_space.{name}")
            self.search_space[name] = checked_expression(name, spec)
        both = sorted(set(self.search_space) & set(self.fixed))
        if both:
            raise ConfigError(f"fixed.{both[0]}", "is also in search_space; keep it in one place")
        self.fixed = {name: fixed_value(name, value, self.task) for name, value in self.fixed.items()}
        names = set(self.parameter_names)
        if self.task == "sequence_tagging" and "embeddings" not in names:
            raise ConfigError("search_space", "sequence_tagging needs 'embeddings' in search_space or fixed")
        documents = {"transformer_model", "document_embeddings", "embeddings"} & names
        if self.task == "text_classification" and not documents:
            problem = "text_classification needs 'transformer_model', 'document_embeddings' or 'embeddings'"
            raise ConfigError("search_space", problem)
        self._check_scheduler()
        return self

    def _check_scheduler(self) -> None:
        scheduler = self.scheduler
        if scheduler.type == "none":
            return
        if scheduler.min_epochs >= self.max_epochs:
            raise ConfigError("scheduler.min_epochs", f"must be below max_epochs ({self.max_epochs}), the top rung")
        if self.pruning is not None:
            raise ConfigError("pruning", f"cannot be combined with scheduler {scheduler.type}: both end trials early")
        if self.early_stop_trials is not None:  # trials ending at different rungs give no "trials since the best"
            raise ConfigError("early_stop_trials", f"cannot be combined with scheduler {scheduler.type}; use max_evals")

    @property
    def maximise(self) -> bool:
        """Whether a higher optimised value is better: a dev score, not a dev loss."""
        return self.optimization_value == "dev_score"

    @property
    def scheduled(self) -> bool:
        """Whether trials train in rungs (a multi-fidelity scheduler), not each for all of ``max_epochs``."""
        return self.scheduler.type != "none"

    @classmethod
    def from_file(cls, path: str | Path, overrides: Mapping[str, Any] | None = None) -> ExperimentConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError("config", f"experiment file '{path}' does not exist")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            raise ConfigError("config", f"'{path}' is not valid YAML{where}") from None
        except UnicodeDecodeError:
            raise ConfigError("config", f"'{path}' is not a UTF-8 text file") from None
        if not isinstance(data, Mapping):
            raise ConfigError("config", f"'{path}' must hold a mapping of settings, not {type(data).__name__}")
        corpus = data.get("corpus")
        if isinstance(corpus, Mapping) and isinstance(corpus.get("folder"), str):  # relative to the file, as read
            folder = Path(corpus["folder"]).expanduser()
            if not folder.is_absolute() and ((path.parent / folder).exists() or not folder.exists()):
                data = {**data, "corpus": {**corpus, "folder": str((path.parent / folder).resolve())}}
        return cls.from_dict(data, overrides)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> ExperimentConfig:
        for key, value in (overrides or {}).items():
            if value is not None and key not in OVERRIDABLE:
                raise ConfigError(key, "cannot be overridden from the command line")
        given, block = (overrides or {}).get("scheduler"), data.get("scheduler")
        if isinstance(given, str) and isinstance(block, Mapping):  # --scheduler asha keeps the file's rungs
            overrides = {**(overrides or {}), "scheduler": {**block, "type": given}}
        return validated(cls, {**data, **{k: v for k, v in (overrides or {}).items() if v is not None}})

    def to_dict(self) -> dict[str, Any]:
        return {**self.model_dump(mode="json"), "corpus": self.corpus.model_dump(mode="json", exclude_defaults=True)}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def replaced(self, **changes: Any) -> ExperimentConfig:
        """A copy with ``changes``, checked again."""
        return validated(type(self), {**self.model_dump(), **changes})

    @property
    def parameter_names(self) -> list[str]:
        """Every parameter a trial logs: the searched ones, then the fixed ones."""
        return list(self.search_space) + [n for n in self.fixed if n not in self.search_space]

    @property
    def objective(self) -> OptimizationValue:
        return OptimizationValue.parse(self.optimization_value)

    def representative_params(self) -> dict[str, Any]:
        """The fixed values and a representative of each searched one: checked before any trial, trained by lr-find."""
        return {**{n: representative_value(n, spec) for n, spec in self.search_space.items()}, **self.fixed}

    @contextmanager
    def named_where_set(self) -> Iterator[None]:
        """A ConfigError on a bare parameter name, pointed at where the experiment sets it (``fixed.momentum``)."""
        try:
            yield
        except ConfigError as error:
            if "." in error.field or error.field not in self.parameter_names:
                raise
            where = "fixed" if error.field in self.fixed else "search_space"
            raise type(error)(f"{where}.{error.field}", error.problem) from error


def digest(data: Any) -> str:
    """16 hex digits of SHA-256 over canonical JSON: tells a resume or a registration whether it is the same thing."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def validated(model: type[BaseModel], data: Mapping[str, Any]) -> Any:
    """``model`` built from ``data``; its first problem (a typo before what it misses) one ConfigError."""
    try:
        return model.model_validate(data)
    except ValidationError as failure:
        errors = failure.errors()
        detail = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    cause = detail.get("ctx", {}).get("error")
    if isinstance(cause, ConfigError):
        raise cause from None
    loc = [str(part) for part in detail["loc"] if not str(part).startswith(("function-", "literal["))]
    if detail["type"] == "extra_forbidden":
        nested = (
            {"corpus": CorpusConfig, "pruning": PruningConfig, "scheduler": SchedulerConfig}.get(loc[0])
            if len(loc) > 1
            else model
        )
        problem = f"unknown setting; known settings: {', '.join(sorted((nested or model).model_fields))}"
    elif detail["type"] == "missing":
        problem = "is required"
    elif cause is not None:
        problem = str(cause)
    else:
        problem = f"{detail['msg'][0].lower()}{detail['msg'][1:]}, not {detail.get('input')!r}"
    raise ConfigError(".".join(loc) or "config", problem) from None
