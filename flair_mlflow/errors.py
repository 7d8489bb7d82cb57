"""Errors that reach the user as one line naming the field at fault."""


class FlairMlflowError(Exception):
    """Base class: the command line prints these as one line and exits with ``exit_code``."""

    exit_code = 2


class ConfigError(FlairMlflowError, ValueError):
    """A wrong setting; ``field``, its dotted path (``search_space.dropout``), points at the line to change."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class CorpusError(ConfigError):
    """The corpus cannot be loaded or does not hold what the experiment needs."""


class EmbeddingError(ConfigError):
    """An embedding named in the experiment cannot be built."""


class SearchFailed(FlairMlflowError):
    """Every trial of a search failed; the message says where to look."""

    exit_code = 1


def one_line(error: BaseException, limit: int = 300) -> str:
    """An error's message on one line, cut to ``limit`` characters (a traceback's tail stays out)."""
    return " ".join(str(error).split())[:limit] or type(error).__name__
