"""A range test's curve, suggestion and files into an MLflow run, through the one batching writer.

The curve goes in through :class:`MetricBuffer` (``log_batch`` in chunks of 1000 points): the
tracking store costs several milliseconds per call, so one ``log_metric`` per point would dominate
a long run. Knows MLflow and nothing of Flair.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Union

import mlflow

from ..core.lr_curve import SUGGESTION_FILE_NAME, LRCurve, read_learning_rate_tsv
from ..core.lr_rules import LRSuggestion, suggest_learning_rates
from .tags import LR_DEFAULT_RULE_TAG, LR_WARNING_TAG
from .writer import MetricBuffer, RunWriter

#: the curve, one point per iteration (step = iteration)
CURVE_METRICS = ("lr_find/learning_rate", "lr_find/loss", "lr_find/smoothed_loss")
#: each rule's suggestion, as LRSuggestion holds it; ``suggested_lr`` is what ``lr_from`` reads
SUGGESTION_METRICS = {
    "suggested_lr": "suggested_lr",
    "suggested_lr_steepest": "steepest",
    "suggested_lr_valley": "valley",
    "suggested_lr_min_div_10": "minimum_div_10",
}


def _add_curve(buffer: MetricBuffer, curve: LRCurve) -> None:
    rows = zip(curve.iterations, curve.learning_rates, curve.losses, curve.smoothed_losses)
    for step, *values in rows:
        for key, value in zip(CURVE_METRICS, values):
            buffer.add(key, value, step)


def _add_suggestion(buffer: MetricBuffer, suggestion: LRSuggestion) -> None:
    for key, attribute in SUGGESTION_METRICS.items():
        value = getattr(suggestion, attribute)
        if value is not None:
            buffer.add(key, value, 0)


def _active_run_id() -> str:
    active = mlflow.active_run()
    if active is None:
        raise ValueError("no run_id given and no active MLflow run")
    return active.info.run_id


def log_lr_find_to_mlflow(
    tsv_path: Union[str, Path],
    suggestion: Optional[LRSuggestion],
    png_path: Optional[Union[str, Path]],
    params: Optional[Mapping[str, Any]] = None,
    run_id: Optional[str] = None,
    writer: Optional[RunWriter] = None,
) -> str:
    """Log a range test to an MLflow run (``run_id`` or the active fluent run); returns the run id.

    ``writer`` defaults to one for MLflow's current tracking URI; ``params`` are plain values,
    logged as :meth:`RunWriter.log_params` logs any; ``suggestion=None`` recomputes it from the TSV.
    The suggestion file beside the TSV is logged with it when there is one.
    """
    tsv_path = Path(tsv_path)
    writer = writer if writer is not None else RunWriter()
    run_id = run_id if run_id is not None else _active_run_id()
    curve = read_learning_rate_tsv(tsv_path)
    if suggestion is None:
        suggestion = suggest_learning_rates(curve.learning_rates, curve.smoothed_losses)

    if params:
        writer.log_params(run_id, params)
    tags = {LR_DEFAULT_RULE_TAG: suggestion.default_rule}
    if suggestion.warning:
        tags[LR_WARNING_TAG] = suggestion.warning
    writer.set_tags(run_id, tags)
    buffer = MetricBuffer(writer.client, run_id)
    _add_curve(buffer, curve)
    _add_suggestion(buffer, suggestion)
    buffer.flush()

    writer.log_file(run_id, tsv_path)
    if png_path is not None:
        writer.log_file(run_id, png_path)
    if (tsv_path.parent / SUGGESTION_FILE_NAME).exists():
        writer.log_file(run_id, tsv_path.parent / SUGGESTION_FILE_NAME)
    return run_id
