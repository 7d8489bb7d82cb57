"""The range-test curve drawn on an Agg canvas: Flair's ``Plotter.plot_learning_rate`` blocks in ``plt.show``;
this is safe in servers, notebooks and tests, and leaves pyplot's state alone."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Optional, Union

from .curve import SUGGESTION_FILE_NAME, read_learning_rate_tsv
from .rules import LRSuggestion, suggest_learning_rates

log = logging.getLogger("flair")


class Plotter:
    def plot_learning_rate(self, file_name: Union[str, Path], skip_first: int = 10, skip_last: int = 5, suggestion: Optional[LRSuggestion] = None) -> Path:  # fmt: skip
        """``learning_rate.png`` beside the TSV; ``skip_first``/``skip_last`` only keep points out of the y scale."""
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
            title = "warning: " + suggestion.warning if suggestion.warning else ""
            ax.set_title(title, fontsize=7, color="tab:red", wrap=True)
        ax.set(xscale="log", xlabel="learning rate", ylabel="loss per data point")
        if lrs:  # the range set (from the suggestion file), else the curve's: a test stopped early shows its extent
            try:
                settings = json.loads((file_name.parent / SUGGESTION_FILE_NAME).read_text(encoding="utf-8"))["settings"]
                x_range = float(settings["start_learning_rate"]), float(settings["end_learning_rate"])
            except (OSError, KeyError, TypeError, ValueError):
                x_range = min(lrs), max(lrs)
            ax.set_xlim(*x_range)
        end = len(lrs) - skip_last if skip_last > 0 else len(lrs)  # the y scale needs two points left after skipping
        scaled = slice(skip_first, end) if end - skip_first >= 2 else slice(0, len(lrs))
        finite = [v for v in smoothed[scaled] if math.isfinite(v)]
        if finite:  # scaled to the smoothed curve and down to the lowest raw loss: raw spikes would squash it
            low, high = min(finite + [v for v in raw[scaled] if math.isfinite(v)]), max(finite)
            pad = 0.05 * (high - low) if high > low else max(abs(high) * 0.05, 1e-3)
            top = high + pad
            ax.set_ylim(low - pad, top)
            clipped = [lr for lr, loss in zip(lrs, raw) if not math.isfinite(loss) or loss > top]
            if clipped:  # marked on the top edge, not hidden
                marker = {"color": "tab:orange", "markersize": 4, "clip_on": False}
                ax.plot(clipped, [top] * len(clipped), "^", **marker, label=f"loss above the axis ({len(clipped)})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        figure.tight_layout()
        path = file_name.parent / "learning_rate.png"
        figure.savefig(path, format="png")
        log.info(f"Learning rate plot saved to {path}")
        return path
