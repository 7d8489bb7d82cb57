"""The ``flair-mlflow`` command line: a thin layer over the Python API.

Options given here override the experiment file's top-level settings. Each option also has an
underscore spelling (``--max_evals``) because ``mlflow run -P max_evals=20`` passes parameters
the MLproject does not declare that way.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from .errors import FlairMlflowError


class _Optional(click.ParamType):
    """An int/float/choice option where an empty string means "not given" (MLproject defaults)."""

    def __init__(self, kind: click.ParamType) -> None:
        self.kind = kind
        self.name = kind.name

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip() in ("", "''", '""')):
            return None
        if isinstance(self.kind, click.types.IntParamType) and isinstance(value, str):
            try:
                as_float = float(value)
                if as_float.is_integer():
                    value = str(int(as_float))
            except ValueError:
                pass
        return self.kind.convert(value, param, ctx)


OPT_INT = _Optional(click.INT)
OPT_FLOAT = _Optional(click.FLOAT)
OPT_STR = _Optional(click.STRING)


def _fail(error: BaseException, debug: bool, code: int = 2) -> None:
    if debug:
        raise error
    click.echo(f"Error: {error}", err=True)
    sys.exit(code)


@click.group()
@click.version_option(package_name="flair-mlflow")
def main() -> None:
    """Tune Flair models with hyperopt; every trial is tracked in MLflow."""


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--max-evals", "--max_evals", type=OPT_INT, help="Number of trials.")
@click.option("--max-epochs", "--max_epochs", type=OPT_INT, help="Epochs per training run.")
@click.option("--training-runs", "--training_runs", type=OPT_INT, help="Training runs averaged per trial.")
@click.option("--algorithm", type=_Optional(click.Choice(["tpe", "rand", "anneal", "atpe"])), help="hyperopt algorithm.")
@click.option("--seed", type=OPT_INT, help="The same seed gives the same sequence of trials.")
@click.option("--optimization-value", "--optimization_value", type=_Optional(click.Choice(["dev_score", "dev_loss"])))
@click.option("--downsample", type=OPT_FLOAT, help="Fraction of the corpus to use.")
@click.option("--experiment", type=OPT_STR, help="MLflow experiment name.")
@click.option("--evaluate-test/--no-evaluate-test", "evaluate_test", default=None, help="Also score trials on test.")
@click.option("--tracking-uri", "--tracking_uri", type=OPT_STR, help="MLflow tracking URI (default: MLflow's own).")
@click.option("--run-name", "--run_name", type=OPT_STR, help="Name of the parent run.")
@click.option("--verbose", is_flag=True, help="Show Flair's training log.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def tune(config: str, max_evals, max_epochs, training_runs, algorithm, seed, optimization_value, downsample,
         experiment, evaluate_test, tracking_uri, run_name, verbose: bool, debug: bool) -> None:  # fmt: skip
    """Run the hyperparameter search described by the experiment file CONFIG."""
    from .search import SearchFailed, run_search

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    overrides = {
        "max_evals": max_evals,
        "max_epochs": max_epochs,
        "training_runs": training_runs,
        "algorithm": algorithm,
        "seed": seed,
        "optimization_value": optimization_value,
        "downsample": downsample,
        "experiment": experiment,
        "evaluate_test": evaluate_test,
    }
    try:
        result = run_search(config, overrides=overrides, tracking_uri=tracking_uri, run_name=run_name,
                            quiet=not verbose)  # fmt: skip
    except FlairMlflowError as error:
        _fail(error, debug)
        return
    except SearchFailed as error:
        _fail(error, debug, code=1)
        return
    best = result.best
    click.echo(f"search run {result.parent_run_id}: {len(result.outcomes)} trials, {result.failed} failed")
    if best is not None:
        click.echo(f"best trial {best.number} (run {best.run_id}): score {best.final_score:.4f}")
        for name, value in best.params.items():
            from .tracking import param_value

            click.echo(f"  {name}: {param_value(value)}")


if __name__ == "__main__":
    main()
