"""The ``flair-mlflow`` command line over the Python API: jobs import as they run, so bad input is refused before torch
loads; every option also answers to ``--set NAME=VALUE`` (blank: not given), how the MLproject passes ``-P``."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import sys
import threading
from typing import Any, Callable, Iterator

try:  # Ctrl-C while the command line itself loads: the same one line and exit code as later
    import click
    import yaml

    from .config import ExperimentConfig
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
    """Send again a Ctrl-C whose exception Python dropped (raised in an import-system callback), so it still stops."""
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
    """Ctrl-C anywhere in a command, even while it loads its job, is one line and exit 130."""

    def invoke(self, ctx: click.Context) -> Any:
        _deliver_lost_signals()
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as error:
            raise Interrupted("Interrupted", 130) from error


class _Discard(io.TextIOBase):
    """Where other libraries' console chatter goes without ``--verbose``."""

    def write(self, text: str) -> int:
        return len(text)


@contextlib.contextmanager
def running(debug: bool, verbose: bool = True) -> Iterator[Callable[[str], None]]:
    """Around a command: each failure a user can act on is one line and an exit code; yields the command's printer."""
    from .search.interrupts import SearchInterrupted

    # our info lines; other libraries' only with --verbose (torch's exit-time stats leaked when Ctrl-C cut its import)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    logging.getLogger("flair_mlflow").setLevel(logging.INFO)
    terminal = sys.stderr
    try:
        with contextlib.redirect_stderr(_Discard()) if not verbose else contextlib.nullcontext():
            yield lambda line: print(line, file=terminal, flush=True)
    except SearchInterrupted as error:  # the runs are KILLED by now
        parent = error.parent_run_id
        message = f"search run {parent} and its running trial are KILLED; continue it with --resume {parent}"
        raise Interrupted(f"Interrupted by {error.signal_name}: {message}", error.exit_code) from error
    except KeyboardInterrupt as error:
        raise Interrupted("Interrupted", 130) from error
    except FlairMlflowError as error:
        if debug:
            raise
        raise CommandError(str(error), error.exit_code) from error


def _hush(verbose: bool) -> None:
    """Quiet Flair's, hyperopt's and alembic's info lines; called after import, as Flair sets its level on load."""
    for name in ("flair", "hyperopt", "alembic") if not verbose else ():
        logging.getLogger(name).setLevel(logging.WARNING)


def _pairs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs, blanks left out: ``--set`` converts with the option's own type, ``--param`` reads YAML."""
    pairs: dict[str, Any] = {}
    options = {p.name: p for p in ctx.command.params if p.name not in ("sets", "params", "debug", "verbose")}
    for item in values:
        name, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not name:
            raise click.BadParameter(f"'{item}' is not NAME=VALUE", ctx, param)
        if param.name == "sets" and name not in options:
            known = ", ".join(options)
            raise click.BadParameter(f"'{name}' is not an option of this command; it takes {known}", ctx, param)
        if value not in ("", "''", '""'):
            option = options.get(name)
            pairs[name] = yaml.safe_load(value) if param.name == "params" else option.type.convert(value, option, ctx)
    return pairs


def _given(options: dict[str, Any], sets: dict[str, Any]) -> dict[str, Any]:
    """The options given, and ``--set`` values for the ones not given."""
    return {**sets, **{name: value for name, value in options.items() if value is not None}}


def _options(*specs: tuple, with_shared: bool = True) -> Callable[[Callable], Callable]:
    """Options from ``(declaration, type, help)`` rows, in order, then (``with_shared``) those every command takes."""
    shared = [
        ("--set sets", "pairs", "Any option by its name; blank: not given."),
        ("--tracking-uri", None, "MLflow tracking URI (default: MLflow's own)."),
        ("--run-name", None, "Name of the run this command starts."),
        ("--debug", "flag", "Show tracebacks."),
    ]

    def decorate(function: Callable) -> Callable:
        for declaration, kind, text in reversed([*specs, *(shared if with_shared else [])]):
            if kind == "pairs":
                settings = {"multiple": True, "metavar": "NAME=VALUE", "callback": _pairs}
            elif kind == "flag":
                settings = {"is_flag": True}
            else:  # default None: not given, so the experiment's own setting stands
                settings = {"type": kind, "default": None}
            function = click.option(*declaration.split(), help=text, **settings)(function)
        return function

    return decorate


@click.group(cls=Commands, context_settings={"show_default": True})
@click.version_option(package_name="flair-mlflow")
def main() -> None:
    """Tune Flair models with hyperopt; every trial is tracked in MLflow."""


@main.command()
@click.argument("config", type=click.Path(dir_okay=False), required=False)
@_options(
    ("--max-evals", int, "Number of trials."),
    ("--max-epochs", int, "Epochs per training run."),
    ("--training-runs", int, "Training runs averaged per trial."),
    ("--algorithm", click.Choice(ALGORITHMS), "hyperopt algorithm."),
    ("--seed", int, "The same seed gives the same sequence of trials."),
    ("--optimization-value", click.Choice(["dev_score", "dev_loss"]), "What a trial is judged by."),
    ("--downsample", float, "Fraction of the corpus to use."),
    ("--experiment", None, "MLflow experiment name."),
    ("--label-type", None, "The label type to learn."),
    ("--evaluate-test/--no-evaluate-test", None, "Also score trials on test."),
    ("--lr-from", None, "Run id of an lr-find run: search log-uniform around its suggestion."),
    ("--parallelism", int, "Trials side by side on Spark (local[N] unless --spark-master)."),
    ("--spark-master", None, "Spark master URL, e.g. spark://host:7077."),
    ("--threads", None, "Torch threads per trial: a number, or auto."),
    ("--embedding-cache-mb", float, "Memory for kept vectors of frozen embeddings; 0: off."),
    ("--early-stop-trials", int, "End the search after this many trials without a new best."),
    ("--time-budget-minutes", float, "End the search (between trials) after this long."),
    ("--device", click.Choice(["auto", "cpu", "cuda", *(f"cuda:{n}" for n in range(16))]), "Where trials train."),
    ("--keep-models", int, "Keep the trained models of the best N trials (0: none)."),
    ("--log-system-metrics/--no-log-system-metrics", None, "CPU, memory and GPU metrics per trial run."),
    (
        "--scheduler",
        click.Choice(["none", "asha", "hyperband"]),
        "Train trials in rungs of epochs (the file's scheduler block sets the rest).",
    ),
    ("--resume", None, "Parent run id of a search to continue (without CONFIG: the experiment it recorded)."),
    ("--verbose", "flag", "Show Flair's training log."),
)
def tune(config: str | None, sets: dict, tracking_uri: str | None, run_name: str | None, verbose: bool, debug: bool,
         **options: Any) -> None:  # fmt: skip
    """Run the hyperparameter search the experiment file CONFIG describes; every other option overrides the
    file's setting of the same name."""
    overrides = _given(options, sets)
    resume = overrides.pop("resume", None)
    with running(debug, verbose) as progress:
        if config:
            ExperimentConfig.from_file(config, overrides)  # refused here, before torch, Flair or MLflow load
        from .search.search import run_search

        _hush(verbose)
        result = run_search(
            config, overrides=overrides, tracking_uri=tracking_uri, run_name=run_name, progress=progress, resume=resume
        )
    from .tracking.writer import redact_uri
    from .training.models import plain_value

    best, where = result.best, redact_uri(result.tracking_uri)
    scored = "its last epoch" if best.epochs_scored == 1 else f"the mean of its last {best.epochs_scored} epochs"
    click.echo(f"search run {result.parent_run_id}: {len(result.outcomes)} trials, {result.failed} failed")
    if result.rungs:
        rungs = (f"{epochs} epochs: {count} trials, best {top:.4f}" for epochs, (count, top) in result.rungs.items())
        click.echo(f"rungs: {'; '.join(rungs)}")
    click.echo(
        f"best trial {best.number} (run {best.run_id}): {result.score_name} {best.final_score:.4f} "
        f"({scored}, what the search optimised; last epoch {best.last_epoch_score:.4f})"
    )
    click.echo("".join(f"  {name}: {plain_value(value)}\n" for name, value in best.params.items()), nl=False)
    look = f"open {where}" if where.startswith(("http://", "https://")) else f"mlflow ui --backend-store-uri {where}"
    store = f" --tracking-uri {where}" if tracking_uri else ""
    click.echo(f"next:\n  {look}   # experiment '{result.experiment_name}': the search run and its trials")
    register_line = f"flair-mlflow register {result.parent_run_id} --name {result.experiment_name}{store}"
    click.echo(f"  {register_line}   # train, test, register")
    if best.model_id:
        click.echo(f"  ... --from-trial   # or register trial {best.number}'s own model (logged model {best.model_id})")


@main.command("lr-find")
@click.argument("config", type=click.Path(dir_okay=False))
@_options(
    ("--optimizer", None, "sgd, adam, adamw, ... or a dotted class.  [default: the file's, else sgd]"),
    ("--start-lr start_learning_rate", float, "First learning rate.  [default: 1e-07]"),
    ("--end-lr end_learning_rate", float, "Last learning rate.  [default: 10]"),
    ("--iterations", int, "Mini-batches to run.  [default: 100]"),
    ("--mini-batch-size", int, "Sentences per mini-batch.  [default: the file's, else 32]"),
    ("--smoothing smoothing_factor", float, "Exponential moving average factor.  [default: 0.9]"),
    ("--divergence-threshold", float, "Stop when the smoothed loss exceeds this multiple of the best.  [default: 4]"),
    ("--stop-early/--no-stop-early", None, "Stop once the loss diverges.  [default: stop-early]"),
    ("--output", click.Path(file_okay=False), "Also keep learning_rate.tsv/.png here."),
    ("--parent-run-id", None, "Nest the run under this search run."),
)
@_options(("--param params", "pairs", "Value for a searched parameter (repeatable)."), with_shared=False)
def lr_find(config: str, params: dict, sets: dict, debug: bool, **options: Any) -> None:
    """Run the learning-rate range test on the model the experiment file CONFIG describes."""
    with running(debug):
        from .lr_finder.run import run_lr_find

        _hush(False)
        result = run_lr_find(config, params=params, **_given(options, sets))
    suggestion = result.suggestion
    rate = f"{suggestion.suggested_lr:.3g} ({suggestion.default_rule})"
    click.echo(f"lr_find run {result.run_id}: suggested learning rate {rate}")
    click.echo(f"warning: {suggestion.warning}" if suggestion.warning else "", nl=bool(suggestion.warning))
    files = f"{result.tsv_path.name}, {result.png_path.name}, learning_rate_suggestion.json"
    click.echo(f"files: {files} in the run's artefacts, {result.artifact_uri}")
    click.echo(f"  and in {options['output']}" if options.get("output") else "", nl=bool(options.get("output")))
    click.echo(f"use it: flair-mlflow tune {config} --lr-from {result.run_id}")


@main.command()
@click.argument("search_run_id", required=False)
@click.option("--name", "--model-name", "name", required=True, help="Registered model name.")
@_options(
    ("--max-epochs", int, "Epochs to train.  [default: the search's]"),
    ("--train-with-dev/--no-train-with-dev", None, "Train on train+dev.  [default: no]"),
    ("--downsample", float, "Fraction of the corpus.  [default: the search's]"),
    ("--best-params", None, "A best_params.yaml to train instead of the search's best trial."),
    ("--from-trial/--no-from-trial", None, "Register the best trial's kept model as trained: tested, not retrained."),
    ("--config", None, "Experiment file (instead of the search's experiment)."),
    ("--verbose", "flag", "Show Flair's training log."),
)
def register(search_run_id: str | None, name: str, sets: dict, verbose: bool, debug: bool, **options: Any) -> None:
    """Train the best configuration of search SEARCH_RUN_ID (or, with --from-trial, take its best trial's kept
    model), test it once and register it as NAME.

    The new version gets the alias `champion` when its test score beats the current champion's (same metric,
    same test split), otherwise `challenger`."""
    given = _given(options, sets)
    with running(debug, verbose):
        from mlflow.exceptions import MlflowException

        from .register.train import register_best

        _hush(verbose)
        try:
            switches = {k: bool(given.pop(k, False)) for k in ("train_with_dev", "from_trial")}
            result = register_best(search_run_id or None, name, **switches, **given)
        except MlflowException as error:  # the registry refused: not the input's fault
            raise CommandError(" ".join(str(error).split())[:500], 1) from error
    click.echo(f"register run {result.run_id}: {result.source}")
    click.echo(f"{result.metric} = {result.test_score:.4f} on {result.test_split}")
    click.echo(f"registered '{result.name}' version {result.version} as {result.alias}: {result.reason}")
    click.echo(f"load or serve it as {result.registry_uri}")


@main.command()
@click.argument("search_run_id")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, writable=True), help="Also write the table as CSV.")
@click.option("--tracking-uri", help="MLflow tracking URI (default: MLflow's own).")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def trials(search_run_id: str, csv_path: str | None, tracking_uri: str | None, debug: bool) -> None:
    """Print the trials of search SEARCH_RUN_ID, best first, with their parameters (the ones every trial shares
    below the table)."""
    with running(debug, verbose=False):
        from .search.table import search_trials

        table = search_trials(search_run_id, tracking_uri=tracking_uri)
    shared = [c for c in table.columns[7:] if len(table) > 1 and table[c].astype(str).nunique() == 1]
    click.echo(f"search {search_run_id}: {len(table)} trials, ranked by final score")
    click.echo(table.drop(columns=shared).dropna(axis=1, how="all").to_string(index=False, na_rep="-", max_colwidth=40))
    if shared:
        click.echo("the same in every trial: " + ", ".join(f"{c}={table[c].iloc[0]}" for c in shared))
    if csv_path:
        table.to_csv(csv_path, index=False)
        click.echo(f"wrote {csv_path}")


if __name__ == "__main__":
    main()
