"""Option types and error exits shared by the command modules (kept apart so they import nothing of each other)."""

from __future__ import annotations

import sys
from typing import Any

import click


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


def fail(error: BaseException, debug: bool, code: int = 2) -> None:
    """One line on stderr and an exit code; the traceback only with --debug."""
    if debug:
        raise error
    click.echo(f"Error: {error}", err=True)
    sys.exit(code)
