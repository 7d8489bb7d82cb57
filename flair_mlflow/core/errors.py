"""Errors that reach the user as one line naming the field at fault."""


class FlairMlflowError(Exception):
    """Base class: the CLI prints these as a single line and exits with code 2."""


class ConfigError(FlairMlflowError, ValueError):
    """A setting of the experiment file or of the command line is wrong.

    ``field`` is the dotted path of the setting (``search_space.dropout``) so the
    message can point at the line the user has to change.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class CorpusError(ConfigError):
    """The corpus cannot be loaded or does not hold what the experiment needs."""


class EmbeddingError(ConfigError):
    """An embedding named in the experiment cannot be built."""
