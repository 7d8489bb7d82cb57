"""The files a search leaves on its parent run: param_selection.txt, trials.csv, best_params.yaml, trials.png."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Sequence

import yaml

from ..config import OptimizationValue
from ..training.models import plain_value
from .outcome import TrialOutcome, TrialState, best_outcome

#: a trial's scores in trials.csv, after its number, run and status (``loss`` is what hyperopt minimised)
SCORE_COLUMNS = ("final_score", "last_epoch_score", "final_variance", "scored_epochs_variance", "loss")


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
    complete = [o for o in outcomes if o.status is TrialState.COMPLETE and math.isfinite(o.final_score)]
    best_so_far, best = [], None
    for o in complete:
        best = o.final_score if best is None or (o.final_score > best) == maximise else best
        best_so_far.append(best)
    pruned = [o for o in outcomes if o.pruned and math.isfinite(o.final_score)]
    if pruned:
        axes.plot([o.number for o in pruned], [o.final_score for o in pruned], "v", color="grey", label="pruned")
    numbers = [o.number for o in complete]
    axes.plot(numbers, [o.final_score for o in complete], "o", label=f"trial {objective.config_name}")
    axes.step(numbers, best_so_far, where="post", label="best so far")
    failed = [o.number for o in outcomes if not o.ok]
    if failed:
        bottom = min((o.final_score for o in complete), default=0.0)
        axes.plot(failed, [bottom] * len(failed), "x", color="red", label="failed")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set(xlabel="trial", ylabel=objective.config_name, title="search progress")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best")
    figure.tight_layout()
    figure.savefig(path)
    return path
