"""Option types, common options and error exits shared by the command modules (kept apart so they import nothing of each other)."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

# a command reads small artefacts (experiment_resolved.yaml, best_params.yaml); MLflow's download
# progress bar on stderr would break the one-line error contract. The user's own setting stands.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


class Optional(click.ParamType):
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


OPT_INT = Optional(click.INT)
OPT_FLOAT = Optional(click.FLOAT)
OPT_STR = Optional(click.STRING)

#: Options every command takes the same way; each use makes a fresh click option.
tracking_uri_option = click.option(
    "--tracking-uri", "--tracking_uri", type=OPT_STR, help="MLflow tracking URI (default: MLflow's own)."
)
run_name_option = click.option("--run-name", "--run_name", type=OPT_STR, help="Name of the run this command starts.")
verbose_option = click.option("--verbose", is_flag=True, help="Show Flair's training log.")
debug_option = click.option("--debug", is_flag=True, help="Show tracebacks.")


def fail(error: BaseException, debug: bool, code: int = 2) -> None:
    """One line on stderr and an exit code; the traceback only with --debug."""
    if debug:
        raise error
    click.echo(f"Error: {error}", err=True)
    sys.exit(code)
