"""The range-test curve as a picture, drawn off-screen: Flair's ``Plotter.plot_learning_rate`` calls
``plt.show(block=True)``, which blocks on an interactive backend; this draws on an Agg canvas, safe in
servers, notebooks and tests, and leaves pyplot's state alone."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Optional, Union

from .curve import SUGGESTION_FILE_NAME, read_learning_rate_tsv
from .rules import LRSuggestion, suggest_learning_rates

log = logging.getLogger("flair")


def scaled_slice(points: int, skip_first: int, skip_last: int) -> slice:
    """The points the loss axis is scaled to: all but the skipped ones (the shaky start of the moving average,
    the blow-up), or the whole curve where skipping would leave fewer than two."""
    end = points - skip_last if skip_last > 0 else points
    return slice(skip_first, end) if end - skip_first >= 2 else slice(0, points)


def tested_range(tsv_path: Path, learning_rates: list[float]) -> tuple[float, float]:
    """The range the test was set to sweep (from the suggestion file beside the TSV), else the curve's own: a
    test stopped by divergence still shows where it would have gone."""
    try:
        settings = json.loads((tsv_path.parent / SUGGESTION_FILE_NAME).read_text(encoding="utf-8"))["settings"]
        return float(settings["start_learning_rate"]), float(settings["end_learning_rate"])
    except (OSError, KeyError, TypeError, ValueError):
        return min(learning_rates), max(learning_rates)


class Plotter:
    """Plots the range-test curve without touching pyplot's global state."""

    def plot_learning_rate(self, file_name: Union[str, Path], skip_first: int = 10, skip_last: int = 5, suggestion: Optional[LRSuggestion] = None) -> Path:  # fmt: skip
        """Write ``learning_rate.png`` beside the TSV and return its path, the suggestion (computed from the TSV
        when not given) marked. Every point is drawn over the whole tested range; ``skip_first``/``skip_last``
        (Flair's arguments) only keep points out of the loss axis's scale, and raw losses above it are marked on
        its top edge, clipped, not hidden."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        file_name = Path(file_name)
        curve = read_learning_rate_tsv(file_name)
        lrs, raw, smoothed = curve.learning_rates, curve.losses, curve.smoothed_losses
        suggestion = suggestion or (suggest_learning_rates(lrs, smoothed) if lrs else None)
        figure = Figure(figsize=(8, 5), dpi=150)
        FigureCanvasAgg(figure)
        ax = figure.add_subplot(1, 1, 1)
        ax.plot(lrs, raw, color="tab:blue", alpha=0.3, linewidth=1, label="loss")
        ax.plot(lrs, smoothed, color="tab:blue", linewidth=2, label="smoothed loss")
        if suggestion is not None:
            label = f"suggested lr {suggestion.suggested_lr:.2e} ({suggestion.default_rule})"
            ax.axvline(suggestion.suggested_lr, color="tab:red", linestyle="--", label=label)
            ax.set_title(
                "warning: " + suggestion.warning if suggestion.warning else "", fontsize=7, color="tab:red", wrap=True
            )
        ax.set(xscale="log", xlabel="learning rate", ylabel="loss per data point")
        if lrs:
            ax.set_xlim(*tested_range(file_name, lrs))
        scaled = scaled_slice(len(lrs), skip_first, skip_last)
        finite = [v for v in smoothed[scaled] if math.isfinite(v)]
        if finite:  # scaled to the smoothed curve and down to the lowest raw loss: raw spikes would squash it
            low, high = min(finite + [v for v in raw[scaled] if math.isfinite(v)]), max(finite)
            pad = 0.05 * (high - low) if high > low else max(abs(high) * 0.05, 1e-3)
            ax.set_ylim(low - pad, high + pad)
            clipped = [lr for lr, loss in zip(lrs, raw) if not math.isfinite(loss) or loss > high + pad]
            if clipped:
                ax.plot(
                    clipped,
                    [high + pad] * len(clipped),
                    "^",
                    color="tab:orange",
                    markersize=4,
                    clip_on=False,
                    label=f"loss above the axis ({len(clipped)})",
                )
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        figure.tight_layout()
        path = file_name.parent / "learning_rate.png"
        figure.savefig(path, format="png")
        log.info(f"Learning rate plot saved to {path}")
        return path
