"""Reading a learning rate off a range-test curve: fastai's rules, and when not to trust them.

Pure numpy, so every rule can be tested on synthetic curves. The rules: *steepest* (the default:
where the loss falls fastest per factor of rate, Leslie Smith's choice), *valley* (fastai's:
half-way down the longest descent) and *minimum/10*. A curve that cannot support a suggestion still
gets one, with a ``warning``.

Why steepest: ``benchmarks/bench_lr_ground_truth.py`` trains each example's model at fixed rates; on both,
the valley sat a decade and more below the best rate (see docs/lr-finder.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

#: fewer finite points than this and the curve is too short to judge (and is not trimmed)
MIN_POINTS = 10
#: the smoothed loss must fall at least this far below its start to count as a descent
MIN_RELATIVE_DROP = 0.05
#: on a clean curve the valley and the steepest descent sit close; further apart than this, warn
RULES_DISAGREE_FACTOR = 30
#: the rule whose rate is ``suggested_lr``, then the ones that stand in where a curve gives it none
RULE_ORDER = ("steepest", "valley", "minimum_div_10")


@dataclass
class LRSuggestion:
    """Learning rates read off the curve; ``warning`` says when not to trust them."""

    suggested_lr: float
    steepest: Optional[float]
    valley: Optional[float]
    minimum_div_10: Optional[float]
    default_rule: str
    warning: Optional[str] = None


@dataclass
class CurveShape:
    """What the warnings judge: where the minimum is, how far the loss fell, whether it blew up."""

    points: int  # of the trimmed curve
    minimum_index: int  # in the trimmed curve
    relative_drop: float  # from the trimmed curve's first point to its minimum
    diverged: bool  # a non-finite loss, or the last loss above threshold x the lowest

    @property
    def fell_at_once(self) -> bool:
        """The lowest loss is among the first points: the rate was too high from the start."""
        return self.minimum_index < max(2, self.points // 10)


def valley_index(losses: np.ndarray) -> Optional[int]:
    """fastai's valley rule: longest (not necessarily contiguous) decreasing run, its middle.

    fastai takes ``start + len/3 + len/6`` of the span, i.e. half-way down the valley: far
    enough from the plateau to learn quickly, far enough from the minimum to be stable.
    """
    n = len(losses)
    if n < 2:
        return None
    lds = np.ones(n, dtype=np.int64)
    max_start = max_end = 0
    for i in range(1, n):
        earlier_higher = losses[:i] > losses[i]
        if earlier_higher.any():
            lds[i] = lds[:i][earlier_higher].max() + 1
        if lds[max_end] < lds[i]:
            max_end = i
            max_start = max(0, max_end - int(lds[max_end]))
    if lds[max_end] < 2:
        return None
    sections = (max_end - max_start) / 3
    return min(n - 1, max_start + int(sections) + int(sections / 2))


def steepest_index(learning_rates: np.ndarray, losses: np.ndarray) -> Optional[int]:
    """Most negative d(loss)/d(log lr): where the loss falls fastest per factor of rate."""
    if len(losses) < 2:
        return None
    log_lr = np.log(learning_rates)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (losses[1:] - losses[:-1]) / (log_lr[1:] - log_lr[:-1])
    slope = np.where(np.isfinite(slope), slope, np.inf)
    idx = int(np.argmin(slope))
    if not slope[idx] < 0:
        return None
    return idx


def trimmed(
    lrs: np.ndarray, losses: np.ndarray, skip_first: Optional[int], skip_last: int
) -> tuple[np.ndarray, np.ndarray]:
    """The curve without its first 10% (or ``skip_first``) and last ``skip_last`` points, as fastai
    does: the bias-corrected average is shaky at the start and the end is the blow-up. A curve that
    would keep fewer than :data:`MIN_POINTS` is returned whole."""
    n = len(losses)
    first = n // 10 if skip_first is None else skip_first
    if n - first - skip_last >= MIN_POINTS:
        return lrs[first : n - skip_last], losses[first : n - skip_last]
    return lrs, losses


def curve_shape(
    trimmed_losses: np.ndarray, finite_losses: np.ndarray, had_non_finite: bool, divergence_threshold: float
) -> CurveShape:
    """The shape is judged on the trimmed curve (its first point is a single batch's loss); the
    blow-up on the whole finite curve."""
    minimum_index = int(np.argmin(trimmed_losses))
    start_loss = float(trimmed_losses[0])
    minimum = float(trimmed_losses[minimum_index])
    relative_drop = (start_loss - minimum) / abs(start_loss) if start_loss != 0 else 0.0
    lowest = float(finite_losses.min())
    diverged = had_non_finite or (lowest > 0 and float(finite_losses[-1]) > divergence_threshold * lowest)
    return CurveShape(len(trimmed_losses), minimum_index, relative_drop, diverged)


def shape_warnings(shape: CurveShape, finite_points: int) -> list[str]:
    """Why the curve cannot be trusted: too short, diverging at once, flat, or still falling."""
    warnings: list[str] = []
    if finite_points < MIN_POINTS:
        warnings.append(
            f"the curve is too short ({finite_points} finite points, want at least {MIN_POINTS}); run more iterations"
        )
    if shape.diverged and shape.fell_at_once:
        warnings.append(
            f"the loss diverged at once (lowest loss at point {shape.minimum_index} of {shape.points}); "
            "lower start_learning_rate"
        )
    elif shape.relative_drop < MIN_RELATIVE_DROP:
        warnings.append(
            f"no descent: the smoothed loss never dropped meaningfully ({shape.relative_drop:.1%} below its start); "
            "raise end_learning_rate or iterations, or check the model and data"
        )
    descended = shape.relative_drop >= MIN_RELATIVE_DROP
    if not shape.diverged and shape.minimum_index >= shape.points - 2 and descended:
        warnings.append(
            "the loss was still falling at the end of the range: the curve has no minimum yet; "
            "raise end_learning_rate or iterations"
        )
    return warnings


def disagreement_warning(valley: Optional[float], steepest: Optional[float]) -> Optional[str]:
    """Far apart, the valley and steepest-descent rules say the curve is unclear."""
    if not (valley and steepest):
        return None
    factor = max(valley, steepest) / min(valley, steepest)
    if factor <= RULES_DISAGREE_FACTOR:
        return None
    return f"the valley ({valley:.2g}) and steepest-descent ({steepest:.2g}) rules disagree by {factor:.0f}x; read the plot"


def _diverged_from_the_start(first_lr: float) -> LRSuggestion:
    return LRSuggestion(
        suggested_lr=first_lr,
        steepest=None,
        valley=None,
        minimum_div_10=None,
        default_rule="start_learning_rate",
        warning="the loss was not finite from the first iteration: the model diverged at once; "
        "lower start_learning_rate (the start rate is returned only as a placeholder)",
    )


def suggest_learning_rates(
    learning_rates: Sequence[float],
    losses_smoothed: Sequence[float],
    *,
    divergence_threshold: float = 4.0,
    skip_first: Optional[int] = None,
    skip_last: int = 5,
) -> LRSuggestion:
    """Suggest learning rates from a range-test curve, flagging curves that can't support one.

    Non-finite losses are dropped and the curve is :func:`trimmed`. The first of :data:`RULE_ORDER`
    that finds a rate gives ``suggested_lr``. A curve that is too short, never drops by at least 5%,
    or rises from its first points still gets a ``suggested_lr`` but carries a ``warning``.
    """
    lrs = np.asarray(learning_rates, dtype=np.float64)
    losses = np.asarray(losses_smoothed, dtype=np.float64)
    if lrs.shape != losses.shape or lrs.ndim != 1:
        raise ValueError("learning_rates and losses_smoothed must be 1-D and of equal length")
    if len(lrs) == 0:
        raise ValueError("the curve is empty")
    finite = np.isfinite(losses) & np.isfinite(lrs) & (lrs > 0)
    if not finite.any():
        return _diverged_from_the_start(float(lrs[0]))

    f_lrs, f_losses = lrs[finite], losses[finite]
    t_lrs, t_losses = trimmed(f_lrs, f_losses, skip_first, skip_last)
    shape = curve_shape(t_losses, f_losses, not bool(finite.all()), divergence_threshold)
    valley_idx, steep_idx = valley_index(t_losses), steepest_index(t_lrs, t_losses)
    valley = float(t_lrs[valley_idx]) if valley_idx is not None else None
    steepest = float(t_lrs[steep_idx]) if steep_idx is not None else None
    minimum_div_10 = float(t_lrs[shape.minimum_index]) / 10.0

    warnings = shape_warnings(shape, len(f_losses))
    disagreement = disagreement_warning(valley, steepest)
    if disagreement:
        warnings.append(disagreement)
    found = {"steepest": steepest, "valley": valley, "minimum_div_10": minimum_div_10}
    rule = next(name for name in RULE_ORDER if found[name] is not None)
    return LRSuggestion(found[rule], steepest, valley, minimum_div_10, rule, "; ".join(warnings) if warnings else None)
