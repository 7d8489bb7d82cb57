"""The range test's curve as plain data: its schedule, smoothed loss, stop rule and files. The TSV keeps the four
columns Flair's ``Plotter.plot_learning_rate`` reads by name; its ``TRAIN_LOSS`` is the smoothed loss."""

from __future__ import annotations

import csv
import datetime
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from ..errors import ConfigError
from .rules import LRSuggestion

TSV_COLUMNS = ("ITERATION", "TIMESTAMP", "LEARNING_RATE", "TRAIN_LOSS", "RAW_LOSS", "SMOOTHED_LOSS")
SUGGESTION_FILE_NAME = "learning_rate_suggestion.json"


@dataclass(frozen=True)
class RangeSettings:
    """How a range test sweeps: the rate grows exponentially from start (first batch) to end (last)."""

    start_learning_rate: float = 1e-7
    end_learning_rate: float = 10.0
    iterations: int = 100
    mini_batch_size: int = 32
    smoothing_factor: float = 0.9  # a window of about ten points: 0.98 (fifty) lagged the raw loss by decades
    divergence_threshold: float = 4.0
    stop_early: bool = True
    max_grad_norm: Optional[float] = 5.0

    def check(self) -> None:
        """Refuses bad settings by the command line's names, before anything is loaded or logged."""
        start, end = self.start_learning_rate, self.end_learning_rate
        if not all(math.isfinite(v) for v in (start, end, self.smoothing_factor, self.divergence_threshold)):
            raise ConfigError("start_lr", "the range settings must be finite numbers")
        if not 0 < start < end:
            raise ConfigError("start_lr", f"must be positive and below end_lr ({start} >= {end})")
        if self.iterations < 2:
            raise ConfigError("iterations", f"must be at least 2, not {self.iterations}")
        if self.mini_batch_size < 1:
            raise ConfigError("mini_batch_size", f"must be at least 1, not {self.mini_batch_size}")
        if not 0 <= self.smoothing_factor < 1:
            raise ConfigError("smoothing", f"must be in [0, 1), not {self.smoothing_factor}")
        if self.divergence_threshold <= 1:
            raise ConfigError("divergence_threshold", f"must be above 1, not {self.divergence_threshold}")

    def learning_rate(self, step: int) -> float:
        """Exactly the start on the first batch and exactly the end on the last."""
        fraction = step / (self.iterations - 1) if self.iterations > 1 else 0.0
        return self.start_learning_rate * (self.end_learning_rate / self.start_learning_rate) ** fraction

    def stop_reason(self, smoothed: float, best: float, learning_rate: float) -> Optional[str]:
        """Why to stop (a non-finite loss, or above threshold x the best), or None; never with ``stop_early`` off."""
        if not self.stop_early:
            return None
        if not math.isfinite(smoothed):
            return f"loss is {smoothed} at learning rate {learning_rate:.3e}"
        if best > 0 and smoothed > self.divergence_threshold * best:
            return f"smoothed loss {smoothed:.4g} > {self.divergence_threshold} x best {best:.4g} at learning rate {learning_rate:.3e}"
        return None

    def logged_params(self, optimizer: str) -> dict[str, Any]:
        return {"optimizer": optimizer, "start_lr": self.start_learning_rate, "end_lr": self.end_learning_rate,
                "iterations": self.iterations, "mini_batch_size": self.mini_batch_size,
                "smoothing": self.smoothing_factor, "divergence_threshold": self.divergence_threshold}  # fmt: skip


DEFAULTS = RangeSettings()  # the tutorial's defaults, the one place every signature takes them from


@dataclass
class SmoothedLoss:
    """The bias-corrected exponential moving average of the loss, and its lowest finite value."""

    factor: float
    average: float = 0.0
    count: int = 0
    best: float = math.inf

    def add(self, raw: float) -> float:
        self.average = self.factor * self.average + (1 - self.factor) * raw
        self.count += 1
        smoothed = self.average / (1 - self.factor**self.count)
        if math.isfinite(smoothed):
            self.best = min(self.best, smoothed)
        return smoothed


@dataclass
class LRCurve:
    iterations: list[int] = field(default_factory=list)
    learning_rates: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed_losses: list[float] = field(default_factory=list)

    def add(self, step: int, learning_rate: float, raw: float, smoothed: float) -> None:
        self.iterations.append(step)
        self.learning_rates.append(learning_rate)
        self.losses.append(raw)
        self.smoothed_losses.append(smoothed)


def tsv_header() -> str:
    return "\t".join(TSV_COLUMNS) + "\n"


def tsv_row(step: int, learning_rate: float, raw: float, smoothed: float, clock: Optional[str] = None) -> str:
    """Floats in full (``repr``), so the curve reads back exactly."""
    clock = clock if clock is not None else f"{datetime.datetime.now():%H:%M:%S}"
    return f"{step}\t{clock}\t{learning_rate!r}\t{smoothed!r}\t{raw!r}\t{smoothed!r}\n"


def read_learning_rate_tsv(tsv_path: Union[str, Path]) -> LRCurve:
    """By column name, so Flair's old files (``TRAIN_LOSS`` standing in for RAW and SMOOTHED) read too."""
    curve = LRCurve()
    with open(tsv_path, encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            raw, smoothed = row.get("RAW_LOSS", row["TRAIN_LOSS"]), row.get("SMOOTHED_LOSS", row["TRAIN_LOSS"])
            curve.add(int(row["ITERATION"]), float(row["LEARNING_RATE"]), float(raw), float(smoothed))
    return curve


def write_suggestion_file(folder: Path, suggestion: LRSuggestion, rows: int, stopped_reason: Optional[str],
                          settings: Mapping[str, Any]) -> Path:  # fmt: skip
    """``learning_rate_suggestion.json`` beside the TSV: the suggestion, how the test ended, its settings."""
    summary = {"suggestion": asdict(suggestion), "rows": rows, "stopped_early": stopped_reason is not None,
               "stopped_reason": stopped_reason, "settings": dict(settings)}  # fmt: skip
    path = Path(folder) / SUGGESTION_FILE_NAME
    path.write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    return path


def read_suggestion_file(folder: Union[str, Path]) -> LRSuggestion:
    """Exactly the suggestion written: JSON keeps floats' full precision."""
    return LRSuggestion(**json.loads((Path(folder) / SUGGESTION_FILE_NAME).read_text(encoding="utf-8"))["suggestion"])
