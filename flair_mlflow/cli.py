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

from .cli_types import OPT_FLOAT, OPT_INT, OPT_STR, debug_option, run_name_option, tracking_uri_option, verbose_option
from .cli_types import Optional as _Optional
from .cli_types import fail as _fail
from .core.errors import FlairMlflowError


@click.group()
@click.version_option(package_name="flair-mlflow")
def main() -> None:
    """Tune Flair models with hyperopt; every trial is tracked in MLflow."""


@main.command()
@click.argument("config", type=click.Path(dir_okay=False), required=False)
@click.option("--max-evals", "--max_evals", type=OPT_INT, help="Number of trials.")
@click.option("--max-epochs", "--max_epochs", type=OPT_INT, help="Epochs per training run.")
@click.option("--training-runs", "--training_runs", type=OPT_INT, help="Training runs averaged per trial.")
@click.option("--algorithm", type=_Optional(click.Choice(["tpe", "rand", "anneal", "atpe"])), help="hyperopt algorithm.")
@click.option("--seed", type=OPT_INT, help="The same seed gives the same sequence of trials.")
@click.option("--optimization-value", "--optimization_value", type=_Optional(click.Choice(["dev_score", "dev_loss"])))
@click.option("--downsample", type=OPT_FLOAT, help="Fraction of the corpus to use.")
@click.option("--experiment", type=OPT_STR, help="MLflow experiment name.")
@click.option("--evaluate-test/--no-evaluate-test", "evaluate_test", default=None, help="Also score trials on test.")
@click.option("--lr-from", "--lr_from", type=OPT_STR, help="Run id of an lr-find run: search log-uniform around its suggestion.")
@click.option("--parallelism", type=OPT_INT,
              help="Trials side by side on Spark (local[N] unless --spark-master); pruning and --resume need 1.")
@click.option("--spark-master", "--spark_master", type=OPT_STR, help="Spark master URL, e.g. spark://host:7077.")
@tracking_uri_option
@run_name_option
@click.option("--resume", type=OPT_STR,
              help="Parent run id of a search to continue (without CONFIG: its experiment_resolved.yaml).")
@verbose_option
@debug_option
def tune(config: str | None, max_evals, max_epochs, training_runs, algorithm, seed, optimization_value, downsample,
         experiment, evaluate_test, lr_from, parallelism, spark_master, tracking_uri, run_name, resume, verbose: bool,
         debug: bool) -> None:  # fmt: skip
    """Run the hyperparameter search described by the experiment file CONFIG."""
    from .core.interrupts import SearchInterrupted
    from .search.search import SearchFailed, run_search

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
        "lr_from": lr_from,
        "parallelism": parallelism,
        "spark_master": spark_master,
    }
    try:
        result = run_search(config or None, overrides=overrides, tracking_uri=tracking_uri, run_name=run_name,
                            quiet=not verbose, resume=resume)  # fmt: skip
    except FlairMlflowError as error:
        _fail(error, debug)
        return
    except SearchFailed as error:
        _fail(error, debug, code=1)
        return
    except SearchInterrupted as error:  # the runs are KILLED by now; exit as the signal's convention says
        click.echo(f"Interrupted by {error.signal_name}: search run {error.parent_run_id} and its running trial "
                   f"are KILLED; continue it with --resume {error.parent_run_id}", err=True)  # fmt: skip
        sys.exit(error.exit_code)
    except KeyboardInterrupt:  # before the search had started: nothing to mark
        click.echo("Interrupted", err=True)
        sys.exit(130)
    best = result.best
    click.echo(f"search run {result.parent_run_id}: {len(result.outcomes)} trials, {result.failed} failed")
    if best is not None:
        click.echo(f"best trial {best.number} (run {best.run_id}): score {best.final_score:.4f}")
        from .adapters.models import value_text

        for name, value in best.params.items():
            click.echo(f"  {name}: {value_text(value)}")


def _param_pairs(values: tuple[str, ...]) -> dict[str, Any]:
    import yaml

    params: dict[str, Any] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"'{item}' is not NAME=VALUE", param_hint="--param")
        params[name.strip()] = yaml.safe_load(value)
    return params


@main.command("lr-find")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--optimizer", type=OPT_STR, help="sgd, adam, adamw, ... or a dotted class (default: the file's, else sgd).")
@click.option("--start-lr", "--start_lr", type=OPT_FLOAT, default=None, help="First learning rate [1e-7].")
@click.option("--end-lr", "--end_lr", type=OPT_FLOAT, default=None, help="Last learning rate [10].")
@click.option("--iterations", type=OPT_INT, default=None, help="Mini-batches to run [100].")
@click.option("--mini-batch-size", "--mini_batch_size", type=OPT_INT, help="Default: the file's, else 32.")
@click.option("--smoothing", type=OPT_FLOAT, default=None, help="Exponential moving average factor [0.98].")
@click.option("--divergence-threshold", "--divergence_threshold", type=OPT_FLOAT, default=None,
              help="Stop when the smoothed loss exceeds this multiple of the best [4].")  # fmt: skip
@click.option("--no-stop-early", is_flag=True, help="Run all iterations even after divergence.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Value for a searched parameter.")
@click.option("--output", type=click.Path(file_okay=False), help="Also keep learning_rate.tsv/.png here.")
@click.option("--parent-run-id", "--parent_run_id", type=OPT_STR, help="Nest the run under this search run.")
@tracking_uri_option
@debug_option
def lr_find(config: str, optimizer, start_lr, end_lr, iterations, mini_batch_size, smoothing, divergence_threshold,
            no_stop_early: bool, params, output, parent_run_id, tracking_uri, debug: bool) -> None:  # fmt: skip
    """Run the learning-rate range test on the model the experiment file CONFIG describes."""
    from .lr_find.run import run_lr_find

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    options = {
        "start_learning_rate": start_lr,
        "end_learning_rate": end_lr,
        "iterations": iterations,
        "smoothing_factor": smoothing,
        "divergence_threshold": divergence_threshold,
    }
    try:
        result = run_lr_find(
            config, params=_param_pairs(params), optimizer=optimizer, mini_batch_size=mini_batch_size,
            stop_early=not no_stop_early, tracking_uri=tracking_uri, parent_run_id=parent_run_id, output=output,
            **{k: v for k, v in options.items() if v is not None},
        )  # fmt: skip
    except FlairMlflowError as error:
        _fail(error, debug)
        return
    suggestion = result.suggestion
    click.echo(f"lr_find run {result.run_id}: suggested learning rate {suggestion.suggested_lr:.3g} ({suggestion.default_rule})")
    if suggestion.warning:
        click.echo(f"warning: {suggestion.warning}")
    click.echo(f"use it: flair-mlflow tune {config} --lr-from {result.run_id}")


from .cli_registry import register, trials  # noqa: E402  (commands of their own module)

main.add_command(register)
main.add_command(trials)


if __name__ == "__main__":
    main()
