"""The ``flair-mlflow`` command line: a thin layer over the Python API.

Each command imports its job only when it runs, so ``--help`` stays fast, and ``tune`` reads and checks the
experiment file before it loads torch, Flair, hyperopt or MLflow: bad input is refused in well under a
second. Every option also answers to ``--set NAME=VALUE`` (a blank value means not given): how the MLproject
passes what ``mlflow run -P`` sets.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Any, Callable, Iterator

try:  # Ctrl-C while the command line itself loads: the same one line and exit code as later
    import click
    import yaml

    from .config.parameters import ALGORITHMS
    from .errors import FlairMlflowError
except KeyboardInterrupt:
    sys.stderr.write("Interrupted\n")
    raise SystemExit(130) from None


class CommandError(click.ClickException):
    """One line ``Error: <field>: <problem>`` on stderr, and ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Interrupted(CommandError):
    """A signal stopped the command: a plain notice, not an error line, and 128 + the signal's number."""

    def show(self, file: Any = None) -> None:
        click.echo(self.message, file=file, err=file is None)


def _deliver_lost_signals() -> None:
    """A Ctrl-C whose exception Python had to drop (raised in code it runs for itself, such as a callback of
    the import system, where it cannot propagate) is sent again a moment later, so it still stops the command.
    For the command line's own process only."""
    previous = sys.unraisablehook
    if getattr(previous, "delivers_lost_signals", False):
        return

    def hook(unraisable: Any) -> None:
        error = unraisable.exc_value
        signum = getattr(error, "signum", signal.SIGINT if isinstance(error, KeyboardInterrupt) else None)
        if signum is None or threading.current_thread() is not threading.main_thread():
            return previous(unraisable)
        threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()  # sent from here it would be dropped again

    hook.delivers_lost_signals = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


class Commands(click.Group):
    """The command group: Ctrl-C anywhere in a command, even while it loads its job, is one line and exit 130."""

    def invoke(self, ctx: click.Context) -> Any:
        _deliver_lost_signals()
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as error:
            raise Interrupted("Interrupted", 130) from error


class _Discard:
    """Where other libraries' console chatter goes without ``--verbose``."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


@contextlib.contextmanager
def running(debug: bool, verbose: bool = True) -> Iterator[Callable[[str], None]]:
    """Around a command's work: log lines plain, and every failure a user can act on one line (bad input exits
    2, a search whose trials all failed 1, a signal 128 + its number; ``--debug`` shows the traceback instead). Without ``verbose``, Flair's and hyperopt's log lines and progress bars stay out of the
    way. Yields what prints the command's own lines."""
    from .search.interrupts import SearchInterrupted

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    terminal = sys.stderr
    try:
        with contextlib.redirect_stderr(_Discard()) if not verbose else contextlib.nullcontext():  # type: ignore[attr-defined]
            yield lambda line: print(line, file=terminal, flush=True)
    except SearchInterrupted as error:  # the runs are KILLED by now
        parent = error.parent_run_id
        raise Interrupted(
            f"Interrupted by {error.signal_name}: search run {parent} and its running trial are KILLED; "
            f"continue it with --resume {parent}",
            error.exit_code,
        ) from error
    except KeyboardInterrupt as error:
        raise Interrupted("Interrupted", 130) from error
    except FlairMlflowError as error:
        if debug:
            raise
        raise CommandError(str(error), error.exit_code) from error


def _hush(verbose: bool) -> None:
    """Without ``--verbose``, Flair's and hyperopt's log lines below warnings stay out of the way (called once
    they are imported: Flair sets its logger's level as it loads)."""
    if not verbose:
        for name in ("flair", "hyperopt", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _pairs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs; blank values left out. ``--set`` converts each value with its option's own type
    (``--set max_evals=20`` is ``--max-evals 20``), ``--param`` reads it as YAML (``0.1`` a number)."""
    pairs: dict[str, Any] = {}
    options = {p.name: p for p in ctx.command.params if isinstance(p, click.Option)}
    for item in values:
        name, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not name:
            raise click.BadParameter(f"'{item}' is not NAME=VALUE", ctx, param)
        if value in ("", "''", '""'):
            continue
        if param.name == "params":
            pairs[name] = yaml.safe_load(value)
        elif name in options and name not in ("sets", "params", "debug", "verbose"):
            pairs[name] = options[name].type.convert(value, options[name], ctx)
        else:
            takes = ", ".join(n for n in options if n not in ("sets", "params", "debug", "verbose"))
            raise click.BadParameter(f"'{name}' is not an option of this command; it takes {takes}", ctx, param)
    return pairs


def _given(options: dict[str, Any], sets: dict[str, Any]) -> dict[str, Any]:
    """The options given, and ``--set`` values for the ones not given."""
    return {**sets, **{name: value for name, value in options.items() if value is not None}}


SET_OPTION = click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="NAME=VALUE",
    callback=_pairs,
    help="Any option by its name; blank: not given.",
)
TRACKING = click.option("--tracking-uri", help="MLflow tracking URI (default: MLflow's own).")
RUN_NAME = click.option("--run-name", help="Name of the run this command starts.")
VERBOSE = click.option("--verbose", is_flag=True, help="Show Flair's training log.")
DEBUG = click.option("--debug", is_flag=True, help="Show tracebacks.")


@click.group(cls=Commands, context_settings={"show_default": True})
@click.version_option(package_name="flair-mlflow")
def main() -> None:
    """Tune Flair models with hyperopt; every trial is tracked in MLflow."""


@main.command()
@click.argument("config", type=click.Path(dir_okay=False), required=False)
@click.option("--max-evals", type=int, help="Number of trials.")
@click.option("--max-epochs", type=int, help="Epochs per training run.")
@click.option("--training-runs", type=int, help="Training runs averaged per trial.")
@click.option("--algorithm", type=click.Choice(ALGORITHMS), help="hyperopt algorithm.")
@click.option("--seed", type=int, help="The same seed gives the same sequence of trials.")
@click.option("--optimization-value", type=click.Choice(["dev_score", "dev_loss"]), help="What a trial is judged by.")
@click.option("--downsample", type=float, help="Fraction of the corpus to use.")
@click.option("--experiment", help="MLflow experiment name.")
@click.option("--label-type", help="The label type to learn.")
@click.option("--evaluate-test/--no-evaluate-test", default=None, help="Also score trials on test.")
@click.option("--lr-from", help="Run id of an lr-find run: search log-uniform around its suggestion.")
@click.option("--parallelism", type=int, help="Trials side by side on Spark (local[N] unless --spark-master).")
@click.option("--spark-master", help="Spark master URL, e.g. spark://host:7077.")
@click.option("--threads", help="Torch threads per trial: a number, or auto.")
@click.option("--embedding-cache-mb", type=float, help="Memory for kept vectors of frozen embeddings; 0: off.")
@click.option("--early-stop-trials", type=int, help="End the search after this many trials without a new best.")
@click.option("--time-budget-minutes", type=float, help="End the search (between trials) after this long.")
@click.option("--resume", help="Parent run id of a search to continue (without CONFIG: the experiment it recorded).")
@SET_OPTION
@TRACKING
@RUN_NAME
@VERBOSE
@DEBUG
def tune(
    config: str | None,
    sets: dict,
    tracking_uri: str | None,
    run_name: str | None,
    verbose: bool,
    debug: bool,
    **options: Any,
) -> None:
    """Run the hyperparameter search the experiment file CONFIG describes; every other option overrides the
    file's setting of the same name."""
    overrides = _given(options, sets)
    resume = overrides.pop("resume", None)
    with running(debug, verbose) as progress:
        if config:
            from .config import ExperimentConfig

            ExperimentConfig.from_file(config, overrides)  # refused here, before torch, Flair or MLflow load
        from .search.search import run_search

        _hush(verbose)
        result = run_search(
            config, overrides=overrides, tracking_uri=tracking_uri, run_name=run_name, progress=progress, resume=resume
        )
    _summary(result, tracking_uri)


def _summary(result: Any, tracking_uri: str | None) -> None:
    """What the search found, by the name of its metric, and the next steps: look at it, register it."""
    from .tracking.writer import redact_uri
    from .training.models import plain_value

    click.echo(f"search run {result.parent_run_id}: {len(result.outcomes)} trials, {result.failed} failed")
    best = result.best
    scored = "its last epoch" if best.epochs_scored == 1 else f"the mean of its last {best.epochs_scored} epochs"
    click.echo(
        f"best trial {best.number} (run {best.run_id}): {result.score_name} {best.final_score:.4f} "
        f"({scored}, what the search optimised; last epoch {best.last_epoch_score:.4f})"
    )
    for name, value in best.params.items():
        click.echo(f"  {name}: {plain_value(value)}")
    where = redact_uri(result.tracking_uri)
    try:
        import mlflow

        experiment = mlflow.MlflowClient(result.tracking_uri).get_experiment(result.experiment_id).name
    except Exception:  # only a suggestion: the summary must not fail for it
        experiment = "MODEL_NAME"
    look = f"open {where}" if where.startswith(("http://", "https://")) else f"mlflow ui --backend-store-uri {where}"
    store = f" --tracking-uri {where}" if tracking_uri else ""
    click.echo("next:")
    click.echo(f"  {look}   # experiment '{experiment}': the search run and its trials")
    click.echo(f"  flair-mlflow register {result.parent_run_id} --name {experiment}{store}   # train, test, register")


@main.command("lr-find")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--optimizer", help="sgd, adam, adamw, ... or a dotted class.  [default: the file's, else sgd]")
@click.option("--start-lr", "start_learning_rate", type=float, help="First learning rate.  [default: 1e-07]")
@click.option("--end-lr", "end_learning_rate", type=float, help="Last learning rate.  [default: 10]")
@click.option("--iterations", type=int, help="Mini-batches to run.  [default: 100]")
@click.option("--mini-batch-size", type=int, help="Sentences per mini-batch.  [default: the file's, else 32]")
@click.option("--smoothing", "smoothing_factor", type=float, help="Exponential moving average factor.  [default: 0.9]")
@click.option(
    "--divergence-threshold",
    type=float,
    help="Stop when the smoothed loss exceeds this multiple of the best.  [default: 4]",
)
@click.option("--stop-early/--no-stop-early", default=None, help="Stop once the loss diverges.  [default: stop-early]")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    callback=_pairs,
    help="Value for a searched parameter (repeatable).",
)
@click.option("--output", type=click.Path(file_okay=False), help="Also keep learning_rate.tsv/.png here.")
@click.option("--parent-run-id", help="Nest the run under this search run.")
@SET_OPTION
@TRACKING
@RUN_NAME
@DEBUG
def lr_find(config: str, params: dict, sets: dict, debug: bool, **options: Any) -> None:
    """Run the learning-rate range test on the model the experiment file CONFIG describes."""
    with running(debug):
        from .lr_finder.run import run_lr_find

        _hush(False)
        result = run_lr_find(config, params=params, **_given(options, sets))
    suggestion = result.suggestion
    click.echo(
        f"lr_find run {result.run_id}: suggested learning rate {suggestion.suggested_lr:.3g} ({suggestion.default_rule})"
    )
    if suggestion.warning:
        click.echo(f"warning: {suggestion.warning}")
    click.echo(
        f"files: {result.tsv_path.name}, {result.png_path.name}, learning_rate_suggestion.json in the run's artefacts, {result.artifact_uri}"
    )
    if options.get("output"):
        click.echo(f"  and in {options['output']}")
    click.echo(f"use it: flair-mlflow tune {config} --lr-from {result.run_id}")


@main.command()
@click.argument("search_run_id", required=False)
@click.option("--name", "--model-name", "name", required=True, help="Registered model name.")
@click.option("--max-epochs", type=int, help="Epochs to train.  [default: the search's]")
@click.option("--train-with-dev/--no-train-with-dev", default=None, help="Train on train+dev.  [default: no]")
@click.option("--downsample", type=float, help="Fraction of the corpus.  [default: the search's]")
@click.option("--best-params", help="A best_params.yaml to train instead of the search's best trial.")
@click.option("--config", help="Experiment file (instead of the search's experiment).")
@SET_OPTION
@TRACKING
@RUN_NAME
@VERBOSE
@DEBUG
def register(search_run_id: str | None, name: str, sets: dict, verbose: bool, debug: bool, **options: Any) -> None:
    """Train the best configuration of search SEARCH_RUN_ID, test it once and register it as NAME.

    The new version gets the alias `champion` when its test score beats the current champion's (same metric,
    same test split), otherwise `challenger`."""
    given = _given(options, sets)
    with running(debug, verbose):
        from mlflow.exceptions import MlflowException

        from .register.train import register_best

        _hush(verbose)
        try:
            result = register_best(
                search_run_id or None, name, train_with_dev=bool(given.pop("train_with_dev", False)), **given
            )
        except MlflowException as error:  # the registry refused: not the input's fault
            raise CommandError(" ".join(str(error).split())[:500], 1) from error
    click.echo(f"register run {result.run_id}: {result.source}")
    click.echo(f"{result.metric} = {result.test_score:.4f} on {result.test_split}")
    click.echo(f"registered '{result.name}' version {result.version} as {result.alias}: {result.reason}")
    click.echo(f"load or serve it as {result.registry_uri}")


@main.command()
@click.argument("search_run_id")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, writable=True), help="Also write the table as CSV.")
@TRACKING
@DEBUG
def trials(search_run_id: str, csv_path: str | None, tracking_uri: str | None, debug: bool) -> None:
    """Print the trials of search SEARCH_RUN_ID, best first, with their parameters."""
    with running(debug, verbose=False):
        from .search.table import search_trials

        table = search_trials(search_run_id, tracking_uri=tracking_uri)
    click.echo(f"search {table.search_run_id}: {len(table.rows)} trials, ranked by final {table.optimization_value}")
    click.echo(table.to_text(), nl=False)
    if table.same_for_all:
        same = ", ".join(f"{name}={str(value)[:60]}" for name, value in table.same_for_all.items())
        click.echo(f"the same in every trial: {same}")
    if csv_path:
        with open(csv_path, "w", encoding="utf-8", newline="") as handle:
            handle.write(table.to_csv())
        click.echo(f"wrote {csv_path}")


if __name__ == "__main__":
    main()
