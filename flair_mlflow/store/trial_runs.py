"""A search's trial runs as MLflow holds them, ranked best first.

Both ``register`` (which trial is best) and ``trials`` (the table) read a search back this way,
so a search cut short ranks its trials the same in both, and neither job imports the other.
"""

from __future__ import annotations

import math
from typing import Any

import mlflow

from ..core.parameters import OptimizationValue
from .runs import child_runs
from .tags import TRIAL_NUMBER_TAG

FINAL_SCORE = "final_score"


def maximises(search_run: Any) -> bool:
    """Whether the search ranked trials by a score to maximise (``dev_score``), not a loss."""
    objective = OptimizationValue.parse(search_run.data.params.get("optimization_value", "dev_score"))
    return objective is OptimizationValue.DEV_SCORE


def trial_number(run: Any) -> int:
    """The trial's number from its tag; 0 where it has none."""
    try:
        return int(run.data.tags.get(TRIAL_NUMBER_TAG, 0))
    except ValueError:
        return 0


def has_final_score(run: Any) -> bool:
    """A trial that finished with a finite ``final_score``: one that can be ranked."""
    return run.info.status == "FINISHED" and math.isfinite(run.data.metrics.get(FINAL_SCORE, math.nan))


def ranked_trial_runs(client: mlflow.MlflowClient, search_run: Any) -> list[Any]:
    """The search's trial runs: those with a final score best first, then the rest (failed,
    unfinished); ties and the rest in trial order."""
    sign = -1.0 if maximises(search_run) else 1.0

    def key(run: Any) -> tuple[int, float, int]:
        if not has_final_score(run):
            return (1, 0.0, trial_number(run))
        return (0, sign * run.data.metrics[FINAL_SCORE], trial_number(run))

    return sorted(child_runs(client, search_run.info.experiment_id, search_run.info.run_id), key=key)
