"""A hyperopt search whose trials are nested MLflow runs under one parent run per search.

Order matters here: everything that can be wrong with the input (settings, search space,
corpus, label type, embeddings, Spark) is checked before the first run is created, so a bad
experiment leaves nothing half-written in the tracking store. Then the parent run, then the
trials (:mod:`.loop`), then the result.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..adapters.training import quiet_flair
from ..core.collector import start_up, thaw
from ..core.config import ExperimentConfig
from ..core.errors import ConfigError
from ..core.outcome import TrialOutcome, TrialState, best_outcome
from ..core.parameters import OptimizationValue
from ..core.rules import LearningCheck, MedianStoppingRule
from ..store.runs import connect, get_search_run
from ..store.writer import RunWriter
from .checks import check_embeddings, check_first_configuration
from .hyperopt_adapter import algorithm_suggest, restored_trials
from .loop import SequentialExecutor, run_trials, score_name
from .lr_from import learning_rate_from_run
from .parent import ParentRun
from .recorded import RecordedExperiment, record_experiment
from .resume import PreviousTrials, check_same_search, experiment_from_run, read_previous_trials
from .trial import TrialRunner, TrialSettings


@dataclass
class SearchResult:
    """What a finished search found, with the ids to find it again in MLflow."""

    parent_run_id: str
    experiment_id: str
    outcomes: list[TrialOutcome] = field(default_factory=list)
    score_name: str = "score"  # what final_score is: "dev micro-F1", "dev loss", ...
    tracking_uri: str = ""  # the store the runs are in
    #: trains, tests and registers the best configuration; attached by the faces (``flair_mlflow.run_search``,
    #: the selectors), since a search never imports register
    registrar: Callable[..., Any] | None = field(default=None, repr=False, compare=False)
    learning_check: LearningCheck | None = field(default=None, repr=False, compare=False)

    @property
    def warning(self) -> str | None:
        """What the parent's ``flair_mlflow.warning`` tag says: the trials learnt nothing (None: they did)."""
        return self.learning_check.warning(self.outcomes) if self.learning_check is not None else None

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
    def failed(self) -> int:
        return sum(1 for o in self.outcomes if not o.ok)

    def register_best(self, name: str | None = None, **options: Any) -> Any:
        """Train the best configuration for good, test it once and register it as ``name``: the options
        of ``flair_mlflow.register_best``. A search started from Python trains the objects it used."""
        if self.registrar is None:
            raise RuntimeError(
                "this result was made without registration; use flair_mlflow.run_search or a ParamSelector, "
                f"or flair_mlflow.register_best({self.parent_run_id!r}, name)"
            )
        return self.registrar(self, name, **options)


class SearchFailed(Exception):
    """Every trial of a search failed; the message says where to look."""


@dataclass(frozen=True)
class PreparedSearch:
    """A search checked and ready to start; nothing is written yet."""

    config: ExperimentConfig  # with the learning-rate range of ``lr_from`` applied
    space: dict[str, Any]  # hyperopt's space
    writer: RunWriter
    corpus_source: Any  # the ExperimentConfig (loaded once per process) or a corpus given in Python
    lr_source: Mapping[str, Any]  # where the learning-rate range came from (lr_from), for the parent run
    recorded: RecordedExperiment  # the experiment as a file, for the parent run (register and --resume read it)
    factory: Any = None  # the embeddings the checks built, handed to the trials so each is built once
    learning_check: LearningCheck | None = None  # what the trials' dev scores must beat

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Every parameter a trial logs: the searched ones, then the fixed ones."""
        return tuple(self.space) + tuple(n for n in self.config.fixed if n not in self.space)


class Search:
    """One search: validated input, a parent run, the trials, and the reports at the end.

    Use :func:`run_search` for the common case; this class exists for callers (the tutorial's
    selectors, the CLI) that supply their own corpus or hyperopt space. ``resume`` is the parent
    run id of a search to continue.
    """

    def __init__(
        self,
        config: ExperimentConfig,
        *,
        corpus: Any = None,
        space: Mapping[str, Any] | None = None,
        tracking_uri: str | None = None,
        config_path: str | Path | None = None,
        run_name: str | None = None,
        base_path: str | Path | None = None,
        show_progress: bool = True,
        quiet: bool = True,
        main_evaluation_metric: tuple[str, str] = ("micro avg", "f1-score"),
        resume: str | None = None,
    ) -> None:
        self.config = config
        self.corpus = corpus
        self.space = dict(space) if space is not None else None
        self.tracking_uri = tracking_uri
        self.config_path = Path(config_path) if config_path else None
        self.run_name = run_name
        self.base_path = Path(base_path) if base_path else None
        self.show_progress = show_progress
        self.quiet = quiet
        self.main_evaluation_metric = main_evaluation_metric
        self.resume = resume

    def prepare(self) -> PreparedSearch:
        """Validate everything and load the corpus; raises ConfigError and creates nothing."""
        from ..adapters.corpora import check_corpus, for_trials, load_for_experiment
        from ..adapters.corpus_content import learning_check

        writer = connect(self.tracking_uri)
        config, lr_source, space = self.config, {}, self.space
        if config.lr_from:
            config, lr_source = learning_rate_from_run(config, writer.client)
            if space is not None:  # a space given in Python: its learning rate is replaced too
                space = {**space, "learning_rate": config.build_space().get_search_space()["learning_rate"]}
        if space is None:
            space = config.build_space().get_search_space()
        if not space:
            raise ConfigError("search_space", "is empty: name at least one parameter to search")
        with quiet_flair(self.quiet):
            corpus = self.corpus if self.corpus is not None else load_for_experiment(config)
            check_corpus(corpus, config.label_type)
            factory = None
            if self.corpus is None:
                trial_corpus = for_trials(corpus, config.evaluate_test)
                factory = check_embeddings(config, trial_corpus)
                check_first_configuration(config, trial_corpus, factory)
        check = learning_check(corpus, config.label_type, config.max_epochs)
        corpus_source = config if self.corpus is None else self.corpus
        recorded = record_experiment(config, space if self.space is not None else None, self.corpus)
        return PreparedSearch(config, space, writer, corpus_source, lr_source, recorded, factory, check)

    def run(self) -> SearchResult:
        try:
            with start_up():  # the imports, the store and the corpus: see core.collector
                executor, parent, search, done = self._start()
            suggest = algorithm_suggest(search.config.algorithm)
            with quiet_flair(self.quiet):
                outcomes = run_trials(executor, parent, search.space, suggest, search.config, done=done)
        finally:
            thaw()
        result = _result(parent.run_id, parent.experiment_id, outcomes)
        result.score_name = score_name(search.config.objective, self.main_evaluation_metric)
        result.tracking_uri = search.writer.tracking_uri
        result.learning_check = search.learning_check
        return result

    def _start(self) -> tuple[Any, ParentRun, PreparedSearch, int]:
        """Everything before the first trial: Spark, the checked corpus, the parent run, the executor, and
        how many trials a resumed search has done."""
        spark = None
        if self.config.parallelism > 1:  # Spark starts, and its workers warm up, while this process prepares
            from .distributed import start_spark

            spark = start_spark(self.config, self.tracking_uri, self.resume, warm=self.corpus is None)
        search = self.prepare()
        config = search.config
        previous = self._previous_trials(search) if self.resume else None  # only reads; refuses a mismatch
        if previous is not None:
            parent = ParentRun.reopen(
                search.writer, config, search.recorded, previous, parameter_names=search.parameter_names
            )
        else:
            parent = ParentRun.start(
                search.writer,
                config,
                search.recorded,
                run_name=self.run_name,
                config_path=self.config_path,
                lr_source=search.lr_source,
                parameter_names=search.parameter_names,
                base_path=self.base_path,
            )
        settings = TrialSettings.from_config(
            config,
            tracking_uri=search.writer.tracking_uri,
            experiment_id=parent.experiment_id,
            parent_run_id=parent.run_id,
            parameter_names=search.parameter_names,
            quiet=self.quiet,
            main_evaluation_metric=self.main_evaluation_metric,
        )
        parent = dataclasses.replace(parent, learning_check=search.learning_check)
        runner = TrialRunner(settings, search.corpus_source, _stopping_rule(config, previous), factory=search.factory)
        restored = previous.outcomes if previous is not None else []
        if spark is not None:
            from .distributed import SparkExecutor

            executor = SparkExecutor(spark.trials(), runner, parent, search.space, self.show_progress)
        else:
            trials = (
                previous.hyperopt_trials(search.space) if previous is not None else restored_trials(search.space, [])
            )
            executor = SequentialExecutor(runner, parent, trials, restored, config.max_evals, self.show_progress)
        return executor, parent, search, len(restored)

    def _previous_trials(self, search: PreparedSearch) -> PreviousTrials:
        """The search to continue and its finished trials, read before anything is written."""
        client = search.writer.client
        parent = get_search_run(client, str(self.resume), "resume")
        check_same_search(parent, search.recorded.config or search.config)
        history_key = search.config.objective.config_name if search.config.pruning is not None else None
        return read_previous_trials(client, parent, search.space, search.config.fixed, history_key)


def _stopping_rule(config: ExperimentConfig, previous: PreviousTrials | None) -> MedianStoppingRule | None:
    """The median stopping rule, if the search prunes, knowing a resumed search's finished trials."""
    if config.pruning is None:
        return None
    rule = MedianStoppingRule(maximise=config.objective is OptimizationValue.DEV_SCORE, **config.pruning)
    for earlier in previous.outcomes if previous is not None else []:
        if earlier.status is TrialState.COMPLETE:
            rule.record(earlier.epoch_values)
    return rule


def _result(parent_run_id: str, experiment_id: str, outcomes: list[TrialOutcome]) -> SearchResult:
    result = SearchResult(parent_run_id, experiment_id, list(outcomes))
    if result.best is None:
        errors = [o.error for o in outcomes if o.error]
        why = f" (last error: {' '.join(errors[-1].split())[:300]})" if errors else ""
        raise SearchFailed(f"all {len(outcomes)} trials failed{why}; see the FAILED child runs of {parent_run_id}")
    return result


def run_search(
    config: ExperimentConfig | str | Path | None,
    *,
    overrides: Mapping[str, Any] | None = None,
    tracking_uri: str | None = None,
    run_name: str | None = None,
    show_progress: bool = True,
    quiet: bool = True,
    resume: str | None = None,
) -> SearchResult:
    """Run the search an experiment file describes; the Python twin of ``flair-mlflow tune``.

    ``resume`` is the parent run id of a search to continue; without ``config`` its experiment
    is read from that run's ``experiment_resolved.yaml``.
    """
    config_path = None
    if config is None:
        if not resume:
            raise ConfigError("config", "give an experiment file, or --resume <parent run id> to continue a search")
        config = experiment_from_run(connect(tracking_uri).client, resume, overrides)
    elif not isinstance(config, ExperimentConfig):
        config_path = Path(config)
        config = ExperimentConfig.from_file(config_path, overrides)
    return Search(
        config,
        tracking_uri=tracking_uri,
        config_path=config_path,
        run_name=run_name,
        show_progress=show_progress,
        quiet=quiet,
        resume=resume,
    ).run()


__all__ = ["Search", "SearchFailed", "SearchResult", "run_search"]
