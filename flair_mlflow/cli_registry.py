"""``flair-mlflow register`` and ``flair-mlflow trials``: standalone click commands for the main group.

Kept apart from ``cli.py`` (which attaches them with ``main.add_command``) and free of imports
from it, so neither module imports the other at load time. Options have underscore spellings
too (``--max_epochs``) because ``mlflow run -P max_epochs=5`` passes undeclared parameters so.
"""

from __future__ import annotations

import logging

import click

from .cli_types import Optional as _Blank
from .cli_types import debug_option, run_name_option, tracking_uri_option, verbose_option
from .cli_types import fail as _fail
from .core.errors import FlairMlflowError


@click.command()
@click.argument("search_run_id", required=False, default=None)
@click.option("--name", "--model-name", "--model_name", "name", required=True, help="Registered model name.")
@click.option("--max-epochs", "--max_epochs", type=_Blank(click.INT), help="Epochs (default: the search's max_epochs).")
@click.option("--train-with-dev/--no-train-with-dev", "train_with_dev", default=None,
              help="Train on train+dev (default: no).")  # fmt: skip
@click.option("--train_with_dev", "train_with_dev_value", type=_Blank(click.BOOL), hidden=True)
@click.option("--downsample", type=_Blank(click.FLOAT), help="Fraction of the corpus (default: the search's).")
@click.option("--best-params", "--best_params", type=_Blank(click.STRING),
              help="A best_params.yaml to train instead of the search's best trial.")  # fmt: skip
@click.option("--config", type=_Blank(click.STRING), help="Experiment file (instead of the search's experiment).")
@tracking_uri_option
@run_name_option
@verbose_option
@debug_option
def register(search_run_id, name, max_epochs, train_with_dev, train_with_dev_value, downsample, best_params, config,
             tracking_uri, run_name, verbose: bool, debug: bool) -> None:  # fmt: skip
    """Train the best configuration of search SEARCH_RUN_ID, test it once and register it as NAME.

    The new version gets the alias `champion` when its test score beats the current champion's
    (same metric, same test split), otherwise `challenger`.
    """
    from mlflow.exceptions import MlflowException

    from .register.registry import register_best

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if train_with_dev is None:
        train_with_dev = bool(train_with_dev_value)
    try:
        result = register_best(
            search_run_id or None, name, max_epochs=max_epochs, train_with_dev=train_with_dev, downsample=downsample,
            best_params=best_params, config=config, tracking_uri=tracking_uri, run_name=run_name, quiet=not verbose,
        )  # fmt: skip
    except FlairMlflowError as error:
        _fail(error, debug)
        return
    except MlflowException as error:
        _fail(error, debug, code=1)
        return
    click.echo(f"register run {result.run_id}: {result.source}")
    click.echo(f"{result.metric} = {result.test_score:.4f} on {result.test_split}")
    click.echo(f"registered '{result.name}' version {result.version} as {result.alias}: {result.reason}")
    click.echo(f"load or serve it as {result.registry_uri}")


@click.command()
@click.argument("search_run_id")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, writable=True), help="Also write the table as CSV.")
@tracking_uri_option
@debug_option
def trials(search_run_id: str, csv_path: str | None, tracking_uri: str | None, debug: bool) -> None:
    """Print the trials of search SEARCH_RUN_ID, best first, with their parameters."""
    from .register.registry import search_trials

    try:
        table = search_trials(search_run_id, tracking_uri=tracking_uri)
    except FlairMlflowError as error:
        _fail(error, debug)
        return
    click.echo(f"search {table.search_run_id}: {len(table.rows)} trials, ranked by final {table.optimization_value}")
    click.echo(table.to_text(), nl=False)
    if csv_path:
        with open(csv_path, "w", encoding="utf-8", newline="") as handle:
            handle.write(table.to_csv())
        click.echo(f"wrote {csv_path}")


if __name__ == "__main__":  # python -m flair_mlflow.cli_registry register ... (before cli.py attaches them)
    group = click.Group(commands={"register": register, "trials": trials})
    group()
