"""A hyperopt search whose trials are nested MLflow runs under one parent run per search.

Order matters here: everything that can be wrong with the input (settings, search space,
corpus, label type, embeddings) is checked before the first run is created, so a bad
experiment leaves nothing half-written in the tracking store.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..core.config import ExperimentConfig
from ..core.errors import ConfigError
from ..core.interrupts import Interrupted, SearchInterrupted, SignalInterrupt, catch_signals
from ..core.outcome import TrialOutcome, TrialState, best_outcome
from ..core.rules import MedianStoppingRule
from ..core.space import SearchSpace
from ..store.runs import adopt_or_create_run, child_runs, connect, get_search_run
from ..store.tags import RESUMED_TAG, RESUMES_TAG, SEARCH_TAG, STATUS_TAG, TASK_TAG, VALS_TAG
from .lr_from import learning_rate_from_run
from .reports import best_params_yaml, param_selection_text, plot_trials, trials_csv
from .resume import (
    PreviousTrials,
    check_same_search,
    continued_rng,
    experiment_from_run,
    hyperopt_trials,
    read_previous_trials,
    search_hashes,
    vals_json,
)
from .trial import TrialRunner, TrialSettings

log = logging.getLogger("flair_mlflow")


def algorithm_suggest(name: str) -> Callable:
    """hyperopt's suggest function for ``tpe``, ``rand``, ``anneal`` or ``atpe``."""
    import hyperopt

    if name == "atpe":
        try:
            from hyperopt import atpe

            return atpe.suggest
        except ImportError:
            raise ConfigError(
                "algorithm", "'atpe' needs lightgbm and scikit-learn: pip install 'flair-mlflow[atpe]'"
            ) from None
    try:
        return {"tpe": hyperopt.tpe.suggest, "rand": hyperopt.rand.suggest, "anneal": hyperopt.anneal.suggest}[name]
    except KeyError:
        raise ConfigError("algorithm", f"must be tpe, rand, anneal or atpe, not {name!r}") from None


@dataclass
class SearchResult:
    """What a finished search found, with the ids to find it again in MLflow."""

    parent_run_id: str
    experiment_id: str
    outcomes: list[TrialOutcome] = field(default_factory=list)

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


def check_embeddings(config: ExperimentConfig, corpus) -> None:
    """Build every embedding the experiment names once, so one that cannot load fails early."""
    from ..adapters.embeddings import EmbeddingFactory

    factory = EmbeddingFactory(corpus)
    for name in ("embeddings", "transformer_model", "document_embeddings"):
        values: list[Any] = []
        if name in config.fixed:
            values.append(config.fixed[name])
        spec = config.search_space.get(name)
        if isinstance(spec, Mapping):
            kind, arguments = next(iter(spec.items()))
            options = arguments.get("options", arguments.get("p_options")) if isinstance(arguments, Mapping) else arguments
            if kind == "pchoice":
                options = [pair[1] for pair in options]
            values.extend(options if isinstance(options, list) else [])
        for value in values:
            field_name = f"fixed.{name}" if name in config.fixed else f"search_space.{name}"
            try:
                factory.check(value, name, config.task, dict(config.fixed))
            except ConfigError as error:
                raise type(error)(field_name, error.problem) from error


class Search:
    """One search: validated input, a parent run, hyperopt, and the reports at the end.

    Use :func:`run_search` for the common case; this class exists for callers (the tutorial's
    selectors, the CLI) that supply their own corpus or hyperopt space.
    """

    def __init__(self, config: ExperimentConfig, *, corpus: Any = None, space: Mapping[str, Any] | None = None,
                 tracking_uri: str | None = None, config_path: str | Path | None = None,
                 run_name: str | None = None, base_path: str | Path | None = None, show_progress: bool = True,
                 quiet: bool = True, main_evaluation_metric: tuple[str, str] = ("micro avg", "f1-score"),
                 resume: str | None = None) -> None:  # fmt: skip
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
        self.outcomes: list[TrialOutcome] = []
        self.lr_source: dict[str, Any] = {}  # where the learning-rate range came from (lr_from)
        self.resume = resume  # the parent run id of a search to continue

    # -- before any run exists -----------------------------------------------------------------
    def prepare(self) -> TrialRunner:
        """Validate everything and load the corpus; raises ConfigError and creates nothing."""
        from ..adapters.corpora import check_corpus, load_for_experiment

        self.writer = connect(self.tracking_uri)
        self.tracking_uri = self.writer.tracking_uri
        if self.config.lr_from:
            self.config, self.lr_source = learning_rate_from_run(self.config, self.writer.client)
            if self.space is not None:  # a space given in Python: its learning rate is replaced too
                self.space["learning_rate"] = self.config.build_space().get_search_space()["learning_rate"]
        if self.space is None:
            self.space = self.config.build_space().get_search_space()
        if not self.space:
            raise ConfigError("search_space", "is empty: name at least one parameter to search")
        corpus = self.corpus if self.corpus is not None else load_for_experiment(self.config)
        check_corpus(corpus, self.config.label_type)
        if self.corpus is None:
            check_embeddings(self.config, corpus)
        settings = TrialSettings.from_config(
            self.config, tracking_uri=self.tracking_uri, quiet=self.quiet,
            main_evaluation_metric=self.main_evaluation_metric,
        )  # fmt: skip
        settings.parameter_names = list(self.space) + [n for n in self.config.fixed if n not in self.space]
        runner = TrialRunner(settings, self.config if self.corpus is None else corpus)
        if self.corpus is None:
            runner._corpus = None  # loaded through the per-process cache on first use
        return runner

    # -- the search ----------------------------------------------------------------------------
    def run(self) -> SearchResult:
        import hyperopt
        from hyperopt import pyll
        from tqdm.auto import tqdm

        runner = self.prepare()
        suggest = algorithm_suggest(self.config.algorithm)
        if self.config.parallelism > 1:
            return self._run_parallel(runner, suggest)
        previous = self._previous_trials(runner) if self.resume else None  # only reads; refuses a mismatch
        if previous is not None:
            parent_run_id, experiment_id, created = self._reopen_parent(previous)
            self.outcomes = list(previous.outcomes)
        else:
            parent_run_id, experiment_id, created = self._start_parent()
            if self.config.search_space:  # an experiment file: a later --resume can check it is the same
                self.writer.set_tags(parent_run_id, search_hashes(self.config))
        runner.settings.parent_run_id = parent_run_id
        runner.settings.experiment_id = experiment_id
        objective_kind = self.config.objective
        maximise = self.config.optimization_value == "dev_score"
        progress = tqdm(total=self.config.max_evals, initial=len(self.outcomes), desc="trials", unit="trial",
                        disable=not self.show_progress)  # fmt: skip
        if self.config.pruning is not None:
            runner.stopping_rule = MedianStoppingRule(maximise=maximise, **self.config.pruning)
            for earlier in self.outcomes:  # a resumed search's finished trials
                if earlier.status is TrialState.COMPLETE:
                    runner.stopping_rule.record(earlier.epoch_values)

        def objective(expr: Any, memo: Any, ctrl: Any) -> dict[str, Any]:
            # hyperopt's own record of the point (choice indices, raw numbers) goes on the child run,
            # so that --resume can rebuild the Trials exactly
            sampled = pyll.rec_eval(expr, memo=memo)
            number = max((o.number for o in self.outcomes), default=0) + 1
            outcome = runner.run(number, sampled, tags={VALS_TAG: vals_json(ctrl.current_trial["misc"]["vals"])})
            self.outcomes.append(outcome)
            if runner.stopping_rule is not None and outcome.status is TrialState.COMPLETE:
                runner.stopping_rule.record(outcome.epoch_values)
            self._after_trial(parent_run_id, outcome)
            best = best_outcome(self.outcomes)
            progress.update(1)
            if best is not None:
                progress.set_postfix({f"best {objective_kind.config_name}": f"{best.final_score:.4f}"})
            return outcome.hyperopt_result()

        trials = hyperopt_trials(previous, self.space) if previous is not None else hyperopt.Trials()
        status = "FINISHED"
        self.stop_reason = "max_evals"
        started = time.time()
        restore_signals = catch_signals()
        try:
            hyperopt.fmin(
                fn=objective,
                space=self.space,
                algo=suggest,
                trials=trials,
                rstate=continued_rng(self.config.seed, len(self.outcomes)),
                show_progressbar=False,
                catch_eval_exceptions=False,
                pass_expr_memo_ctrl=True,
                **self._limits(),
            )
            self._note_time_budget(started, len(self.outcomes))
        except hyperopt.exceptions.AllTrialsFailed:
            self.stop_reason = "all_trials_failed"
            status = "FAILED"
        except (KeyboardInterrupt, Interrupted) as error:
            status = "KILLED"
            self.stop_reason = "interrupted"
            restore_signals()
            self._kill_running_trials(parent_run_id)
            raise SearchInterrupted(getattr(error, "signum", 2), parent_run_id) from None
        except BaseException:
            status = "FAILED"
            self.stop_reason = "error"
            raise
        finally:
            restore_signals()
            progress.close()
            self._finish_parent(parent_run_id, status, created, maximise)
        return self._result(parent_run_id, experiment_id)

    def _run_parallel(self, runner: TrialRunner, suggest: Callable) -> SearchResult:
        """Trials side by side on Spark (hyperopt's SparkTrials); the run tree is a sequential search's."""
        import hyperopt

        from .distributed import (
            SparkObjective,
            check_reachable_from_workers,
            collect_outcomes,
            settle_unreturned_trials,
            spark_trials,
            torch_threads_per_trial,
        )  # fmt: skip

        if self.resume:
            raise ConfigError("resume", "a parallel search cannot be resumed in parallel; resume it with --parallelism 1")
        if self.config.pruning is not None:
            raise ConfigError("pruning", "the median stopping rule learns from trials in one process; use parallelism 1")
        check_reachable_from_workers(self.tracking_uri, self.config.spark_master)
        trials = spark_trials(self.config.parallelism, self.config.spark_master)  # before any run exists
        parent_run_id, experiment_id, created = self._start_parent()
        if self.config.search_space:  # so that --resume (sequential) can check it is the same search
            self.writer.set_tags(parent_run_id, search_hashes(self.config))
        runner.settings.parent_run_id = parent_run_id
        runner.settings.experiment_id = experiment_id
        maximise = self.config.optimization_value == "dev_score"
        objective = SparkObjective(runner, torch_threads_per_trial(self.config.parallelism))
        status = "FINISHED"
        self.stop_reason = "max_evals"
        started = time.time()
        restore_signals = catch_signals(SignalInterrupt)
        try:
            hyperopt.fmin(
                fn=objective,
                space=self.space,
                algo=suggest,
                trials=trials,
                rstate=continued_rng(self.config.seed, 0),
                show_progressbar=self.show_progress,
                **self._limits(),
            )
            self._note_time_budget(started, len(trials.trials))  # cancelled trials are not in .trials
        except hyperopt.exceptions.AllTrialsFailed:
            self.stop_reason, status = "all_trials_failed", "FAILED"
        except (KeyboardInterrupt, Interrupted) as error:
            self.stop_reason, status = "interrupted", "KILLED"
            restore_signals()  # SparkTrials has cancelled its tasks on the KeyboardInterrupt by now
            self._kill_running_trials(parent_run_id)  # their runs would otherwise stay RUNNING
            raise SearchInterrupted(getattr(error, "signum", 2), parent_run_id) from None
        except BaseException:
            self.stop_reason, status = "error", "FAILED"
            raise
        finally:
            restore_signals()
            self.outcomes = collect_outcomes(trials, self.writer)
            if self.stop_reason not in ("interrupted", "error"):  # cancelled trials, lost Spark tasks
                self.outcomes = settle_unreturned_trials(
                    trials, self.writer, parent_run_id, runner, self.space, self.outcomes
                )
            for index, outcome in enumerate(self.outcomes):
                best = best_outcome(self.outcomes[: index + 1])
                metrics = {"trial_score": outcome.final_score} if outcome.ok else {}
                if best is not None:
                    metrics["best_score_so_far"] = best.final_score
                if metrics:
                    self.writer.log_metrics(parent_run_id, metrics, step=outcome.number)
            self._finish_parent(parent_run_id, status, created, maximise)
        return self._result(parent_run_id, experiment_id)

    # -- what both ways of running share --------------------------------------------------------
    def _limits(self) -> dict[str, Any]:
        """fmin's stopping arguments: the trial count, the time budget, the no-improvement rule."""
        budget = self.config.time_budget_minutes
        return {
            "max_evals": self.config.max_evals,
            "timeout": budget * 60 if budget else None,
            "early_stop_fn": self._no_improvement if self.config.early_stop_trials else None,
        }

    def _note_time_budget(self, started: float, done: int) -> None:
        """fmin returns quietly at its timeout; the parent run should say why the search ended early."""
        budget = self.config.time_budget_minutes
        if self.stop_reason != "max_evals" or done >= self.config.max_evals:
            return
        if budget and time.time() - started >= budget * 60:
            self.stop_reason = "time_budget"

    def _no_improvement(self, trials: Any, *state: Any) -> tuple[bool, list]:
        """hyperopt's early-stop hook: stop after ``early_stop_trials`` finished trials without a new best.

        A parallel search's outcomes live in the Spark trials until it ends, so they are read from there.
        """
        from .distributed import outcomes_of_trials

        outcomes = self.outcomes if self.config.parallelism == 1 else outcomes_of_trials(trials)
        best = best_outcome(outcomes)
        since = sum(1 for o in outcomes if best is None or o.number > best.number)
        if since >= self.config.early_stop_trials:
            self.stop_reason = "no_improvement"
            return True, []
        return False, []

    def _result(self, parent_run_id: str, experiment_id: str) -> SearchResult:
        result = SearchResult(parent_run_id, experiment_id, list(self.outcomes))
        if result.best is None:
            errors = [o.error for o in self.outcomes if o.error]
            why = f" (last error: {' '.join(errors[-1].split())[:300]})" if errors else ""
            raise SearchFailed(
                f"all {len(self.outcomes)} trials failed{why}; see the FAILED child runs of {parent_run_id}"
            )
        return result

    def _start_parent(self) -> tuple[str, str, bool]:
        """The parent run: the run ``mlflow run`` or the caller already opened, or a new one."""
        # named here: MLflow's generated names draw on Python's global RNG, which loading the
        # corpus has just seeded, so every search with the same seed would get the same name
        run_name = self.run_name or f"search-{time.strftime('%Y%m%d-%H%M%S')}"
        tags = {SEARCH_TAG: "true", TASK_TAG: self.config.task}
        run = adopt_or_create_run(self.writer, self.config.experiment, run_name, tags)
        run_id, experiment_id, created = run.run_id, run.experiment_id, run.created
        params = {
            "task": self.config.task,
            "corpus": self.config.corpus.describe(),
            "label_type": self.config.label_type,
            "downsample": self.config.downsample,
            "max_epochs": self.config.max_epochs,
            "training_runs": self.config.training_runs,
            "max_evals": self.config.max_evals,
            "algorithm": self.config.algorithm,
            "seed": self.config.seed,
            "optimization_value": self.config.optimization_value,
            "evaluate_test": self.config.evaluate_test,
            "embedding_cache_mb": self.config.embedding_cache_mb,
            "pruning": "off" if self.config.pruning is None else ",".join(f"{k}={v}" for k, v in self.config.pruning.items()),
            "early_stop_trials": self.config.early_stop_trials,
            "time_budget_minutes": self.config.time_budget_minutes,
            "parallelism": self.config.parallelism,
        }
        if self.config.task == "text_classification":
            params["multi_label"] = self.config.multi_label
        self.writer.log_params(run_id, params)
        if self.lr_source:
            self.writer.log_params(run_id, {"lr_from": self.lr_source["lr_from"]})
            self.writer.set_tags(run_id, {k: v for k, v in self.lr_source.items() if k != "lr_from"})
        if self.config_path is not None and self.config_path.is_file():
            self.writer.log_file(run_id, self.config_path)
        self.writer.log_text(run_id, self.config.to_yaml() if self.config.search_space else _describe_space(self.space, self.config), "experiment_resolved.yaml")
        return run_id, experiment_id, created

    def _after_trial(self, parent_run_id: str, outcome: TrialOutcome) -> None:
        text = param_selection_text(self.outcomes, self.config.objective, finished=False)
        self.writer.log_text(parent_run_id, text, "param_selection.txt")
        if self.base_path is not None:
            self.base_path.mkdir(parents=True, exist_ok=True)
            (self.base_path / "param_selection.txt").write_text(text, encoding="utf-8")
        metrics = {}
        if outcome.ok:
            metrics["trial_score"] = outcome.final_score
        best = best_outcome(self.outcomes)
        if best is not None:
            metrics["best_score_so_far"] = best.final_score
        if metrics:
            self.writer.log_metrics(parent_run_id, metrics, step=outcome.number)

    def _finish_parent(self, parent_run_id: str, status: str, created: bool, maximise: bool) -> None:
        objective = self.config.objective
        names = list(self.space or {}) + [n for n in self.config.fixed if n not in (self.space or {})]
        failed = sum(1 for o in self.outcomes if not o.ok)
        pruned = sum(1 for o in self.outcomes if o.pruned)
        self.writer.log_metrics(
            parent_run_id, {"trials": len(self.outcomes), "failed_trials": failed, "pruned_trials": pruned}
        )
        self.writer.set_tags(parent_run_id, {"stop_reason": getattr(self, "stop_reason", "max_evals")})
        text = param_selection_text(self.outcomes, objective, finished=True)
        self.writer.log_text(parent_run_id, text, "param_selection.txt")
        if self.base_path is not None:
            (self.base_path / "param_selection.txt").write_text(text, encoding="utf-8")
        if self.outcomes:
            self.writer.log_text(parent_run_id, trials_csv(self.outcomes, names), "trials.csv")
            with tempfile.TemporaryDirectory() as folder:
                path = plot_trials(self.outcomes, objective, Path(folder) / "trials.png")
                self.writer.log_file(parent_run_id, path)
        best = best_outcome(self.outcomes)
        if best is not None:
            self.writer.log_metrics(parent_run_id, {"best_score": best.final_score})
            self.writer.set_tags(
                parent_run_id, {"best_trial_run_id": best.run_id or "", "best_trial_number": best.number}
            )
            self.writer.log_text(parent_run_id, best_params_yaml(best, objective, names), "best_params.yaml")
        if created or status != "FINISHED":
            self.writer.end(parent_run_id, status)

    # -- resuming and interruption ---------------------------------------------------------------
    def _previous_trials(self, runner: TrialRunner) -> PreviousTrials:
        """The search to continue and its finished trials, read before anything is written."""
        client = self.writer.client
        parent = get_search_run(client, str(self.resume), "resume")
        check_same_search(parent, self.config)
        history_key = None
        if getattr(self.config, "pruning", None) is not None:  # the stopping rule needs earlier epochs
            history_key = "dev_score" if self.config.optimization_value == "dev_score" else "dev_loss"
        return read_previous_trials(client, parent, self.space or {}, runner.trial_params, history_key)

    def _reopen_parent(self, previous: PreviousTrials) -> tuple[str, str, bool]:
        """The resumed search's own parent, RUNNING again; trial runs a killed process left RUNNING end KILLED."""
        parent = previous.parent
        run_id = parent.info.run_id
        for abandoned in previous.abandoned:
            self.writer.set_tags(abandoned, {STATUS_TAG: TrialState.ABANDONED.value})
            self.writer.end(abandoned, "KILLED")
        self.writer.client.update_run(run_id, status="RUNNING")
        self.writer.set_tags(run_id, {RESUMED_TAG: int(parent.data.tags.get(RESUMED_TAG, "0") or 0) + 1})
        self.writer.log_params(run_id, {"max_evals": self.config.max_evals})  # a new value shows as resolved.max_evals
        self.writer.log_text(run_id, self.config.to_yaml(), "experiment_resolved.yaml")
        outer = os.environ.get("MLFLOW_RUN_ID")
        if outer and outer != run_id:  # `mlflow run ... -P resume=<id>` opened a run of its own
            self.writer.set_tags(outer, {RESUMES_TAG: run_id})
        log.info("resuming search run %s: %d trials done, %d to run again", run_id, len(previous.outcomes),
                 previous.rerun)  # fmt: skip
        return run_id, parent.info.experiment_id, True

    def _kill_running_trials(self, parent_run_id: str) -> None:
        """After a signal, mark KILLED a trial run the interrupted code never got to end itself."""
        try:
            experiment_id = self.writer.client.get_run(parent_run_id).info.experiment_id
            for run in child_runs(self.writer.client, experiment_id, parent_run_id):
                if run.info.status == "RUNNING":
                    self.writer.set_tags(run.info.run_id, {STATUS_TAG: TrialState.KILLED.value})
                    self.writer.end(run.info.run_id, "KILLED")
        except Exception as error:  # best effort: a resume marks any left over
            log.warning("could not mark the running trial KILLED: %s", error)


class SearchFailed(Exception):
    """Every trial of a search failed; the message says where to look."""


def _describe_space(space: Mapping[str, Any] | None, config: ExperimentConfig) -> str:
    import yaml

    data = config.to_dict()
    data["search_space"] = {name: " ".join(str(expression).split())[:500] for name, expression in (space or {}).items()}
    data["fixed"] = {k: str(v) for k, v in config.fixed.items()}
    return yaml.safe_dump(data, sort_keys=False)


def run_search(config: ExperimentConfig | str | Path | None, *, overrides: Mapping[str, Any] | None = None,
               tracking_uri: str | None = None, run_name: str | None = None, show_progress: bool = True,
               quiet: bool = True, resume: str | None = None) -> SearchResult:  # fmt: skip
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


__all__ = ["Search", "SearchFailed", "SearchResult", "SearchSpace", "run_search"]
