"""``flair-mlflow trials``: a search's trials read back from MLflow as a table, best first."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import Any

import mlflow
import yaml

from ..core.config import ExperimentConfig
from ..core.errors import ConfigError
from ..store.runs import connect, get_search_run, resolved_experiment_text
from ..store.trial_runs import FINAL_SCORE, maximises, ranked_trial_runs, trial_number

FIXED_COLUMNS = ["trial", "run_id", "status", FINAL_SCORE, "final_variance"]
#: scores trials log since flair-mlflow logs them: shown when some trial has them
LATER_SCORE_COLUMNS = ["last_epoch_score", "scored_epochs_variance"]


@dataclass
class TrialsTable:
    """A search's trials, best first (failed and unfinished last), as rows of plain values."""

    search_run_id: str
    optimization_value: str
    parameter_names: list[str]
    rows: list[dict[str, Any]]

    @property
    def columns(self) -> list[str]:
        later = [c for c in LATER_SCORE_COLUMNS if any(row.get(c) is not None for row in self.rows)]
        return [*FIXED_COLUMNS, *later, *self.parameter_names]

    @property
    def same_for_all(self) -> dict[str, Any]:
        """Parameters with one value in every trial (of two or more): the parent's params hold them."""
        if len(self.rows) < 2:
            return {}
        values = {name: {str(row.get(name)) for row in self.rows} for name in self.parameter_names}
        return {name: self.rows[0].get(name) for name, seen in values.items() if len(seen) == 1}

    @property
    def varying_columns(self) -> list[str]:
        """The columns a reader compares trials by: the fixed ones, and parameters that differ."""
        return [c for c in self.columns if c not in self.same_for_all]

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in self.columns])
        return buffer.getvalue()

    def to_text(self, width: int = 40) -> str:
        """Aligned columns for a terminal: long values cut to ``width``, numbers shortened; parameters
        the same in every trial are left out (see :attr:`same_for_all`)."""
        columns = self.varying_columns
        table = [columns] + [[_cell(row.get(c), width) for c in columns] for row in self.rows]
        widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
        lines = ["  ".join(value.ljust(widths[i]) for i, value in enumerate(line)).rstrip() for line in table]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines) + "\n"


def _cell(value: Any, width: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    text = _short_number(str(value))
    return text if len(text) <= width else text[: width - 1] + "…"


def _short_number(text: str) -> str:
    """``0.22314282381128248`` as ``0.223143`` in the printed table (the CSV keeps every digit)."""
    try:
        number = float(text)
    except ValueError:
        return text
    return f"{number:.6g}" if "." in text or "e" in text.lower() else text


def _parameter_names(client: mlflow.MlflowClient, search_run: Any, runs: list[Any]) -> list[str]:
    """The experiment's parameters in its order (searched, then fixed), then any other a trial logged."""
    text = resolved_experiment_text(client, search_run.info.run_id)
    try:
        names = ExperimentConfig.from_dict(yaml.safe_load(text)).parameter_names if text else []
    except (ConfigError, yaml.YAMLError, TypeError, AttributeError):
        names = []  # a table without the experiment's order is still a table
    for run in runs:
        names += [n for n in sorted(run.data.params) if n not in names]
    return names


def search_trials(search_run_id: str, tracking_uri: str | None = None) -> TrialsTable:
    """The trials of a search read back from MLflow, ranked by ``final_score``."""
    client = connect(tracking_uri).client
    search_run = get_search_run(client, search_run_id, "search_run_id")
    runs = ranked_trial_runs(client, search_run)
    names = _parameter_names(client, search_run, runs)
    rows = []
    for run in runs:
        row: dict[str, Any] = {
            "trial": trial_number(run) or None,
            "run_id": run.info.run_id,
            "status": run.info.status,
            FINAL_SCORE: run.data.metrics.get(FINAL_SCORE),
            "final_variance": run.data.metrics.get("final_variance"),
            **{name: run.data.metrics.get(name) for name in LATER_SCORE_COLUMNS},
        }
        row.update({n: run.data.params.get(n) for n in names})
        rows.append(row)
    objective = "dev_score" if maximises(search_run) else "dev_loss"
    return TrialsTable(search_run.info.run_id, objective, names, rows)
