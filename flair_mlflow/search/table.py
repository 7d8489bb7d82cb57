"""``flair-mlflow trials``: a search's trials read back from MLflow as a table, best first."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..tracking.search_runs import (
    FINAL_SCORE,
    get_search_run,
    maximises,
    ranked_trial_runs,
    recorded_experiment,
    trial_number,
)
from ..tracking.store import connect

FIXED_COLUMNS = ["trial", "run_id", "status", FINAL_SCORE, "final_variance"]
#: scores that trials of older versions lack: shown when some trial has them
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
        return {n: self.rows[0].get(n) for n in self.parameter_names if len({str(r.get(n)) for r in self.rows}) == 1}

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(self.columns)
        writer.writerows([["" if row.get(c) is None else row.get(c) for c in self.columns] for row in self.rows])
        return buffer.getvalue()

    def to_text(self, width: int = 40) -> str:
        """Aligned columns for a terminal, long values cut to ``width``, numbers shortened, and the parameters
        every trial shares left out."""
        columns = [c for c in self.columns if c not in self.same_for_all]
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
    text = str(value)
    try:  # 0.22314282381128248 as 0.223143 (the CSV keeps every digit)
        text = f"{float(text):.6g}" if "." in text or "e" in text.lower() else text
    except ValueError:
        pass
    return text if len(text) <= width else text[: width - 1] + "…"


def search_trials(search_run_id: str, tracking_uri: str | None = None) -> TrialsTable:
    """The trials of a search read back from MLflow, ranked by ``final_score``."""
    client = connect(tracking_uri).client
    search_run = get_search_run(client, search_run_id, "search_run_id")
    runs = ranked_trial_runs(client, search_run)
    try:  # the experiment's order (searched, then fixed); a table without it is still a table
        names = recorded_experiment(client, search_run, "search_run_id").parameter_names
    except ConfigError:
        names = []
    for run in runs:
        names += [n for n in sorted(run.data.params) if n not in names]
    rows = []
    for run in runs:
        metrics = run.data.metrics
        row = {"trial": trial_number(run) or None, "run_id": run.info.run_id, "status": run.info.status}
        row.update({name: metrics.get(name) for name in (FINAL_SCORE, "final_variance", *LATER_SCORE_COLUMNS)})
        rows.append({**row, **{n: run.data.params.get(n) for n in names}})
    return TrialsTable(search_run.info.run_id, "dev_score" if maximises(search_run) else "dev_loss", names, rows)
