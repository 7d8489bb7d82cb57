"""The experiment file: one YAML document that describes a whole search.

Everything here is plain data (picklable, comparable, writable back to YAML) so that a trial
can be rebuilt in another process, or on another machine, from the configuration alone.
Validation happens here, before anything touches the tracking store.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from .coerce import positive_int, setting
from .corpus_config import CorpusConfig, corpus_from, validate_corpus
from .errors import ConfigError
from .parameters import (
    ALGORITHMS,
    PARAMETERS,
    TRAINING_ARGUMENTS,
    OptimizationValue,
    check_parameter_name,
    checked_value,
)
from .space import SearchSpace

TASKS = ("sequence_tagging", "text_classification")

#: Trials in one search at most: TPE's suggestions slow down with every trial, and each is a run in the store.
MAX_EVALS = 10_000
#: Seeds up to 2**31 - 1: each trial's training runs are seeded seed + 1000 * trial + run, below numpy's 2**32.
MAX_SEED = 2**31 - 1

#: Training arguments the search sets itself; a user who passes them would break the trial.
RESERVED_TRAINING_ARGUMENTS = {
    "base_path": "model files go to a temporary folder",
    "max_epochs": "set max_epochs at the top level",
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


@dataclass
class ExperimentConfig:
    """One search, as written in the experiment file (after command-line overrides)."""

    task: str
    corpus: CorpusConfig
    label_type: str
    search_space: dict[str, Any] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    multi_label: bool = False
    downsample: float = 1.0
    max_epochs: int = 10
    training_runs: int = 1
    max_evals: int = 10
    optimization_value: str = "dev_score"
    algorithm: str = "tpe"
    seed: int | None = None
    experiment: str | None = None
    evaluate_test: bool = False
    lr_from: str | None = None  # run id of a learning-rate finder run that sets the learning-rate range
    embedding_cache_mb: float = 1024.0  # vectors of frozen embeddings kept between runs; 0 turns it off
    pruning: dict[str, Any] | None = None  # median stopping rule: {warmup_epochs: 2, startup_trials: 3}
    early_stop_trials: int | None = None  # end the search after this many trials without improvement
    time_budget_minutes: float | None = None  # end the search (between trials) once this much time is spent
    parallelism: int = 1  # trials side by side on Spark (hyperopt's SparkTrials) when above 1
    spark_master: str | None = None  # default: local[parallelism]
    threads: int | str = "auto"  # torch threads per trial: a number, or auto (timed on the first batches)

    # -- reading and writing ------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path, overrides: Mapping[str, Any] | None = None) -> "ExperimentConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError("config", f"experiment file '{path}' does not exist")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise ConfigError("config", f"'{path}' is not valid YAML{where}") from None
        except UnicodeDecodeError:
            raise ConfigError("config", f"'{path}' is not a UTF-8 text file") from None
        if not isinstance(data, Mapping):
            raise ConfigError("config", f"'{path}' must hold a mapping of settings, not {type(data).__name__}")
        # a relative corpus folder is relative to the experiment file, as a user reads it; resolved
        # before validation, which checks that the folder exists
        corpus = data.get("corpus")
        if isinstance(corpus, Mapping) and isinstance(corpus.get("folder"), str):
            folder = Path(corpus["folder"]).expanduser()
            if not folder.is_absolute():
                candidate = (path.parent / folder).resolve()
                if candidate.exists() or not folder.exists():
                    data = {**data, "corpus": {**corpus, "folder": str(candidate)}}
        return cls.from_dict(data, overrides)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> "ExperimentConfig":
        data = dict(data)
        for key, value in (overrides or {}).items():
            if value is not None:
                if key not in _TOP_LEVEL_OVERRIDES:
                    raise ConfigError(key, "cannot be overridden from the command line")
                data[key] = value
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(unknown[0], f"unknown setting; known settings: {', '.join(sorted(known))}")
        for required in ("task", "corpus", "label_type"):
            if data.get(required) in (None, ""):
                raise ConfigError(required, "is required")
        data["corpus"] = corpus_from(data["corpus"])
        config = cls(**data)
        config.validate()
        return config

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        corpus = {k: v for k, v in data["corpus"].items() if v not in (None, {}, "column") or k == "name"}
        if self.corpus.format != "column":
            corpus["format"] = self.corpus.format
        data["corpus"] = {k: v for k, v in corpus.items() if v is not None}
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    # -- validation ---------------------------------------------------------------------------
    def validate(self) -> None:
        """Check every setting that can be checked without loading data, converting each to its type."""
        self._validate_settings()
        self._validate_stops()
        validate_corpus(self.corpus)
        self._validate_space()

    def _validate_settings(self) -> None:
        if self.task not in TASKS:
            raise ConfigError("task", f"must be one of {', '.join(TASKS)}, not {self.task!r}")
        if not isinstance(self.label_type, str) or not self.label_type:
            raise ConfigError("label_type", "must be a non-empty string")
        self.multi_label = setting("multi_label", self.multi_label, bool)
        self.evaluate_test = setting("evaluate_test", self.evaluate_test, bool)
        self.max_epochs = positive_int("max_epochs", self.max_epochs)
        self.training_runs = positive_int("training_runs", self.training_runs)
        self.max_evals = positive_int("max_evals", self.max_evals)
        if self.max_evals > MAX_EVALS:
            raise ConfigError("max_evals", f"must be at most {MAX_EVALS:,} trials, not {self.max_evals:,}")
        if self.seed is not None:
            self.seed = setting("seed", self.seed, int)
            if not 0 <= self.seed <= MAX_SEED:
                raise ConfigError("seed", f"must be between 0 and {MAX_SEED}, not {self.seed}")
        self.downsample = setting("downsample", self.downsample, float)
        if not 0.0 < self.downsample <= 1.0:
            raise ConfigError("downsample", f"must be a fraction in (0, 1], not {self.downsample}")
        self.optimization_value = OptimizationValue.parse(self.optimization_value).config_name
        self.algorithm = str(self.algorithm).lower()
        if self.algorithm not in ALGORITHMS:
            raise ConfigError("algorithm", f"must be one of {', '.join(ALGORITHMS)}, not {self.algorithm!r}")
        if self.experiment is not None and not str(self.experiment).strip():
            raise ConfigError("experiment", "must not be empty")
        self.parallelism = positive_int("parallelism", self.parallelism)
        if self.spark_master is not None and not str(self.spark_master).strip():
            self.spark_master = None
        self.threads = threads_setting(self.threads)
        if self.task == "sequence_tagging" and self.multi_label:
            raise ConfigError("multi_label", "only applies to text_classification")

    def _validate_stops(self) -> None:
        """The search's own limits: cache budget, pruning, early stop, time budget, lr_from."""
        self.embedding_cache_mb = setting("embedding_cache_mb", self.embedding_cache_mb, float)
        if self.embedding_cache_mb < 0:
            raise ConfigError("embedding_cache_mb", f"must be 0 (off) or more, not {self.embedding_cache_mb}")
        if self.pruning is not None:
            self.pruning = _pruning_settings(self.pruning)
        if self.early_stop_trials is not None:
            self.early_stop_trials = positive_int("early_stop_trials", self.early_stop_trials)
        if self.time_budget_minutes is not None:
            self.time_budget_minutes = setting("time_budget_minutes", self.time_budget_minutes, float)
            if self.time_budget_minutes <= 0:
                raise ConfigError("time_budget_minutes", f"must be positive, not {self.time_budget_minutes}")
        if self.lr_from is not None and (not isinstance(self.lr_from, str) or not self.lr_from.strip()):
            raise ConfigError("lr_from", "must be the run id of a learning-rate finder run")

    def _validate_space(self) -> None:
        if not isinstance(self.search_space, Mapping):
            raise ConfigError("search_space", "must be a mapping from parameter name to expression")
        if not isinstance(self.fixed, Mapping):
            raise ConfigError("fixed", "must be a mapping from parameter name to value")
        if not self.search_space:
            raise ConfigError("search_space", "is empty: name at least one parameter to search")
        SearchSpace.from_config(self.search_space, self.task)  # raises on bad names or expressions
        both = sorted(set(self.search_space) & set(self.fixed))
        if both:
            raise ConfigError(f"fixed.{both[0]}", "is also in search_space; keep it in one place")
        self.fixed = {name: _check_fixed(name, value, self.task) for name, value in self.fixed.items()}
        if self.task == "sequence_tagging" and "embeddings" not in self.parameter_names:
            raise ConfigError("search_space", "sequence_tagging needs 'embeddings' in search_space or fixed")
        if self.task == "text_classification" and not (
            {"transformer_model", "document_embeddings", "embeddings"} & set(self.parameter_names)
        ):
            raise ConfigError(
                "search_space",
                "text_classification needs 'transformer_model', 'document_embeddings' or 'embeddings'",
            )

    @property
    def parameter_names(self) -> list[str]:
        """Every parameter a trial logs: the searched ones, then the fixed ones."""
        return list(self.search_space) + [n for n in self.fixed if n not in self.search_space]

    def build_space(self) -> SearchSpace:
        return SearchSpace.from_config(self.search_space, self.task)

    @property
    def objective(self) -> OptimizationValue:
        return OptimizationValue.parse(self.optimization_value)


_TOP_LEVEL_OVERRIDES = {
    "max_epochs",
    "training_runs",
    "max_evals",
    "optimization_value",
    "algorithm",
    "seed",
    "experiment",
    "downsample",
    "evaluate_test",
    "label_type",
    "lr_from",
    "embedding_cache_mb",
    "early_stop_trials",
    "time_budget_minutes",
    "parallelism",
    "spark_master",
    "threads",
}


def threads_setting(value: Any) -> int | str:
    """``auto`` (any case) or a positive number of torch threads per trial."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        return positive_int("threads", value)
    except ConfigError:
        raise ConfigError("threads", f"must be auto or a number of threads (1 or more), not {value!r}") from None


def _pruning_settings(value: Any) -> dict[str, Any]:
    if value is True:
        value = {}
    if not isinstance(value, Mapping):
        raise ConfigError("pruning", "must be a mapping such as {warmup_epochs: 2, startup_trials: 3}, or true")
    unknown = sorted(set(value) - {"warmup_epochs", "startup_trials"})
    if unknown:
        raise ConfigError(f"pruning.{unknown[0]}", "unknown setting; known: warmup_epochs, startup_trials")
    settings = {"warmup_epochs": 2, "startup_trials": 3, **value}
    for name in ("warmup_epochs", "startup_trials"):
        settings[name] = setting(f"pruning.{name}", settings[name], int)
        if settings[name] < 0:
            raise ConfigError(f"pruning.{name}", f"must not be negative, not {settings[name]}")
    return settings


def _check_fixed(name: str, value: Any, task: str) -> Any:
    field_name = f"fixed.{name}"
    if name in RESERVED_TRAINING_ARGUMENTS:
        raise ConfigError(field_name, f"cannot be fixed: {RESERVED_TRAINING_ARGUMENTS[name]}")
    if name in PARAMETERS:
        check_parameter_name(name, task, field_name)
        if isinstance(value, list) and name not in ("betas", "layers", "embeddings"):
            raise ConfigError(field_name, "a fixed parameter takes one value; put alternatives in search_space")
        return checked_value(name, value, field_name)
    if name in TRAINING_ARGUMENTS:
        return value
    raise ConfigError(field_name, f"unknown parameter '{name}': not a search parameter nor a Flair training argument")
