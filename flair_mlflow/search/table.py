"""``flair-mlflow trials``: a search's trials read back from MLflow as a pandas DataFrame, best first."""

from __future__ import annotations

import pandas as pd

from ..errors import ConfigError
from ..tracking.search_runs import get_search_run, ranked_trial_runs, recorded_experiment, trial_number
from ..tracking.store import connect

SCORES = ["final_score", "final_variance", "last_epoch_score", "scored_epochs_variance"]


def search_trials(search_run_id: str, tracking_uri: str | None = None) -> pd.DataFrame:
    """A search's trials, best ``final_score`` first: run, status, scores and parameters (in the experiment's order)."""
    client = connect(tracking_uri).client
    search_run = get_search_run(client, search_run_id, "search_run_id")
    runs = ranked_trial_runs(client, search_run)
    try:
        names = recorded_experiment(client, search_run, "search_run_id").parameter_names
    except ConfigError:  # a table without the experiment's order is still a table
        names = []
    names += sorted({n for run in runs for n in run.data.params} - set(names))
    rows = [
        [trial_number(run) or None, run.info.run_id, run.info.status]
        + [run.data.metrics.get(name) for name in SCORES]
        + [run.data.params.get(name) for name in names]
        for run in runs
    ]
    return pd.DataFrame(rows, columns=["trial", "run_id", "status", *SCORES, *names])
