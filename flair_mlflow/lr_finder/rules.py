"""A learning rate read off a range-test curve by fastai's rules (pure numpy), warning when not to trust it.
Steepest is the default: on both examples the valley sat a decade and more below the best rate (docs/lr-finder.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

MIN_POINTS = 10  # fewer finite points and the curve is too short to judge (and is not trimmed)
MIN_RELATIVE_DROP = 0.05  # the smoothed loss must fall this far below its start to count as a descent
RULES_DISAGREE_FACTOR = 30  # on a clean curve the valley and the steepest descent sit closer than this
RULE_ORDER = ("steepest", "valley", "minimum_div_10")  # the rule of ``suggested_lr``, then its stand-ins


@dataclass
class LRSuggestion:
    """Learning rates read off the curve; ``warning`` says when not to trust them."""

    suggested_lr: float
    steepest: Optional[float]
    valley: Optional[float]
    minimum_div_10: Optional[float]
    default_rule: str
    warning: Optional[str] = None


def valley_index(losses: np.ndarray) -> Optional[int]:
    """fastai's valley: half-way down the longest decreasing run, far from both the plateau and the minimum."""
    n = len(losses)
    lds = np.ones(n, dtype=np.int64)
    max_start = max_end = 0
    for i in range(1, n):
        earlier_higher = losses[:i] > losses[i]
        if earlier_higher.any():
            lds[i] = lds[:i][earlier_higher].max() + 1
        if lds[max_end] < lds[i]:
            max_end, max_start = i, max(0, i - int(lds[i]))
    if n < 2 or lds[max_end] < 2:
        return None
    sections = (max_end - max_start) / 3
    return min(n - 1, max_start + int(sections) + int(sections / 2))


def steepest_index(learning_rates: np.ndarray, losses: np.ndarray) -> Optional[int]:
    """The most negative d(loss)/d(log lr): where the loss falls fastest per factor of rate."""
    if len(losses) < 2:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.diff(losses) / np.diff(np.log(learning_rates))
    slope = np.where(np.isfinite(slope), slope, np.inf)
    return int(np.argmin(slope)) if slope.min() < 0 else None


def trimmed(lrs: np.ndarray, losses: np.ndarray, skip_first: Optional[int],
            skip_last: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Without the shaky start of the average and the blow-up, as fastai trims; whole if too short to trim."""
    first = len(losses) // 10 if skip_first is None else skip_first
    end = len(losses) - skip_last
    return (lrs[first:end], losses[first:end]) if end - first >= MIN_POINTS else (lrs, losses)


def shape_warnings(trimmed_losses: np.ndarray, finite_losses: np.ndarray, had_non_finite: bool,
                   threshold: float) -> list[str]:  # fmt: skip
    """Shape judged on the trimmed curve (its first point is one batch's loss), the blow-up on the whole one."""
    points, lowest_at = len(trimmed_losses), int(np.argmin(trimmed_losses))
    start = float(trimmed_losses[0])
    drop = (start - float(trimmed_losses[lowest_at])) / abs(start) if start != 0 else 0.0
    lowest = float(finite_losses.min())
    diverged = had_non_finite or (lowest > 0 and float(finite_losses[-1]) > threshold * lowest)
    warnings = []
    if len(finite_losses) < MIN_POINTS:
        warnings.append(
            f"the curve is too short ({len(finite_losses)} finite points, want at least {MIN_POINTS}); run more iterations"
        )
    if diverged and lowest_at < max(2, points // 10):  # the lowest loss among the first points: too high at once
        warnings.append(
            f"the loss diverged at once (lowest loss at point {lowest_at} of {points}); lower start_learning_rate"
        )
    elif drop < MIN_RELATIVE_DROP:
        warnings.append(
            f"no descent: the smoothed loss never dropped meaningfully ({drop:.1%} below its start); "
            "raise end_learning_rate or iterations, or check the model and data"
        )
    if not diverged and lowest_at >= points - 2 and drop >= MIN_RELATIVE_DROP:
        warnings.append(
            "the loss was still falling at the end of the range: the curve has no minimum yet; raise end_learning_rate or iterations"
        )
    return warnings


def disagreement_warning(valley: Optional[float], steepest: Optional[float]) -> Optional[str]:
    """Far apart, the valley and steepest-descent rules say the curve is unclear."""
    factor = max(valley, steepest) / min(valley, steepest) if valley and steepest else 1.0
    if factor <= RULES_DISAGREE_FACTOR:
        return None
    return f"the valley ({valley:.2g}) and steepest-descent ({steepest:.2g}) rules disagree by {factor:.0f}x; read the plot"


def suggest_learning_rates(learning_rates: Sequence[float], losses_smoothed: Sequence[float], *,
                           divergence_threshold: float = 4.0, skip_first: Optional[int] = None,
                           skip_last: int = 5) -> LRSuggestion:  # fmt: skip
    """The first rule of :data:`RULE_ORDER` that finds a rate on the finite, trimmed curve; a doubtful one warns."""
    lrs, losses = np.asarray(learning_rates, dtype=np.float64), np.asarray(losses_smoothed, dtype=np.float64)
    if lrs.shape != losses.shape or lrs.ndim != 1:
        raise ValueError("learning_rates and losses_smoothed must be 1-D and of equal length")
    if len(lrs) == 0:
        raise ValueError("the curve is empty")
    finite = np.isfinite(losses) & np.isfinite(lrs) & (lrs > 0)
    if not finite.any():
        warning = (
            "the loss was not finite from the first iteration: the model diverged at once; lower "
            "start_learning_rate (the start rate is returned only as a placeholder)"
        )
        return LRSuggestion(float(lrs[0]), None, None, None, "start_learning_rate", warning)
    t_lrs, t_losses = trimmed(lrs[finite], losses[finite], skip_first, skip_last)
    indices = {"steepest": steepest_index(t_lrs, t_losses), "valley": valley_index(t_losses)}
    found = {rule: None if at is None else float(t_lrs[at]) for rule, at in indices.items()}
    found["minimum_div_10"] = float(t_lrs[int(np.argmin(t_losses))]) / 10.0
    warnings = shape_warnings(t_losses, losses[finite], not bool(finite.all()), divergence_threshold)
    warnings += [w for w in [disagreement_warning(found["valley"], found["steepest"])] if w]
    rule = next(name for name in RULE_ORDER if found[name] is not None)
    warning = "; ".join(warnings) or None
    return LRSuggestion(found[rule], found["steepest"], found["valley"], found["minimum_div_10"], rule, warning)
