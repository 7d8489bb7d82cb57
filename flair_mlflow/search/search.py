"""A hyperopt search of nested MLflow runs; all input is checked before the first run, so bad input writes nothing."""

from __future__ import annotations

import math
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..config import ExperimentConfig
from ..config.expressions import options_of
from ..corpus.content import constant_predictor
from ..corpus.load import check_corpus, for_trials, load_for_experiment
from ..embeddings.factory import EmbeddingFactory
from ..errors import ConfigError, SearchFailed, one_line
from ..register.train import register_best
from ..tracking.search_runs import get_search_run, recorded_experiment
from ..tracking.store import connect
from ..tracking.tags import CHECKPOINTS_TAG, LR_WARNING_TAG
from ..tracking.writer import RunWriter, sqlite_path
from ..training.models import training_arguments, uses_fine_tuning
from ..training.train import check_configuration
from .hyperopt_internals import restored_trials
from .kept_models import KeptModels
from .loop import SequentialExecutor, run_trials, score_name
from .outcome import TrialOutcome, TrialState, best_outcome, rung_summary
from .parent import ParentRun
from .recorded import RecordedExperiment, record_experiment
from .resume import PreviousTrials, check_same_search, read_previous_trials
from .rules import FLAIR_MIN_LEARNING_RATE, LR_RANGE_FACTOR, MIN_LR_HEADROOM, LearningCheck, MedianStoppingRule
from .rungs import RungExecutor
from .schedulers import SuccessiveHalving
from .space import algorithm_suggest, hyperopt_space
from .trial import TrialRunner


@dataclass
class SearchResult:
    """What a finished search found, with the ids to find it again in MLflow."""

    parent_run_id: str
    experiment_id: str
    outcomes: list[TrialOutcome] = field(default_factory=list)
    score_name: str = "score"  # what final_score is: "dev micro-F1", "dev loss", ...
    tracking_uri: str = ""
    learning_check: LearningCheck | None = field(default=None, repr=False)
    config: ExperimentConfig | None = field(default=None, repr=False)
    corpus: Any = field(default=None, repr=False)  # a corpus given in Python, which registering trains on

    @property
    def best(self) -> TrialOutcome | None:
        return best_outcome(self.outcomes)

    @property
    def best_params(self) -> dict[str, Any]:
        return dict(self.best.params) if self.best else {}

    @property
    def best_score(self) -> float:
        return self.best.final_score if self.best else math.nan

    @property
    def rungs(self) -> dict[int, tuple[int, float]]:
        """A multi-fidelity search's rungs, by epochs: the trials that ran each and the best score there (else {})."""
        maximise = self.config is None or self.config.maximise
        return rung_summary(self.outcomes, maximise)

    @property
    def failed(self) -> int:
        return sum(1 for o in self.outcomes if not o.ok)

    @property
    def experiment_name(self) -> str:
        """The search's experiment, which also names a model registered from it."""
        try:
            return RunWriter(self.tracking_uri).client.get_experiment(self.experiment_id).name
        except Exception:  # only a suggestion: a summary must not fail for it
            return "MODEL_NAME"

    @property
    def warning(self) -> str | None:
        """What the parent's ``flair_mlflow.warning`` tag says: the trials learnt nothing (None: they did)."""
        return self.learning_check.warning(self.outcomes) if self.learning_check else None

    def register_best(self, name: str | None = None, **options: Any) -> Any:
        """``register_best`` of this search; one started from Python trains the corpus and objects it used."""
        given: dict[str, Any] = {"tracking_uri": self.tracking_uri}
        if self.corpus is not None:
            given.update(corpus=self.corpus, config=self.config, best_objects=self.best_params)
        return register_best(self.parent_run_id, name, **{**given, **options})


@dataclass(frozen=True)
class PreparedSearch:
    """A search checked and ready to start; nothing is written yet."""

    config: ExperimentConfig  # with the learning-rate range of ``lr_from`` applied
    writer: RunWriter
    space: dict[str, Any]  # hyperopt's
    recorded: RecordedExperiment  # the experiment as a file (register and --resume read it)
    factory: Any  # the embeddings the checks built, handed to the trials so each is built once
    learning_check: LearningCheck  # what the trials' dev scores must beat
    lr_source: dict[str, Any] = field(default_factory=dict)  # where the learning-rate range came from
    previous: PreviousTrials | None = None  # a resumed search's trials


def learning_rate_from_run(config: ExperimentConfig, client: Any) -> tuple[ExperimentConfig, dict[str, Any]]:
    """``config`` searching ``learning_rate`` a decade either side of run ``lr_from``'s suggestion, and its source."""
    try:
        run = client.get_run(config.lr_from)
    except Exception:
        raise ConfigError("lr_from", f"no run '{config.lr_from}' in the tracking store") from None
    suggested = run.data.metrics.get("suggested_lr", math.nan)
    if not suggested > 0 or not math.isfinite(suggested):
        raise ConfigError("lr_from", f"run '{config.lr_from}' is not a learning-rate finder run (no suggested_lr)")
    low, high = suggested / LR_RANGE_FACTOR, suggested * LR_RANGE_FACTOR
    fixed = {k: v for k, v in config.fixed.items() if k != "learning_rate"}
    if not uses_fine_tuning(config.task, config.representative_params()):  # fine_tune does not anneal
        floor = float(fixed.get("min_learning_rate", FLAIR_MIN_LEARNING_RATE))  # lowered, never raised
        fixed["min_learning_rate"] = min(floor, low * MIN_LR_HEADROOM)
    space = {**config.search_space, "learning_rate": {"loguniform": {"low": math.log(low), "high": math.log(high)}}}
    source = {"lr_from": config.lr_from, "lr_from.suggested_lr": suggested}
    source["lr_from.range"] = f"{low:.3g}..{high:.3g} (log-uniform)"
    source["lr_from.min_learning_rate"] = fixed.get("min_learning_rate", "")
    if run.data.tags.get(LR_WARNING_TAG):
        source["lr_from.warning"] = run.data.tags[LR_WARNING_TAG]
    return config.replaced(search_space=space, fixed=fixed), source


def print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def existing(writer: RunWriter, field: str) -> Any:
    """``writer``'s client where its store exists: a run to read back cannot be in a store not yet created."""
    path = sqlite_path(writer.tracking_uri)
    if path is not None and not path.is_file():
        raise ConfigError(field, f"the tracking store '{writer.tracking_uri}' does not exist, so it has no such run")
    return writer.client


# the checks that need Flair, each ConfigError on a bare name pointing at where it is set (``fixed.momentum``)
def _options(config: ExperimentConfig, name: str) -> list[Any]:
    spec = config.search_space.get(name)
    return (options_of(spec) or []) if spec else []


def check_with_flair(config: ExperimentConfig, corpus: Any) -> EmbeddingFactory:
    """Each embedding built once (the trials reuse it) and the first configuration set up untrained, before any run."""
    factory = EmbeddingFactory(corpus)
    for name in ("embeddings", "transformer_model", "document_embeddings"):
        values = ([config.fixed[name]] if name in config.fixed else []) + _options(config, name)
        for value in values:
            with config.named_where_set():
                factory.check(value, name, config.task, dict(config.fixed))
    params = config.representative_params()
    with config.named_where_set():
        try:
            optimizers = _options(config, "optimizer")
            check_configuration(config.task, params, corpus, config.label_type, factory, config.multi_label, optimizers)
        except ConfigError:
            raise
        except Exception as error:  # Flair or torch refusing the configuration
            raise ConfigError("search_space", f"its first configuration cannot be set up: {one_line(error)}") from error
        for fine_tune in _options(config, "fine_tune"):  # train and fine_tune take their own arguments
            training_arguments(config.task, {**params, "fine_tune": fine_tune})
    return factory


class Search:
    """One search from what the faces supply; ``resume``: a parent run id to continue; ``progress``: gets each line."""

    def __init__(self, config: ExperimentConfig, *, corpus: Any = None, tracking_uri: str | None = None, config_path: str | Path | None = None,
                 run_name: str | None = None, base_path: str | Path | None = None,
                 progress: Callable[[str], None] | None = print_progress, resume: str | None = None) -> None:  # fmt: skip
        self.config, self.corpus, self.tracking_uri, self.resume = config, corpus, tracking_uri, resume
        self.config_path, self.run_name, self.progress = config_path, run_name, progress
        self.base_path = Path(base_path) if base_path else None

    def prepare(self) -> PreparedSearch:
        """Check everything and load the corpus; raises ConfigError and writes nothing."""
        writer, config, lr_source, previous = connect(self.tracking_uri), self.config, {}, None
        if config.parallelism > 1:
            from .spark import check_parallel

            check_parallel(config, writer.tracking_uri, self.resume)
        if config.lr_from:
            config, lr_source = learning_rate_from_run(config, existing(writer, "lr_from"))
        corpus = self.corpus if self.corpus is not None else load_for_experiment(config)
        check_corpus(corpus, config.label_type)
        factory = check_with_flair(config, for_trials(corpus, config.evaluate_test))
        baseline, baseline_name = constant_predictor(corpus, config.label_type)
        check = LearningCheck(baseline, baseline_name, config.max_epochs, config.label_type, len(corpus.train))
        recorded, space = record_experiment(config, self.corpus), hyperopt_space(config.search_space)
        if self.resume:
            client = existing(writer, "resume")
            parent = get_search_run(client, str(self.resume), "resume")
            check_same_search(parent, recorded.config or config)
            history = config.optimization_value if config.pruning is not None else None
            previous = read_previous_trials(client, parent, space, config.fixed, history)
        return PreparedSearch(config, writer, space, recorded, factory, check, lr_source, previous)

    def run(self) -> SearchResult:
        prepared = self.prepare()
        config, writer, previous, space = prepared.config, prepared.writer, prepared.previous, prepared.space
        names = tuple(config.parameter_names)
        options = dict(parameter_names=names, base_path=self.base_path, learning_check=prepared.learning_check)
        if previous is not None:
            parent = ParentRun.reopen(writer, config, prepared.recorded, previous, **options)
        else:
            options.update(run_name=self.run_name, config_path=self.config_path, lr_source=prepared.lr_source)
            parent = ParentRun.start(writer, config, prepared.recorded, **options)
        runner = TrialRunner(
            config,
            tracking_uri=writer.tracking_uri,
            experiment_id=parent.experiment_id,
            parent_run_id=parent.run_id,
            parameter_names=names,
            corpus=self.corpus,
            stopping_rule=_stopping_rule(config, previous),
            factory=prepared.factory,
        )
        writer.log_inputs(parent.run_id, runner.dataset_inputs)
        restored, kept = previous.outcomes if previous is not None else [], KeptModels(writer, config.keep_models)
        if config.scheduled:
            runner.checkpoints = checkpoint_folder(config, parent.run_id)
            writer.set_tags(parent.run_id, {CHECKPOINTS_TAG: runner.checkpoints})
        executor = self._executor(config, runner, parent, space, previous, kept)
        outcomes = run_trials(executor, parent, space, algorithm_suggest(config.algorithm), config, done=len(restored))
        name = score_name(config.objective, config.main_evaluation_metric)
        ids = (parent.run_id, parent.experiment_id)
        result = SearchResult(*ids, outcomes, name, writer.tracking_uri, prepared.learning_check, config, self.corpus)
        if result.best is None:
            errors = [o.error for o in outcomes if o.error]
            why = f" (last error: {one_line(errors[-1])})" if errors else ""
            raise SearchFailed(f"all {len(outcomes)} trials failed{why}; see the FAILED child runs of {parent.run_id}")
        return result

    def _executor(self, config: ExperimentConfig, runner: TrialRunner, parent: ParentRun, space: dict[str, Any],
                  previous: PreviousTrials | None, kept: KeptModels) -> Any:  # fmt: skip
        """What runs the trials: ``fmin`` here, or the driver's own loop of jobs (on Spark, or a scheduler's rungs;
        a resumed search's rungs rebuilt)."""
        restored = previous.outcomes if previous is not None else []
        trials = previous.hyperopt_trials(space) if previous is not None else restored_trials(space, [])
        if config.parallelism == 1 and not config.scheduled:
            return SequentialExecutor(runner, parent, trials, restored, self.progress, kept)
        args = (successive_halving(config), space, runner, parent, trials, restored, self.progress, kept)
        if config.parallelism > 1:
            from .spark import SparkExecutor, spark_session

            executor: RungExecutor = SparkExecutor(spark_session(config), *args)
        else:
            executor = RungExecutor(*args)
        executor.restore(previous.vals if previous is not None else [])
        return executor


def successive_halving(config: ExperimentConfig) -> SuccessiveHalving:
    """The scheduler ``config.scheduler`` names: ASHA is one bracket; HyperBand all it can have, or ``brackets``;
    without one, a single rung of ``max_epochs`` (every trial whole, the algorithm learning from all of them)."""
    scheduler = config.scheduler
    brackets = 1 if scheduler.type in ("asha", "none") else scheduler.brackets or config.max_epochs
    first = scheduler.min_epochs if config.scheduled else config.max_epochs
    rungs = (first, scheduler.reduction_factor, config.max_epochs)
    return SuccessiveHalving(*rungs, brackets, config.max_evals)


def checkpoint_folder(config: ExperimentConfig, parent_run_id: str) -> Path:
    """Where a multi-fidelity search's paused trials wait: on local disk, as trials read them back at once (an
    artefact upload per rung would cost more than a short rung trains), one folder per search."""
    root = Path(config.scheduler.checkpoint_dir or Path(tempfile.gettempdir()) / "flair-mlflow-checkpoints")
    return root / parent_run_id


def _stopping_rule(config: ExperimentConfig, previous: PreviousTrials | None) -> MedianStoppingRule | None:
    """The median stopping rule, if the search prunes, knowing a resumed search's finished trials."""
    if config.pruning is None:
        return None
    rule = MedianStoppingRule(maximise=config.maximise, **config.pruning.model_dump())
    for earlier in previous.outcomes if previous is not None else []:
        if earlier.status is TrialState.COMPLETE:
            rule.record(earlier.epoch_values)
    return rule


def run_search(config: ExperimentConfig | str | Path | None, *, overrides: Mapping[str, Any] | None = None, tracking_uri: str | None = None,
               run_name: str | None = None, show_progress: bool = True, progress: Callable[[str], None] | None = None,
               resume: str | None = None) -> SearchResult:  # fmt: skip
    """The Python twin of ``flair-mlflow tune``; ``resume``: a parent run id to continue (without ``config``, with the
    experiment it recorded); ``progress``: where each trial's line goes (default: stderr if ``show_progress``)."""
    config_path = None
    if config is None:
        if not resume:
            raise ConfigError("config", "give an experiment file, or --resume <parent run id> to continue a search")
        client = existing(connect(tracking_uri), "resume")
        config = recorded_experiment(client, get_search_run(client, resume, "resume"), "resume", overrides)
    elif not isinstance(config, ExperimentConfig):
        config_path, config = Path(config), ExperimentConfig.from_file(config, overrides)
    progress = progress or (print_progress if show_progress else None)
    return Search(
        config, tracking_uri=tracking_uri, config_path=config_path, run_name=run_name, progress=progress, resume=resume
    ).run()
