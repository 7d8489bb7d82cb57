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
from typing import Any

import numpy as np

from ..adapters.embedding_cache import EmbeddingCache
from ..adapters.embeddings import EmbeddingFactory
from ..adapters.models import build_model, logged_values
from ..adapters.plugins import FrozenEmbeddingsInEval, MedianStoppingPlugin, MLflowLoggerPlugin
from ..adapters.training import check_losses, quiet_flair, release_memory, train_model
from ..core.config import ExperimentConfig
from ..core.errors import ConfigError
from ..core.interrupts import Interrupted
from ..core.outcome import TrialOutcome, TrialState, score_of_training_run
from ..core.parameters import OptimizationValue, coerce_value
from ..core.rules import MedianStoppingRule
from ..store.tags import PRUNED_AT_TAG, PRUNED_TAG, STATUS_TAG, TASK_TAG, TRIAL_NUMBER_TAG
from ..store.writer import RunWriter

log = logging.getLogger("flair_mlflow")

@dataclass
class TrialSettings:
    """What every trial of one search shares; plain data so it pickles."""

    task: str
    label_type: str
    max_epochs: int
    training_runs: int
    optimization_value: str = "dev_score"
    multi_label: bool = False
    fixed: dict[str, Any] = field(default_factory=dict)
    parameter_names: list[str] = field(default_factory=list)
    seed: int | None = None
    evaluate_test: bool = False
    main_evaluation_metric: tuple[str, str] = ("micro avg", "f1-score")
    tracking_uri: str | None = None
    experiment_id: str | None = None
    parent_run_id: str | None = None
    quiet: bool = True
    embedding_cache_mb: float = 1024.0

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
            parameter_names=config.parameter_names,
            seed=config.seed,
            evaluate_test=config.evaluate_test,
            embedding_cache_mb=config.embedding_cache_mb,
        )
        return cls(**{**values, **extra})

    @property
    def objective(self) -> OptimizationValue:
        return OptimizationValue.parse(self.optimization_value)


class TrialRunner:
    """Runs trials from their sampled parameters; callable wherever the corpus can be had.

    ``corpus_source`` is an :class:`ExperimentConfig` (the corpus is loaded in the process that
    runs the trial, once per process) or a Flair ``Corpus`` given through the Python API.
    """

    def __init__(self, settings: TrialSettings, corpus_source: Any) -> None:
        self.settings = settings
        self.corpus_source = corpus_source
        self._corpus = None
        self._label_dictionary = None
        self._factory: EmbeddingFactory | None = None
        self._cache: EmbeddingCache | None = None
        #: the search's median stopping rule, fed by the driver after each trial; None: no pruning
        self.stopping_rule: MedianStoppingRule | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if isinstance(self.corpus_source, ExperimentConfig):
            state.update(_corpus=None, _label_dictionary=None)
        state["_factory"] = None  # frozen embeddings are rebuilt once in the receiving process
        state["_cache"] = None
        return state

    # -- the corpus and shared resources ------------------------------------------------------
    @property
    def corpus(self):
        if self._corpus is None:
            from ..adapters.corpora import check_corpus, load_for_experiment, without_test

            if isinstance(self.corpus_source, ExperimentConfig):
                full = load_for_experiment(self.corpus_source)
            else:
                full = self.corpus_source
            check_corpus(full, self.settings.label_type)
            self._corpus = full if self.settings.evaluate_test else without_test(full)
        return self._corpus

    @property
    def label_dictionary(self):
        if self._label_dictionary is None:
            self._label_dictionary = self.corpus.make_label_dictionary(self.settings.label_type, add_unk=False)
        return self._label_dictionary

    @property
    def factory(self) -> EmbeddingFactory:
        if self._factory is None:
            self._factory = EmbeddingFactory(self.corpus)
        return self._factory

    @property
    def cache(self) -> EmbeddingCache:
        if self._cache is None:
            self._cache = EmbeddingCache(self.settings.embedding_cache_mb)
        return self._cache

    # -- one trial ---------------------------------------------------------------------------
    def trial_params(self, sampled: dict[str, Any]) -> dict[str, Any]:
        """The trial's real parameter values: fixed ones, then sampled ones, each of its true type."""
        params = {name: coerce_value(name, value, f"search_space.{name}") for name, value in sampled.items()}
        for name, value in self.settings.fixed.items():
            params.setdefault(name, value)
        return params

    def logged_params(self, params: dict[str, Any]) -> dict[str, Any]:
        names = self.settings.parameter_names or list(params)
        return logged_values({name: params.get(name) for name in names})

    def __call__(self, number: int, sampled: dict[str, Any]) -> TrialOutcome:
        return self.run(number, sampled)

    def run(self, number: int, sampled: dict[str, Any], tags: dict[str, str] | None = None) -> TrialOutcome:
        """One trial under ``number``; 0 means "numbered later" (a Spark worker, which hyperopt does not
        tell its trial id): the run is named ``trial-pending`` and carries no trial-number tag."""
        started = time.time()
        params = self.trial_params(sampled)
        outcome = TrialOutcome(number=number, params=params)
        writer = RunWriter(self.settings.tracking_uri) if self.settings.parent_run_id else None
        if writer is not None:
            outcome.run_id = writer.create_child(
                self.settings.experiment_id,
                self.settings.parent_run_id,
                f"trial-{number:03d}" if number else "trial-pending",
                tags={**({TRIAL_NUMBER_TAG: str(number)} if number else {}), TASK_TAG: self.settings.task, **(tags or {})},
            )
            writer.log_params(outcome.run_id, self.logged_params(params), new_run=True)
        try:
            with quiet_flair(self.settings.quiet):
                self._train_and_score(number, params, outcome, writer)
            if not math.isfinite(outcome.final_score):
                raise FloatingPointError(f"the {self.settings.objective.config_name} is not a number (NaN)")
        except ConfigError:
            if writer is not None:
                writer.end(outcome.run_id, "FAILED")
            raise
        except (KeyboardInterrupt, Interrupted):
            if writer is not None:
                writer.set_tags(outcome.run_id, {STATUS_TAG: TrialState.KILLED.value})
                writer.end(outcome.run_id, "KILLED")
            raise
        except Exception as error:  # the trial fails; the search goes on
            outcome.status = TrialState.FAILED
            outcome.error = f"{type(error).__name__}: {error}"
            log.warning("trial %d failed: %s", number, outcome.error)
            release_memory()
            if writer is not None:
                writer.fail(outcome.run_id, type(error).__name__, error, traceback.format_exc())
        else:
            if writer is not None:
                if outcome.pruned:
                    writer.set_tags(outcome.run_id, {PRUNED_TAG: "true", PRUNED_AT_TAG: outcome.pruned_at})
                writer.end(outcome.run_id, "FINISHED")
        outcome.duration_s = time.time() - started
        return outcome

    def _train_and_score(self, number: int, params: dict[str, Any], outcome: TrialOutcome,
                         writer: RunWriter | None) -> None:  # fmt: skip
        objective = self.settings.objective
        # each training run's score and the trial's totals go out in one batch at the end (or when
        # the trial fails): one call per trial instead of one per training run plus one
        unsent: dict[str, float] = {}
        try:
            test_scores = self._training_runs(number, params, outcome, writer, unsent)
            scores = np.array(outcome.run_scores, dtype=float)
            outcome.final_score = float(scores.mean())
            outcome.final_variance = float(scores.var())
            outcome.loss = 1.0 - outcome.final_score if objective is OptimizationValue.DEV_SCORE else outcome.final_score
            if test_scores:
                outcome.test_score = float(np.mean(test_scores))
            if math.isfinite(outcome.final_score):
                unsent.update(final_score=outcome.final_score, final_variance=outcome.final_variance, loss=outcome.loss)
                if outcome.test_score is not None:
                    unsent["test_score"] = outcome.test_score
        finally:
            if writer is not None and unsent:
                writer.log_metrics(outcome.run_id, unsent)

    def _training_runs(self, number: int, params: dict[str, Any], outcome: TrialOutcome, writer: RunWriter | None,
                       unsent: dict[str, float]) -> list[float]:  # fmt: skip
        """Train ``training_runs`` fresh models into ``outcome``; returns their test scores (if asked for).

        Epoch metrics are logged as they come; each run's score waits in ``unsent``.
        """
        import flair

        settings = self.settings
        test_scores: list[float] = []
        history_key = "dev_score" if settings.objective is OptimizationValue.DEV_SCORE else "dev_loss"
        for index in range(settings.training_runs):
            if settings.seed is not None:
                flair.set_seed(settings.seed + 1000 * number + index)
            model = build_model(
                settings.task, params, settings.label_type, self.label_dictionary, self.factory, settings.multi_label
            )
            self.cache.before_training_run(model, self.corpus)
            plugin = MLflowLoggerPlugin(
                run_id=outcome.run_id,
                prefix=f"run_{index + 1}/",
                log_params=False,
                client=writer.client if writer else None,
                enabled=writer is not None,
            )
            plugins: list = [plugin, FrozenEmbeddingsInEval(self.factory.frozen_modules())]
            stopper = MedianStoppingPlugin(self.stopping_rule, settings.max_epochs) if self.stopping_rule is not None else None
            if stopper is not None:
                plugins.append(stopper)
            with tempfile.TemporaryDirectory(prefix="flair-mlflow-trial-") as base_path:
                result = train_model(
                    model, self.corpus, settings.task, params, base_path, max_epochs=settings.max_epochs,
                    plugins=plugins, main_evaluation_metric=settings.main_evaluation_metric,
                )
            run_score = score_of_training_run(plugin.history[history_key])
            outcome.run_scores.append(run_score)
            outcome.epoch_values.append(list(plugin.history[history_key]))
            unsent[f"run_{index + 1}/score"] = run_score
            if settings.evaluate_test and result.get("test_score") is not None:
                test_scores.append(float(result["test_score"]))
                unsent[f"run_{index + 1}/test_score"] = test_scores[-1]
            self.cache.after_training_run(self.factory, self.corpus)
            del model
            check_losses(plugin.history, index + 1)
            if stopper is not None and stopper.pruned_at is not None:
                outcome.pruned_at = stopper.pruned_at
                outcome.status = TrialState.PRUNED
                break  # the trial's other training runs would be pruned the same way
            if not math.isfinite(run_score):
                break
        return test_scores
