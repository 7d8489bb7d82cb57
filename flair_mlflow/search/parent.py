"""A search's parent run: opened (new, adopted or resumed), kept current after each trial, finished with its reports."""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any, Sequence

import yaml

from ..config import ExperimentConfig, OptimizationValue
from ..tracking import tags as T
from ..tracking.search_runs import child_runs
from ..tracking.store import adopt_or_create_run, say_where
from ..tracking.writer import RunWriter
from ..training.models import plain_value
from .loop import StopReason
from .outcome import TrialOutcome, TrialState, best_outcome, rung_summary
from .recorded import RecordedExperiment
from .resume import PreviousTrials, search_hashes
from .rules import LearningCheck

log = logging.getLogger("flair_mlflow")
#: the parent run's params: what a reader compares searches by
SEARCH_PARAMS = (
    "task label_type downsample max_epochs training_runs max_evals algorithm seed optimization_value evaluate_test "
    "embedding_cache_mb early_stop_trials time_budget_minutes parallelism threads".split()
)
#: a trial's scores in trials.csv, after its number, run and status (``loss`` is what hyperopt minimised)
SCORE_COLUMNS = ("final_score", "last_epoch_score", "final_variance", "scored_epochs_variance", "loss")


@dataclass(frozen=True)
class ParentRun:
    """The run a search writes its own results to; ``created``: this search must end it."""

    writer: RunWriter
    run_id: str
    experiment_id: str
    created: bool
    objective: OptimizationValue
    parameter_names: tuple[str, ...]
    base_path: Path | None = None  # the tutorial API's folder, which gets param_selection.txt too
    learning_check: LearningCheck | None = None  # what the finished search's dev scores must beat

    @classmethod
    def start(cls, writer: RunWriter, config: ExperimentConfig, recorded: RecordedExperiment, run_name: str | None,
              config_path: Any, lr_source: dict[str, Any], **fields: Any) -> ParentRun:  # fmt: skip
        """The run ``mlflow run`` or the caller opened, or a new one, with the settings, experiment file and hashes."""
        # named here: MLflow's generated names draw on Python's global RNG, which loading the corpus has just
        # seeded, so every search with the same seed would get the same name
        name = run_name or f"search-{time.strftime('%Y%m%d-%H%M%S')}"
        run = adopt_or_create_run(writer, config.experiment, name, {T.SEARCH_TAG: "true", T.TASK_TAG: config.task})
        say_where(writer, run.experiment_id, config.experiment)
        shown = recorded.config or config
        params = {name: getattr(shown, name) for name in SEARCH_PARAMS}
        pruning = ",".join(f"{k}={v}" for k, v in shown.pruning.model_dump().items()) if shown.pruning else "off"
        params.update(corpus=shown.corpus.describe(), pruning=pruning, scheduler=shown.scheduler.describe())
        params.update({"multi_label": shown.multi_label} if shown.task == "text_classification" else {})
        writer.log_params(run.run_id, {**params, **({"lr_from": lr_source["lr_from"]} if lr_source else {})})
        if config_path is not None and Path(config_path).is_file():
            writer.log_file(run.run_id, config_path)
        writer.log_text(run.run_id, recorded.text, T.RESOLVED_EXPERIMENT_FILE)
        tags = {T.NOT_REBUILDABLE_TAG: recorded.problem} if recorded.config is None else search_hashes(recorded.config)
        writer.set_tags(run.run_id, {**tags, **{k: v for k, v in lr_source.items() if k != "lr_from"}})
        return cls(writer, run.run_id, run.experiment_id, run.created, config.objective, **fields)

    @classmethod
    def reopen(cls, writer: RunWriter, config: ExperimentConfig, recorded: RecordedExperiment, previous: PreviousTrials, **fields: Any) -> ParentRun:  # fmt: skip
        """The resumed search's own parent, RUNNING again; trial runs a killed process left RUNNING end KILLED."""
        run_id = previous.parent.info.run_id
        for abandoned in previous.abandoned:
            writer.close(abandoned, "KILLED", {T.STATUS_TAG: TrialState.ABANDONED})
        writer.client.update_run(run_id, status="RUNNING")
        writer.set_tags(run_id, {T.RESUMED_TAG: int(previous.parent.data.tags.get(T.RESUMED_TAG, 0)) + 1})
        writer.log_params(run_id, {"max_evals": config.max_evals})  # a new value shows as resolved.max_evals
        writer.log_text(run_id, recorded.text, T.RESOLVED_EXPERIMENT_FILE)
        outer = os.environ.get("MLFLOW_RUN_ID")
        if outer and outer != run_id:  # `mlflow run ... -P resume=<id>` opened a run of its own
            writer.set_tags(outer, {T.RESUMES_TAG: run_id})
        done = len(previous.outcomes)
        log.info("resuming search run %s: %d trials done, %d to run again", run_id, done, previous.rerun)
        return cls(writer, run_id, previous.parent.info.experiment_id, True, config.objective, **fields)

    def after_trial(self, outcomes: Sequence[TrialOutcome]) -> None:
        """The last of ``outcomes`` just ended: its block of the tutorial's file (the artifact waits for the end)."""
        if self.base_path is not None:
            self.base_path.mkdir(parents=True, exist_ok=True)
            mode = "a" if len(outcomes) > 1 else "w"
            with open(self.base_path / "param_selection.txt", mode, encoding="utf-8") as file:
                file.write("\n".join(param_selection_block(outcomes[-1], self.objective)) + "\n")
        self.log_score(outcomes)

    def log_score(self, outcomes: Sequence[TrialOutcome]) -> None:
        """``trial_score`` of the last of ``outcomes`` and ``best_score_so_far`` over all, at its number."""
        best = best_outcome(outcomes)
        metrics = {"trial_score": outcomes[-1].final_score} if outcomes[-1].ok else {}
        metrics.update({"best_score_so_far": best.final_score} if best is not None else {})
        if metrics:
            self.writer.log_metrics(self.run_id, metrics, step=outcomes[-1].number)

    def write_param_selection(self, outcomes: Sequence[TrialOutcome]) -> None:
        text = param_selection_text(outcomes, self.objective)
        self.writer.log_text(self.run_id, text, "param_selection.txt")
        if self.base_path is not None:
            self.base_path.mkdir(parents=True, exist_ok=True)
            (self.base_path / "param_selection.txt").write_text(text, encoding="utf-8")

    def kill_running_trials(self) -> None:
        """After a signal, mark KILLED a trial run the interrupted code never got to end itself."""
        try:
            for run in child_runs(self.writer.client, self.experiment_id, self.run_id, "attributes.status = 'RUNNING'"):
                self.writer.close(run.info.run_id, "KILLED", {T.STATUS_TAG: TrialState.KILLED})
        except Exception as error:  # best effort: a resume marks any left over
            log.warning("could not mark the running trial KILLED: %s", error)

    def finish(self, outcomes: Sequence[TrialOutcome], reason: StopReason) -> None:
        """Counts, why the search stopped, the reports, the best trial; the run ends if this search owns it."""
        best, tags = best_outcome(outcomes), {T.STOP_REASON_TAG: reason.value}
        failed, pruned = sum(not o.ok for o in outcomes), sum(o.pruned for o in outcomes)
        counts = {"trials": len(outcomes), "failed_trials": failed, "pruned_trials": pruned}
        self.writer.log_metrics(self.run_id, {**counts, **({"best_score": best.final_score} if best else {})})
        self.write_param_selection(outcomes)
        if outcomes:
            self.writer.log_text(self.run_id, trials_csv(outcomes, self.parameter_names), "trials.csv")
            with tempfile.TemporaryDirectory() as folder:
                self.writer.log_file(self.run_id, plot_trials(outcomes, self.objective, Path(folder) / "trials.png"))
        if best is not None:
            tags.update({T.BEST_TRIAL_RUN_TAG: best.run_id or "", T.BEST_TRIAL_NUMBER_TAG: best.number})
            best_params = best_params_yaml(best, self.objective, self.parameter_names)
            self.writer.log_text(self.run_id, best_params, "best_params.yaml")
        warning = self.learning_check.warning(outcomes) if self.learning_check is not None else None
        if warning:  # printed just before the command's summary, and shown by MLflow's UI on the parent
            log.warning("warning: %s", warning)
            tags[T.WARNING_TAG] = warning
        self.writer.set_tags(self.run_id, tags)
        if self.created or reason.run_status != "FINISHED":
            self.writer.end(self.run_id, reason.run_status)


# the files finish() leaves on the parent run: param_selection.txt, trials.csv, best_params.yaml, trials.png
def param_selection_block(o: TrialOutcome, objective: OptimizationValue) -> list[str]:
    """One evaluation run of Flair's old ``param_selection.txt``: values, not indices."""
    lines = [f"evaluation run {o.number}", *(f"\t{name}: {plain_value(value)}" for name, value in o.params.items())]
    if o.ok:
        lines += [
            f"{objective.value}: {o.final_score}",
            f"variance: {o.final_variance}",
            f"last epoch {objective.value}: {o.last_epoch_score}",
            f"variance over the scored epochs: {o.scored_epochs_variance}",
        ]
        lines += [f"test_score: {o.test_score}"] if o.test_score is not None else []
        lines += [f"pruned at epoch {o.pruned_at}"] if o.pruned else []
    else:
        lines.append(f"failed: {o.error}")
    return lines + ["-" * 100]


def param_selection_text(outcomes: Sequence[TrialOutcome], objective: OptimizationValue) -> str:
    """The whole file of a finished search: every evaluation run, then the best combination."""
    lines = [line for o in outcomes for line in param_selection_block(o, objective)]
    best = best_outcome(outcomes)
    if best is not None:
        lines += ["best parameter combination", *(f"\t{n}: {plain_value(v)}" for n, v in best.params.items())]
        lines.append(f"{objective.value}: {best.final_score}")
    return "\n".join(lines) + "\n"


def trials_csv(outcomes: Sequence[TrialOutcome], parameter_names: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["trial", "run_id", "status", *SCORE_COLUMNS, "duration_s", *parameter_names, "error"])
    for o in outcomes:
        scores = [getattr(o, name) for name in SCORE_COLUMNS]
        params = [plain_value(o.params.get(name)) for name in parameter_names]
        row = [o.number, o.run_id or "", o.status.value, *scores, round(o.duration_s, 2), *params, o.error or ""]
        writer.writerow(row)
    return buffer.getvalue()


def best_params_yaml(best: TrialOutcome, objective: OptimizationValue, parameter_names: Sequence[str]) -> str:
    """The best configuration as real values, ready to paste under ``fixed:`` of a new experiment."""
    header = (
        f"# best trial {best.number} (run {best.run_id}): {objective.config_name} = {best.final_score} "
        f"(mean of the last epochs; last epoch {best.last_epoch_score})\n"
        "# usable as the 'fixed' section of a new experiment file\n"
    )
    values = {n: plain_value(best.params[n]) for n in parameter_names if best.params.get(n) is not None}
    return header + yaml.safe_dump(values, sort_keys=False)


def plot_trials(outcomes: Sequence[TrialOutcome], objective: OptimizationValue, path: Path) -> Path:
    """Score per trial with the best so far; drawn off-screen (Agg), leaving pyplot's state alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(8, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    maximise = objective is OptimizationValue.DEV_SCORE
    if any(o.rung_scores for o in outcomes):
        _plot_rungs(axes, outcomes, maximise)
    else:
        _plot_scores(axes, outcomes, maximise, objective.config_name)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set(xlabel="trial", ylabel=objective.config_name, title="search progress")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best")
    figure.tight_layout()
    figure.savefig(path)
    return path


def _plot_scores(axes: Any, outcomes: Sequence[TrialOutcome], maximise: bool, score_name: str) -> None:
    """Each trial's score, pruned and failed ones marked, and the best so far."""
    complete = [o for o in outcomes if o.status is TrialState.COMPLETE and math.isfinite(o.final_score)]
    best_so_far = list(accumulate([o.final_score for o in complete], max if maximise else min))
    pruned = [o for o in outcomes if o.pruned and math.isfinite(o.final_score)]
    if pruned:
        axes.plot([o.number for o in pruned], [o.final_score for o in pruned], "v", color="grey", label="pruned")
    numbers = [o.number for o in complete]
    axes.plot(numbers, [o.final_score for o in complete], "o", label=f"trial {score_name}")
    axes.step(numbers, best_so_far, where="post", label="best so far")
    failed = [o.number for o in outcomes if not o.ok]
    if failed:
        bottom = min((o.final_score for o in complete), default=0.0)
        axes.plot(failed, [bottom] * len(failed), "x", color="red", label="failed")


def _plot_rungs(axes: Any, outcomes: Sequence[TrialOutcome], maximise: bool) -> None:
    """A multi-fidelity search: each trial's score at every rung it ran, one series per rung saying how many trials
    ran it and its best, and the best so far among the trials of the highest rung (the ones ranked first)."""
    for epochs, (count, best) in rung_summary(outcomes, maximise).items():
        points = [
            (o.number, o.rung_scores[epochs]) for o in outcomes if math.isfinite(o.rung_scores.get(epochs, math.nan))
        ]
        label = f"{epochs} epoch{'s' if epochs > 1 else ''}: {count} trial{'s' if count > 1 else ''}, best {best:.4g}"
        axes.plot([n for n, _ in points], [v for _, v in points], "o", label=label, alpha=0.8)
    top = max(o.epochs for o in outcomes)
    finished = [
        o for o in outcomes if o.epochs == top and o.status is TrialState.COMPLETE and math.isfinite(o.final_score)
    ]
    best_so_far = list(accumulate([o.final_score for o in finished], max if maximise else min))
    axes.step([o.number for o in finished], best_so_far, where="post", label=f"best so far at {top} epochs")
