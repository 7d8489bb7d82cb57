"""What every command shares: its context, option types, common options and the one way it fails.

Kept apart so that the command modules import nothing of each other at load time, and cheap:
``flair-mlflow --help`` must load neither torch, Flair, MLflow nor hyperopt.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import click

from .core.errors import FlairMlflowError
from .core.interrupts import SearchInterrupted, deliver_lost_signals

# a command reads small artefacts (experiment_resolved.yaml, best_params.yaml); MLflow's download
# progress bar on stderr would break the one-line error contract. The user's own setting stands.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _dashes(token: str) -> str:
    return token.replace("_", "-")


#: Every command's click context. ``mlflow run -P max_evals=20`` passes the parameters the
#: MLproject does not declare as ``--max_evals 20``: one normalisation makes every option (and
#: command: ``lr_find``) answer to its underscore spelling too.
CONTEXT_SETTINGS: dict[str, Any] = {"token_normalize_func": _dashes, "show_default": True}


class BlankMeansNone(click.ParamType):
    """An option of type ``kind`` where an empty value means "not given": MLproject defaults are ``''``."""

    def __init__(self, kind: click.ParamType) -> None:
        self.kind = kind
        self.name = kind.name

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None) -> str | None:
        return self.kind.get_metavar(param, None)  # a Choice lists its values as written, not normalised

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or (isinstance(value, str) and value.strip() in ("", "''", '""')):
            return None
        if isinstance(self.kind, click.types.IntParamType) and isinstance(value, str):
            value = _integral_text(value)
        # without the context: its token normalisation would make a Choice's dev_score dev-score
        return self.kind.convert(value, param, None)


def _integral_text(value: str) -> str:
    """``"20.0"`` -> ``"20"``: an MLproject parameter of type float reaches an int option so."""
    try:
        number = float(value)
    except ValueError:
        return value
    return str(int(number)) if number.is_integer() else value


OPT_INT = BlankMeansNone(click.INT)
OPT_FLOAT = BlankMeansNone(click.FLOAT)
OPT_STR = BlankMeansNone(click.STRING)
OPT_BOOL = BlankMeansNone(click.BOOL)


def choice(values: Any) -> BlankMeansNone:
    """A Choice whose values --help lists, blank meaning "not given"."""
    return BlankMeansNone(click.Choice(list(values)))


#: the words click reads as a boolean; after a switch any other word is the next argument, not its value
BOOL_WORDS = frozenset({"", "1", "0", "true", "false", "t", "f", "yes", "no", "y", "n", "on", "off"})


class SwitchOption(click.Option):
    """The ``--NAME [true|false]`` half of a :func:`switch_option`."""


class SwitchCommand(click.Command):
    """A command whose switches also stand alone before an argument: ``tune --evaluate-test e.yaml``
    reads ``e.yaml`` as CONFIG (click would take whatever word follows as the switch's value)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        switches = {opt for param in self.params if isinstance(param, SwitchOption) for opt in param.opts}
        given: list[str] = []
        for index, arg in enumerate(args):
            if arg == "--":
                given.extend(args[index:])
                break
            given.append(arg)
            following = args[index + 1] if index + 1 < len(args) else "-"
            if _dashes(arg) in switches and not following.startswith("-") and following.lower() not in BOOL_WORDS:
                given.append("true")
        return super().parse_args(ctx, given)


def switch_option(name: str, help: str) -> Callable[[Callable], Callable]:
    """``--NAME [true|false]`` (alone: true; ``-P name=true`` reaches it as ``--name true``) and ``--no-NAME``.

    The value is None when neither is given, so a setting of the experiment file stands. The command
    must be a :class:`SwitchCommand` (every command of the ``flair-mlflow`` group is).
    """
    dest = name.replace("-", "_")

    def negate(ctx: click.Context, param: click.Parameter, given: bool) -> None:
        if given:
            ctx.params[dest] = False

    def decorate(function: Callable) -> Callable:
        function = click.option(
            f"--no-{name}", is_flag=True, expose_value=False, callback=negate, help=f"Same as --{name} false."
        )(function)
        return click.option(
            f"--{name}",
            dest,
            cls=SwitchOption,
            type=OPT_BOOL,
            is_flag=False,
            flag_value=True,
            default=None,
            metavar="[true|false]",
            help=help,
        )(function)

    return decorate


#: Options several commands take the same way; each use makes a fresh click option.
_SHARED_OPTIONS = {
    "tracking_uri": click.option("--tracking-uri", type=OPT_STR, help="MLflow tracking URI (default: MLflow's own)."),
    "run_name": click.option("--run-name", type=OPT_STR, help="Name of the run this command starts."),
    "verbose": click.option("--verbose", is_flag=True, help="Show Flair's training log."),
    "debug": click.option("--debug", is_flag=True, help="Show tracebacks."),
}


def shared_options(*names: str) -> Callable[[Callable], Callable]:
    """The shared options ``names`` (``"tracking_uri"``, ``"run_name"``, ``"verbose"``, ``"debug"``), in that order."""

    def decorate(function: Callable) -> Callable:
        for name in reversed(names):
            function = _SHARED_OPTIONS[name](function)
        return function

    return decorate


class CommandError(click.ClickException):
    """One line ``Error: <field>: <problem>`` on stderr (click's own ``show``) and ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Interrupted(CommandError):
    """A signal stopped the command: a plain notice, not an error line, and 128 + the signal's number."""

    def show(self, file: Any = None) -> None:
        click.echo(self.message, file=file, err=file is None)


class UsageLine(click.UsageError):
    """click's error for a mistyped command line, as its one line and the hint where to look (no
    usage block): the same shape as every other refusal."""

    def show(self, file: Any = None) -> None:
        stream = file if file is not None else click.get_text_stream("stderr")
        if self.ctx is not None and self.ctx.help_option_names:
            click.echo(f"Try '{self.ctx.command_path} {self.ctx.help_option_names[0]}' for help.", file=stream)
        click.echo(f"Error: {self.format_message()}", file=stream)


@contextmanager
def _usage_in_one_line() -> Iterator[None]:
    try:
        yield
    except click.UsageError as error:
        if isinstance(error, UsageLine):
            raise
        raise UsageLine(error.format_message(), error.ctx) from error


class Commands(click.Group):
    """The command group: a mistyped command line is one error line (and click's hint), and Ctrl-C
    anywhere in a command, even while it loads its job (tens of seconds before a search starts),
    is one line and exit 130 instead of a traceback or click's "Aborted!" and 1."""

    command_class = SwitchCommand

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        with _usage_in_one_line():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        deliver_lost_signals()
        try:
            with _usage_in_one_line():
                return super().invoke(ctx)
        except KeyboardInterrupt as error:  # before `running` (loading the job), or a command without it
            raise Interrupted("Interrupted", 130) from error


@contextmanager
def running(debug: bool, exit_1: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Around a command's work: plain log lines, and every failure a user can act on as one line.

    Bad input (:class:`FlairMlflowError`) exits 2, the errors in ``exit_1`` exit 1, a signal
    128 + its number; ``--debug`` lets the error raise with its traceback instead.
    """
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        yield
    except SearchInterrupted as error:  # the runs are KILLED by now
        raise Interrupted(
            f"Interrupted by {error.signal_name}: search run {error.parent_run_id} and its running "
            f"trial are KILLED; continue it with --resume {error.parent_run_id}",
            error.exit_code,
        ) from error
    except KeyboardInterrupt as error:  # before a search started: nothing to mark
        raise Interrupted("Interrupted", 130) from error
    except FlairMlflowError as error:
        if debug:
            raise
        raise CommandError(str(error)) from error
    except exit_1 as error:
        if debug:
            raise
        raise CommandError(str(error), exit_code=1) from error
