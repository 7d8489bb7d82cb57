"""One trial of a search: train ``training_runs`` fresh models with one configuration, score them.

A :class:`TrialRunner` holds only plain settings and a way to get the corpus, and it writes its
own child run through explicit run ids; pickled into another process (a Spark task, say) it
runs the same trial the driver would have run.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping

import numpy as np

from ..adapters.embedding_cache import EmbeddingCache
from ..adapters.embeddings import EmbeddingFactory
from ..adapters.models import build_model, logged_values
from ..adapters.plugins import FrozenEmbeddingsInEval, MedianStoppingPlugin, MLflowLoggerPlugin
from ..adapters.threads import TrialThreads
from ..adapters.training import check_losses, quiet_flair, release_memory, train_model
from ..core.config import ExperimentConfig
from ..core.errors import ConfigError
from ..core.interrupts import Interrupted
from ..core.outcome import TrialOutcome, TrialState
from ..core.parameters import OptimizationValue, coerce_value
from ..core.rules import MedianStoppingRule
from ..store.tags import PRUNED_AT_TAG, PRUNED_TAG, STATUS_TAG, TASK_TAG, THREADS_TAG, TRIAL_NUMBER_TAG, VALS_TAG
from ..store.writer import RunWriter
from .hyperopt_adapter import split_key, vals_json

log = logging.getLogger("flair_mlflow")


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of one search shares, complete before the first trial; plain data so it pickles.

    Without ``parent_run_id`` a trial writes no run (a benchmark, a test of the training alone).
    """

    task: str
    label_type: str
    max_epochs: int
    training_runs: int
    optimization_value: str = "dev_score"
    multi_label: bool = False
    fixed: Mapping[str, Any] = field(default_factory=dict)
    parameter_names: tuple[str, ...] = ()
    seed: int | None = None
    evaluate_test: bool = False
    main_evaluation_metric: tuple[str, str] = ("micro avg", "f1-score")
    tracking_uri: str | None = None
    experiment_id: str | None = None
    parent_run_id: str | None = None
    quiet: bool = True
    embedding_cache_mb: float = 1024.0
    threads: int | str = "auto"  # torch threads per trial (see adapters.threads)
    parallelism: int = 1  # trials side by side: each probes at most its share of the cores

    @classmethod
    def from_config(cls, config: ExperimentConfig, **extra: Any) -> "TrialSettings":
        values = dict(
            task=config.task,
            label_type=config.label_type,
            max_epochs=config.max_epochs,
            training_runs=config.training_runs,
            optimization_value=config.optimization_value,
            multi_label=config.multi_label,
            fixed=dict(config.fixed),
            parameter_names=tuple(config.parameter_names),
            seed=config.seed,
            evaluate_test=config.evaluate_test,
            embedding_cache_mb=config.embedding_cache_mb,
            threads=config.threads,
            parallelism=config.parallelism,
        )
        return cls(**{**values, **extra})

    @property
    def objective(self) -> OptimizationValue:
        return OptimizationValue.parse(self.optimization_value)


def trial_params(sampled: Mapping[str, Any], fixed: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's real parameter values: sampled ones, each of its true type, then the fixed ones."""
    params = {name: coerce_value(name, value, f"search_space.{name}") for name, value in sampled.items()}
    for name, value in fixed.items():
        params.setdefault(name, value)
    return params


class TrialRunner:
    """Runs trials from their sampled parameters, in any process that can have the corpus.

    ``corpus_source`` is an :class:`ExperimentConfig` (the corpus is loaded in the process that
    runs the trial, once per process) or a Flair ``Corpus`` given through the Python API.
    ``stopping_rule`` is the search's median stopping rule (None: no pruning); the sequential
    search feeds it each finished trial. ``factory`` holds embeddings already built on this corpus
    (the search's checks built them), so they are not built again.
    """

    def __init__(
        self,
        settings: TrialSettings,
        corpus_source: Any,
        stopping_rule: MedianStoppingRule | None = None,
        factory: EmbeddingFactory | None = None,
    ) -> None:
        self.settings = settings
        self.corpus_source = corpus_source
        self.stopping_rule = stopping_rule
        if factory is not None:
            self.factory = factory  # the cached property's value: pickling drops it like a built one

    def __getstate__(self) -> dict[str, Any]:
        """What travels to another process: no frozen embeddings (rebuilt once there), and no corpus
        that process can load itself from the experiment."""
        state = dict(self.__dict__)
        dropped = ["factory", "cache"]
        if isinstance(self.corpus_source, ExperimentConfig):
            dropped += ["corpus", "label_dictionary"]
        for name in dropped:
            state.pop(name, None)
        return state

    # -- the corpus and shared resources, built on first use in the process that runs trials --------
    @cached_property
    def corpus(self):
        from ..adapters.corpora import check_corpus, for_trials, load_for_experiment

        source = self.corpus_source
        full = load_for_experiment(source) if isinstance(source, ExperimentConfig) else source
        check_corpus(full, self.settings.label_type)
        return for_trials(full, self.settings.evaluate_test)

    @cached_property
    def label_dictionary(self):
        return self.corpus.make_label_dictionary(self.settings.label_type, add_unk=False)

    @cached_property
    def factory(self) -> EmbeddingFactory:
        return EmbeddingFactory(self.corpus)

    @cached_property
    def cache(self) -> EmbeddingCache:
        return EmbeddingCache(self.settings.embedding_cache_mb)

    # -- one trial ---------------------------------------------------------------------------
    def logged_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        names = self.settings.parameter_names or list(params)
        return logged_values({name: params.get(name) for name in names})

    def run_suggested(self, sampled: Mapping[str, Any]) -> TrialOutcome:
        """The trial hyperopt suggested, in whichever process it runs: its number (trial id + 1) and
        hyperopt's record of the point come with it through the space (see :mod:`.hyperopt_adapter`)."""
        tid, vals, point = split_key(sampled)
        return self.run(tid + 1, point, tags={VALS_TAG: vals_json(vals)})

    def run(self, number: int, sampled: Mapping[str, Any], tags: Mapping[str, str] | None = None) -> TrialOutcome:
        """Trial ``number`` on the sampled parameters; a failure is an outcome, a signal or bad input raises."""
        started = time.time()
        params = trial_params(sampled, self.settings.fixed)
        outcome = TrialOutcome(number=number, params=params)
        writer = RunWriter(self.settings.tracking_uri) if self.settings.parent_run_id else None
        if writer is not None:
            tags = {TRIAL_NUMBER_TAG: str(number), TASK_TAG: self.settings.task, **(tags or {})}
            outcome.run_id = writer.create_child(
                self.settings.experiment_id, self.settings.parent_run_id, f"trial-{number:03d}", tags=tags
            )
            writer.log_params(outcome.run_id, self.logged_params(params), new_run=True)
        threads = TrialThreads(self.settings.threads, self.settings.parallelism)
        unsent: dict[str, float] = {}  # scores not yet sent: they go out with the run's last call
        try:
            with quiet_flair(self.settings.quiet), threads:
                self._train_and_score(number, params, outcome, writer, unsent, threads)
            if not math.isfinite(outcome.final_score):
                raise FloatingPointError(f"the {self.settings.objective.config_name} is not a number (NaN)")
        except ConfigError:
            if writer is not None:
                writer.close(outcome.run_id, TrialState.FAILED.run_status, metrics=unsent)
            raise
        except (KeyboardInterrupt, Interrupted):
            if writer is not None:
                killed = {STATUS_TAG: TrialState.KILLED.value}
                writer.close(outcome.run_id, TrialState.KILLED.run_status, killed, unsent)
            raise
        except Exception as error:  # the trial fails; the search goes on
            outcome.status = TrialState.FAILED
            outcome.error = f"{type(error).__name__}: {error}"
            log.warning("trial %d failed: %s", number, outcome.error)
            release_memory()
            if writer is not None:
                writer.fail(outcome.run_id, type(error).__name__, error, traceback.format_exc(), unsent)
        else:
            if writer is not None:
                end_tags = {THREADS_TAG: threads.chosen}
                if outcome.pruned:
                    end_tags.update({PRUNED_TAG: "true", PRUNED_AT_TAG: outcome.pruned_at})
                writer.close(outcome.run_id, outcome.status.run_status, end_tags, unsent)
        outcome.duration_s = time.time() - started
        return outcome

    def _train_and_score(
        self,
        number: int,
        params: dict[str, Any],
        outcome: TrialOutcome,
        writer: RunWriter | None,
        unsent: dict[str, float],
        threads: TrialThreads,
    ) -> None:
        """Train and score into ``outcome``; each training run's score and the trial's totals wait in
        ``unsent`` for the call that ends the run (one call per trial, not one per training run)."""
        test_scores = self._training_runs(number, params, outcome, writer, unsent, threads)
        outcome.settle_scores(maximise=self.settings.objective is OptimizationValue.DEV_SCORE)
        if test_scores:
            outcome.test_score = float(np.mean(test_scores))
        if math.isfinite(outcome.final_score):
            unsent.update(outcome.score_metrics())

    def _training_runs(
        self,
        number: int,
        params: dict[str, Any],
        outcome: TrialOutcome,
        writer: RunWriter | None,
        unsent: dict[str, float],
        threads: TrialThreads,
    ) -> list[float]:
        """Train ``training_runs`` fresh models into ``outcome``; returns their test scores (if asked for).

        Epoch metrics are logged as they come; each run's score waits in ``unsent``.
        """
        import flair

        settings = self.settings
        test_scores: list[float] = []
        history_key = settings.objective.config_name  # the plugin's name for the optimised value
        labels = self.label_dictionary  # built before seeding: making it draws from the random generators
        for index in range(settings.training_runs):
            if settings.seed is not None:
                flair.set_seed(settings.seed + 1000 * number + index)
            model = build_model(settings.task, params, settings.label_type, labels, self.factory, settings.multi_label)
            self.cache.before_training_run(model, self.corpus, self.factory, threads.candidates)
            logger, stopper = self._plugins(outcome, writer, index)
            with tempfile.TemporaryDirectory(prefix="flair-mlflow-trial-") as base_path:
                result = train_model(
                    model,
                    self.corpus,
                    settings.task,
                    params,
                    base_path,
                    max_epochs=settings.max_epochs,
                    plugins=[logger, FrozenEmbeddingsInEval(self.factory.frozen_modules())]
                    + ([stopper] if stopper is not None else [])
                    + threads.plugins(),
                    main_evaluation_metric=settings.main_evaluation_metric,
                )
            run_score = outcome.add_training_run(logger.history[history_key], logger.history["dev_score"])
            unsent[f"run_{index + 1}/score"] = run_score
            if settings.evaluate_test and result.get("test_score") is not None:
                test_scores.append(float(result["test_score"]))
                unsent[f"run_{index + 1}/test_score"] = test_scores[-1]
            self.cache.after_training_run(self.factory, self.corpus)
            threads.after_training_run()
            del model
            check_losses(logger.history, index + 1)
            if stopper is not None and stopper.pruned_at is not None:
                outcome.pruned_at = stopper.pruned_at
                outcome.status = TrialState.PRUNED
                break  # the trial's other training runs would be pruned the same way
            if not math.isfinite(run_score):
                break
        return test_scores

    def _plugins(
        self, outcome: TrialOutcome, writer: RunWriter | None, index: int
    ) -> tuple[MLflowLoggerPlugin, MedianStoppingPlugin | None]:
        """Training run ``index``'s epoch logger (which also keeps the history) and its pruning plugin, if any."""
        logger = MLflowLoggerPlugin(
            run_id=outcome.run_id,
            prefix=f"run_{index + 1}/",
            log_params=False,
            client=writer.client if writer else None,
            enabled=writer is not None,
        )
        if self.stopping_rule is None:
            return logger, None
        return logger, MedianStoppingPlugin(self.stopping_rule, self.settings.max_epochs)
