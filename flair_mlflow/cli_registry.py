"""``flair-mlflow register`` and ``flair-mlflow trials``: click commands that ``cli.py`` attaches to its group.

They import nothing of ``cli.py``, so tests can invoke them on their own; their jobs are
imported only when they run.
"""

from __future__ import annotations

from typing import Any

import click

from .cli_types import (
    CONTEXT_SETTINGS,
    OPT_FLOAT,
    OPT_INT,
    OPT_STR,
    SwitchCommand,
    running,
    shared_options,
    switch_option,
)
from .core.collector import start_up


@click.command(cls=SwitchCommand, context_settings=CONTEXT_SETTINGS)
@click.argument("search_run_id", required=False, default=None)
@click.option("--name", "--model-name", "name", required=True, help="Registered model name.")
@click.option("--max-epochs", type=OPT_INT, help="Epochs to train.", show_default="the search's max_epochs")
@switch_option("train-with-dev", help="Train on train+dev (default: false).")
@click.option("--downsample", type=OPT_FLOAT, help="Fraction of the corpus.", show_default="the search's")
@click.option("--best-params", type=OPT_STR, help="A best_params.yaml to train instead of the search's best trial.")
@click.option("--config", type=OPT_STR, help="Experiment file (instead of the search's experiment).")
@shared_options("tracking_uri", "run_name", "verbose", "debug")
def register(
    search_run_id: str | None,
    name: str,
    train_with_dev: bool | None,
    tracking_uri: str | None,
    verbose: bool,
    debug: bool,
    **options: Any,
) -> None:
    """Train the best configuration of search SEARCH_RUN_ID, test it once and register it as NAME.

    The new version gets the alias `champion` when its test score beats the current champion's
    (same metric, same test split), otherwise `challenger`.
    """
    with start_up():
        from mlflow.exceptions import MlflowException

        from .register.train import register_best

    with running(debug, exit_1=(MlflowException,)):
        result = register_best(
            search_run_id or None,
            name,
            train_with_dev=bool(train_with_dev),
            tracking_uri=tracking_uri,
            quiet=not verbose,
            **options,
        )
    click.echo(f"register run {result.run_id}: {result.source}")
    click.echo(f"{result.metric} = {result.test_score:.4f} on {result.test_split}")
    click.echo(f"registered '{result.name}' version {result.version} as {result.alias}: {result.reason}")
    click.echo(f"load or serve it as {result.registry_uri}")


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("search_run_id")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, writable=True), help="Also write the table as CSV.")
@shared_options("tracking_uri", "debug")
def trials(search_run_id: str, csv_path: str | None, tracking_uri: str | None, debug: bool) -> None:
    """Print the trials of search SEARCH_RUN_ID, best first, with their parameters."""
    from .search.trials_table import search_trials

    with running(debug):
        table = search_trials(search_run_id, tracking_uri=tracking_uri)
    click.echo(f"search {table.search_run_id}: {len(table.rows)} trials, ranked by final {table.optimization_value}")
    click.echo(table.to_text(), nl=False)
    if table.same_for_all:
        same = ", ".join(f"{name}={_short(value)}" for name, value in table.same_for_all.items())
        click.echo(f"the same in every trial: {same}")
    if csv_path:
        with open(csv_path, "w", encoding="utf-8", newline="") as handle:
            handle.write(table.to_csv())
        click.echo(f"wrote {csv_path}")


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:59] + "…"
