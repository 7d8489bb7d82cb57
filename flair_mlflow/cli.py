"""The ``flair-mlflow`` command line: a thin layer over the Python API.

Each command imports its job only when it runs, so ``--help`` stays fast. Options given to
``tune`` override the experiment file's top-level settings.
"""

from __future__ import annotations

import sys
from typing import Any

try:  # Ctrl-C while the command line itself loads: the same one line and exit code as later (Commands)
    import click

    from .cli_registry import register, trials
    from .cli_types import (
        CONTEXT_SETTINGS,
        OPT_FLOAT,
        OPT_INT,
        OPT_STR,
        Commands,
        choice,
        running,
        shared_options,
        switch_option,
    )
    from .core.collector import start_up
    from .core.parameters import ALGORITHMS, OptimizationValue
except KeyboardInterrupt:
    sys.stderr.write("Interrupted\n")
    raise SystemExit(130) from None


@click.group(cls=Commands, context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="flair-mlflow")
def main() -> None:
    """Tune Flair models with hyperopt; every trial is tracked in MLflow."""


main.add_command(register)
main.add_command(trials)


@main.command(context_settings=CONTEXT_SETTINGS)
@click.argument("config", type=click.Path(dir_okay=False), required=False)
@click.option("--max-evals", type=OPT_INT, help="Number of trials.")
@click.option("--max-epochs", type=OPT_INT, help="Epochs per training run.")
@click.option("--training-runs", type=OPT_INT, help="Training runs averaged per trial.")
@click.option("--algorithm", type=choice(ALGORITHMS), help="hyperopt algorithm.")
@click.option("--seed", type=OPT_INT, help="The same seed gives the same sequence of trials.")
@click.option(
    "--optimization-value", type=choice(v.config_name for v in OptimizationValue), help="What a trial is judged by."
)
@click.option("--downsample", type=OPT_FLOAT, help="Fraction of the corpus to use.")
@click.option("--experiment", type=OPT_STR, help="MLflow experiment name.")
@switch_option("evaluate-test", help="Also score trials on test.")
@click.option("--lr-from", type=OPT_STR, help="Run id of an lr-find run: search log-uniform around its suggestion.")
@click.option(
    "--parallelism",
    type=OPT_INT,
    help="Trials side by side on Spark (local[N] unless --spark-master); pruning and --resume need 1.",
)
@click.option("--spark-master", type=OPT_STR, help="Spark master URL, e.g. spark://host:7077.")
@click.option(
    "--threads",
    type=OPT_STR,
    help="Torch threads per trial: a number, or auto (the faster of 1 and the trial's share of the cores).",
)
@click.option(
    "--resume",
    type=OPT_STR,
    help="Parent run id of a search to continue (without CONFIG: its experiment_resolved.yaml).",
)
@shared_options("tracking_uri", "run_name", "verbose", "debug")
def tune(
    config: str | None,
    tracking_uri: str | None,
    run_name: str | None,
    resume: str | None,
    verbose: bool,
    debug: bool,
    **overrides: Any,
) -> None:
    """Run the hyperparameter search described by the experiment file CONFIG.

    Every other option overrides the file's setting of the same name.
    """
    with start_up():
        from .search.search import SearchFailed, run_search

    with running(debug, exit_1=(SearchFailed,)):
        result = run_search(
            config or None,
            overrides=overrides,
            tracking_uri=tracking_uri,
            run_name=run_name,
            quiet=not verbose,
            resume=resume,
        )
    _summary(result, tracking_uri)


def _summary(result: Any, tracking_uri: str | None) -> None:
    """What the search found, by the name of its metric, and the next steps: look at it, register it."""
    from .adapters.models import value_text
    from .store.writer import redact_uri

    click.echo(f"search run {result.parent_run_id}: {len(result.outcomes)} trials, {result.failed} failed")
    best = result.best
    if best is None:
        return
    scored = "its last epoch" if best.epochs_scored == 1 else f"the mean of its last {best.epochs_scored} epochs"
    click.echo(
        f"best trial {best.number} (run {best.run_id}): {result.score_name} {best.final_score:.4f} "
        f"({scored}, what the search optimised; last epoch {best.last_epoch_score:.4f})"
    )
    for name, value in best.params.items():
        click.echo(f"  {name}: {value_text(value)}")
    where = redact_uri(result.tracking_uri)
    experiment = _experiment_name(result)
    look = f"open {where}" if where.startswith(("http://", "https://")) else f"mlflow ui --backend-store-uri {where}"
    store = f" --tracking-uri {where}" if tracking_uri else ""
    click.echo("next:")
    click.echo(f"  {look}   # experiment '{experiment}': the search run and its trials")
    click.echo(f"  flair-mlflow register {result.parent_run_id} --name {experiment}{store}   # train, test, register")


def _experiment_name(result: Any) -> str:
    """The search's experiment, which also names a model registered from it."""
    import mlflow

    try:
        return mlflow.MlflowClient(result.tracking_uri).get_experiment(result.experiment_id).name
    except Exception:  # only a suggestion: the summary must not fail for it
        return "MODEL_NAME"


def _param_pairs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, Any]:
    """``--param name=value`` -> ``{name: value}``, the value read as YAML (``0.1`` a number, ``true`` a bool)."""
    import yaml

    params: dict[str, Any] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"'{item}' is not NAME=VALUE", ctx, param)
        params[name.strip()] = yaml.safe_load(value)
    return params


@main.command("lr-find", context_settings=CONTEXT_SETTINGS)
@click.argument("config", type=click.Path(dir_okay=False))
@click.option(
    "--optimizer", type=OPT_STR, help="sgd, adam, adamw, ... or a dotted class.", show_default="the file's, else sgd"
)
@click.option("--start-lr", "start_learning_rate", type=OPT_FLOAT, help="First learning rate.", show_default="1e-7")
@click.option("--end-lr", "end_learning_rate", type=OPT_FLOAT, help="Last learning rate.", show_default="10")
@click.option("--iterations", type=OPT_INT, help="Mini-batches to run.", show_default="100")
@click.option("--mini-batch-size", type=OPT_INT, help="Sentences per mini-batch.", show_default="the file's, else 32")
@click.option(
    "--smoothing", "smoothing_factor", type=OPT_FLOAT, help="Exponential moving average factor.", show_default="0.9"
)
@click.option(
    "--divergence-threshold",
    type=OPT_FLOAT,
    show_default="4",
    help="Stop when the smoothed loss exceeds this multiple of the best.",
)
@switch_option("stop-early", help="Stop once the loss diverges (default: true).")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    callback=_param_pairs,
    help="Value for a searched parameter (repeatable).",
)
@click.option("--output", type=click.Path(file_okay=False), help="Also keep learning_rate.tsv/.png here.")
@click.option("--parent-run-id", type=OPT_STR, help="Nest the run under this search run.")
@shared_options("tracking_uri", "run_name", "debug")
def lr_find(
    config: str,
    params: dict[str, Any],
    output: str | None,
    parent_run_id: str | None,
    tracking_uri: str | None,
    run_name: str | None,
    debug: bool,
    **options: Any,
) -> None:
    """Run the learning-rate range test on the model the experiment file CONFIG describes."""
    with start_up():
        from .lr_find.run import run_lr_find

    given = {name: value for name, value in options.items() if value is not None}  # else run_lr_find's defaults
    with running(debug):
        result = run_lr_find(
            config,
            params=params,
            output=output,
            parent_run_id=parent_run_id,
            tracking_uri=tracking_uri,
            run_name=run_name,
            **given,
        )
    suggestion = result.suggestion
    click.echo(
        f"lr_find run {result.run_id}: suggested learning rate {suggestion.suggested_lr:.3g} "
        f"({suggestion.default_rule})"
    )
    if suggestion.warning:
        click.echo(f"warning: {suggestion.warning}")
    files = f"{result.tsv_path.name}, {result.png_path.name}, learning_rate_suggestion.json"
    click.echo(f"files: {files} in the run's artefacts, {result.artifact_uri}")
    if output:
        click.echo(f"  and in {output}")
    click.echo(f"use it: flair-mlflow tune {config} --lr-from {result.run_id}")


if __name__ == "__main__":
    main()
