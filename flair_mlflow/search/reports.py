"""The files a search leaves on its parent run: param_selection.txt, trials.csv, best_params.yaml, a plot."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Sequence

import yaml

from ..adapters.models import plain_value, value_text
from ..core.outcome import TrialOutcome, TrialState, best_outcome
from ..core.parameters import OptimizationValue


def param_selection_text(outcomes: Sequence[TrialOutcome], objective: OptimizationValue, finished: bool) -> str:
    """Flair's old ``param_selection.txt``: one block per evaluation run, values not indices."""
    lines: list[str] = []
    for outcome in outcomes:
        lines.append(f"evaluation run {outcome.number}")
        for name, value in outcome.params.items():
            lines.append(f"\t{name}: {value_text(value)}")
        if outcome.ok:
            lines.append(f"{objective.value}: {outcome.final_score}")
            lines.append(f"variance: {outcome.final_variance}")
            lines.append(f"last epoch {objective.value}: {outcome.last_epoch_score}")
            lines.append(f"variance over the scored epochs: {outcome.scored_epochs_variance}")
            if outcome.test_score is not None:
                lines.append(f"test_score: {outcome.test_score}")
            if outcome.pruned:
                lines.append(f"pruned at epoch {outcome.pruned_at}")
        else:
            lines.append(f"failed: {outcome.error}")
        lines.append("-" * 100)
    best = best_outcome(outcomes)
    if finished and best is not None:
        lines.append("best parameter combination")
        for name, value in best.params.items():
            lines.append(f"\t{name}: {value_text(value)}")
        lines.append(f"{objective.value}: {best.final_score}")
    return "\n".join(lines) + "\n"


#: a trial's scores in trials.csv, after its number, run and status (``loss`` is what hyperopt minimised)
SCORE_COLUMNS = ("final_score", "last_epoch_score", "final_variance", "scored_epochs_variance", "loss")


def trials_csv(outcomes: Sequence[TrialOutcome], parameter_names: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["trial", "run_id", "status", *SCORE_COLUMNS, "duration_s", *parameter_names, "error"])
    for o in outcomes:
        writer.writerow(
            [o.number, o.run_id or "", o.status.value]
            + [getattr(o, name) for name in SCORE_COLUMNS]
            + [round(o.duration_s, 2)]
            + [value_text(o.params.get(name)) for name in parameter_names]
            + [o.error or ""]
        )
    return buffer.getvalue()


def best_params_yaml(best: TrialOutcome, objective: OptimizationValue, parameter_names: Sequence[str]) -> str:
    """The best configuration as real values, ready to paste under ``fixed:`` of a new experiment."""
    header = (
        f"# best trial {best.number} (run {best.run_id}): {objective.config_name} = {best.final_score} "
        f"(mean of the last epochs; last epoch {best.last_epoch_score})\n"
        "# usable as the 'fixed' section of a new experiment file\n"
    )
    values = {name: plain_value(best.params.get(name)) for name in parameter_names if best.params.get(name) is not None}
    return header + yaml.safe_dump(values, sort_keys=False)


def plot_trials(outcomes: Sequence[TrialOutcome], objective: OptimizationValue, path: Path) -> Path:
    """Score per trial with the best so far; drawn off-screen (Agg), never opening a window."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(8, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    maximise = objective is OptimizationValue.DEV_SCORE
    numbers, scores, best_so_far = [], [], []
    best = None
    pruned = [o for o in outcomes if o.pruned and math.isfinite(o.final_score)]
    for o in outcomes:
        if o.status is not TrialState.COMPLETE or not math.isfinite(o.final_score):
            continue
        numbers.append(o.number)
        scores.append(o.final_score)
        if best is None or (o.final_score > best if maximise else o.final_score < best):
            best = o.final_score
        best_so_far.append(best)
    if pruned:
        axes.plot([o.number for o in pruned], [o.final_score for o in pruned], "v", color="grey", label="pruned")
    failed = [o.number for o in outcomes if not o.ok]
    axes.plot(numbers, scores, "o", label=f"trial {objective.config_name}")
    axes.step(numbers, best_so_far, where="post", label="best so far")
    if failed:
        bottom = min(scores) if scores else 0.0
        axes.plot(failed, [bottom] * len(failed), "x", color="red", label="failed")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # trials are whole numbers
    axes.set_xlabel("trial")
    axes.set_ylabel(objective.config_name)
    axes.set_title("search progress")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best")
    figure.tight_layout()
    figure.savefig(path)
    return path
