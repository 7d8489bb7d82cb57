"""One trial: ``training_runs`` fresh models of one configuration, scored; one ``run`` for sequential and Spark."""

from __future__ import annotations

import logging
import math
import tempfile
import time
import traceback
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping, Sequence

import flair
import torch

from ..config import ExperimentConfig
from ..config.parameters import coerce_value
from ..corpus.content import dataset_source, split_summaries
from ..corpus.load import check_corpus, for_trials, load_for_experiment
from ..embeddings.cache import EmbeddingCache
from ..embeddings.factory import EmbeddingFactory
from ..errors import ConfigError
from ..register.model_logging import log_flair_model
from ..tracking import tags as T
from ..tracking.mlflow_internals import system_metrics
from ..tracking.writer import RunWriter, dataset_inputs
from ..training.checkpoint import RungCheckpoint, load_checkpoint
from ..training.device import on_device, resolve_device
from ..training.models import build_model, plain_value
from ..training.plugins import FrozenEmbeddingsInEval, MedianStoppingPlugin, MLflowLoggerPlugin
from ..training.threads import TrialThreads
from ..training.train import check_losses, train_model
from .hyperopt_internals import split_key, vals_json
from .interrupts import Interrupted
from .outcome import LAST_EPOCHS_SCORED, TrialOutcome, TrialState, as_loss
from .rules import MedianStoppingRule
from .schedulers import Job

log = logging.getLogger("flair_mlflow")


def trial_params(sampled: Mapping[str, Any], fixed: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's real parameter values: the sampled ones, each of its true type, then the fixed ones."""
    params = {name: coerce_value(name, value, f"search_space.{name}") for name, value in sampled.items()}
    return {**params, **{name: value for name, value in fixed.items() if name not in params}}


def logged_params(params: Mapping[str, Any], names: Sequence[str]) -> dict[str, str]:
    """A trial's params as its run records them: every name of the search, in its order, as text."""
    return {name: str(plain_value(params.get(name))) for name in (names or params)}


class TrialRunner:
    """Runs trials in any process that can load the corpus (pickled into Spark tasks); without a parent run, no run."""

    def __init__(self, config: ExperimentConfig, *, tracking_uri: str | None = None, experiment_id: str | None = None,
                 parent_run_id: str | None = None, parameter_names: Sequence[str] = (), corpus: Any = None,
                 stopping_rule: MedianStoppingRule | None = None, factory: EmbeddingFactory | None = None) -> None:  # fmt: skip
        self.config, self.given_corpus, self.stopping_rule = config, corpus, stopping_rule
        self.tracking_uri, self.experiment_id, self.parent_run_id = tracking_uri, experiment_id, parent_run_id
        self.parameter_names = tuple(parameter_names)
        if factory is not None:
            self.factory = factory  # the cached property's value: pickling drops it as it drops a built one

    task_gpu: str | None = None  # the GPU Spark assigned the task running the trial
    keep_bar: float = math.inf  # the loss a trial must beat for its model to be kept (see kept_models)
    checkpoints: Path | None = None  # where a multi-fidelity search's paused trials keep their training state

    def checkpoint_folder(self, number: int) -> Path:
        return Path(self.checkpoints or tempfile.gettempdir()) / f"trial-{number:03d}"

    def __getstate__(self) -> dict[str, Any]:
        """What travels to another process: no built embeddings or cache, and no corpus it can load itself (the
        dataset inputs the driver summarised from it do travel: a Spark task would otherwise hash the corpus again)."""
        loadable = {"corpus", "labels"} if self.given_corpus is None else set()
        dropped = {"factory", "cache"} | loadable
        return {key: value for key, value in self.__dict__.items() if key not in dropped}

    @cached_property
    def corpus(self) -> Any:
        whole = self.given_corpus if self.given_corpus is not None else load_for_experiment(self.config)
        check_corpus(whole, self.config.label_type)
        return for_trials(whole, self.config.evaluate_test)

    @cached_property
    def labels(self) -> Any:
        return self.corpus.make_label_dictionary(self.config.label_type, add_unk=False)

    @cached_property
    def dataset_inputs(self) -> list[Any]:
        """The splits a trial trains and is scored on, as the MLflow dataset inputs every trial run records."""
        name, source = dataset_source(self.config, self.given_corpus)
        splits = split_summaries(self.corpus, self.config.label_type, self.config.evaluate_test)
        return dataset_inputs(name, source, splits)

    @cached_property
    def factory(self) -> EmbeddingFactory:
        return EmbeddingFactory(self.corpus)

    @cached_property
    def cache(self) -> EmbeddingCache:
        return EmbeddingCache(self.config.embedding_cache_mb)

    def run_suggested(self, sampled: Mapping[str, Any]) -> TrialOutcome:
        """The trial hyperopt suggested, its number (trial id + 1) and point carried by the space."""
        tid, vals, point = split_key(sampled)
        return self.run(tid + 1, point, tags={T.VALS_TAG: vals_json(vals)})

    def run(self, number: int, sampled: Mapping[str, Any], tags: Mapping[str, str] = {}, job: Job | None = None,
            run_id: str | None = None) -> TrialOutcome:  # fmt: skip
        """Trial ``number`` on the sampled parameters (``job``: a rung of it, continuing run ``run_id``); a failure is
        an outcome, a signal or bad input raises."""
        started = time.time()
        outcome = TrialOutcome(number=number, params=trial_params(sampled, self.config.fixed), run_id=run_id)
        writer = RunWriter(self.tracking_uri) if self.parent_run_id else None
        cut_off = False  # a rung a signal cut off, run again: its run has some of the epochs already
        if writer is not None and run_id is not None:
            cut_off = writer.reopen(run_id)
        elif writer is not None:
            tags = {T.TRIAL_NUMBER_TAG: number, T.TASK_TAG: self.config.task, **tags}
            outcome.run_id = writer.create_child(self.experiment_id, self.parent_run_id, f"trial-{number:03d}", tags)
            writer.log_params(outcome.run_id, logged_params(outcome.params, self.parameter_names), new_run=True)
            writer.log_inputs(outcome.run_id, self.dataset_inputs)
        unsent: dict[str, float] = {}  # scores that go out with the run's last call
        device = resolve_device(self.config.device, torch.cuda.is_available(), self.task_gpu)
        threads = TrialThreads(self.config.threads, self.config.parallelism, device)
        try:
            monitored = writer is not None and self.config.log_system_metrics
            with on_device(device), threads, system_metrics(outcome.run_id, writer and writer.tracking_uri, monitored):
                self._training_runs(outcome, writer, unsent, threads, job, cut_off)
            if not math.isfinite(outcome.final_score):
                raise FloatingPointError(f"the {self.config.optimization_value} is not a number (NaN)")
        except ConfigError:
            if writer is not None:
                writer.close(outcome.run_id, TrialState.FAILED.run_status, metrics=unsent)
            raise
        except (KeyboardInterrupt, Interrupted):
            if writer is not None:
                writer.close(outcome.run_id, "KILLED", {T.STATUS_TAG: TrialState.KILLED}, unsent)
            raise
        except Exception as error:  # the trial fails; the search goes on
            outcome.status, outcome.error = TrialState.FAILED, f"{type(error).__name__}: {error}"
            log.warning("trial %d failed: %s", number, outcome.error)
            if writer is not None:
                writer.fail(outcome.run_id, type(error).__name__, error, traceback.format_exc(), unsent)
        else:
            if writer is not None:
                pruned = {T.PRUNED_TAG: "true", T.PRUNED_AT_TAG: outcome.pruned_at} if outcome.pruned else {}
                kept = {T.KEPT_MODEL_TAG: outcome.model_id} if outcome.model_id else {}
                end_tags = {T.THREADS_TAG: threads.chosen, **pruned, T.DEVICE_TAG: device, **kept}
                if job is not None:
                    end_tags.update({T.EPOCHS_REACHED_TAG: job.stop, T.RUNG_TAG: job.rung})
                    writer.log_rung(outcome.run_id, job.rung, range(job.start + 1, job.stop + 1), outcome.final_score)
                metrics = {**unsent, **outcome.score_metrics()}
                writer.close(outcome.run_id, outcome.status.run_status, end_tags, metrics, model_id=outcome.model_id)
        outcome.duration_s = time.time() - started
        return outcome

    def _checkpoint(self, number: int, run_name: str, job: Job | None) -> dict[str, Any] | None:
        """The state a promoted trial's training run continues from; None for a new trial, or a lost checkpoint."""
        if job is None or job.start == 0:
            return None
        state = load_checkpoint(self.checkpoint_folder(number) / f"{run_name}.pt")
        if state is None or state["epoch"] != job.start:
            log.warning(
                "trial %d %s: no checkpoint after epoch %d; it trains again from the start", number, run_name, job.start
            )
            return None
        return state

    def _training_runs(self, outcome: TrialOutcome, writer: RunWriter | None, unsent: dict,
                       threads: TrialThreads, job: Job | None, cut_off: bool) -> None:  # fmt: skip
        """Train into ``outcome``, seeded by trial and run; scores wait in ``unsent``; a model that may rank is kept;
        ``job``: train one rung, from the checkpoint of the last (a missing one: from the start, said in the log);
        ``cut_off``: the rung ran before, so the epochs its run has already are not logged twice."""
        config, test_scores, kept_loss = self.config, [], math.inf
        top_rung = job is None or job.stop == config.max_epochs
        if job is not None:
            outcome.epochs, outcome.rung = job.stop, job.rung
        maximise = config.maximise
        labels = self.labels  # built before seeding: making it draws from the random generators
        with tempfile.TemporaryDirectory(prefix="flair-mlflow-trial-") as folder:
            for index in range(config.training_runs):
                run_name = f"run_{index + 1}"
                state = self._checkpoint(outcome.number, run_name, job)
                if config.seed is not None and state is None:
                    flair.set_seed(config.seed + 1000 * outcome.number + index)
                model = build_model(
                    config.task, outcome.params, config.label_type, labels, self.factory, config.multi_label
                )
                self.cache.before_training_run(model, self.corpus, self.factory)
                logged = writer.last_step(outcome.run_id, f"{run_name}/train_loss") if cut_off and state else 0
                logger = MLflowLoggerPlugin(outcome.run_id, f"{run_name}/", False, writer, writer is not None, logged)
                stopper = MedianStoppingPlugin(self.stopping_rule, config.max_epochs) if self.stopping_rule else None
                frozen = FrozenEmbeddingsInEval(list(self.factory.frozen.values()))
                plugins = [logger, frozen, *([stopper] if stopper else [])]
                if job is not None:
                    logger.history = state["history"] if state else logger.history
                    path = self.checkpoint_folder(outcome.number) / f"{run_name}.pt"
                    stop = None if top_rung else job.stop
                    plugins.append(
                        RungCheckpoint(path, stop, state, list(self.factory.frozen.values()), logger.history)
                    )
                base_path = Path(folder) / run_name
                start = state["epoch"] if state else 0
                result = train_model(
                    model, self.corpus, config, outcome.params, base_path, plugins, threads, False, start
                )
                history = logger.history[config.optimization_value]
                scored = 1 if job is not None and len(history) < LAST_EPOCHS_SCORED else LAST_EPOCHS_SCORED
                score = outcome.add_training_run(history, logger.history["dev_score"], scored)
                unsent[f"{run_name}/score"] = score
                if config.evaluate_test and result.get("test_score") is not None:
                    test_scores.append(unsent.setdefault(f"{run_name}/test_score", float(result["test_score"])))
                self.cache.after_training_run(model, self.factory, self.corpus)
                loss = as_loss(score, maximise)
                if writer is not None and config.keep_models and top_rung and loss < min(kept_loss, self.keep_bar):
                    model.save(Path(folder) / "model.pt")
                    kept_loss = loss
                del model
                check_losses(logger.history, index + 1)
                if stopper is not None and stopper.pruned_at is not None:
                    outcome.pruned_at, outcome.status = stopper.pruned_at, TrialState.PRUNED
                    break  # its other training runs would be pruned the same way
                if not math.isfinite(score):
                    break
            outcome.settle_scores(maximise)
            outcome.test_score = sum(test_scores) / len(test_scores) if test_scores else None
            if kept_loss < math.inf and outcome.status is TrialState.COMPLETE and outcome.loss < self.keep_bar:
                uri = log_flair_model(writer.client, outcome.run_id, Path(folder) / "model.pt", config.task,
                                      config.label_type, name=f"trial-{outcome.number:03d}")  # fmt: skip
                outcome.model_id = uri.removeprefix("models:/")
