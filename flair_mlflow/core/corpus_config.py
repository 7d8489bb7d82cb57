"""Where an experiment's data comes from: a Flair dataset by name, or a local folder of files."""

from __future__ import annotations

import codecs
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .coerce import setting
from .errors import ConfigError

CORPUS_FORMATS = ("column", "fasttext")


@dataclass
class CorpusConfig:
    """Where the data comes from: a Flair dataset by name, or a local folder."""

    name: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    folder: str | None = None
    format: str = "column"
    column_format: dict[int, str] | None = None
    train_file: str | None = None
    dev_file: str | None = None
    test_file: str | None = None
    keep_docstart: bool = False  # CoNLL's -DOCSTART- lines are dropped from column corpora unless this is set

    def describe(self) -> str:
        return self.name if self.name else f"{self.format}:{self.folder}"


def corpus_from(value: Any) -> CorpusConfig:
    if isinstance(value, CorpusConfig):
        return value
    if isinstance(value, str):
        return CorpusConfig(name=value)
    if not isinstance(value, Mapping):
        raise ConfigError("corpus", "must be a dataset name or a mapping with 'name' or 'folder'")
    known = {f.name for f in dataclasses.fields(CorpusConfig)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ConfigError(f"corpus.{unknown[0]}", f"unknown setting; known: {', '.join(sorted(known))}")
    data = dict(value)
    if data.get("column_format") is not None:
        if not isinstance(data["column_format"], Mapping):
            raise ConfigError("corpus.column_format", "must map column numbers to names, e.g. {0: text, 1: ner}")
        try:
            data["column_format"] = {int(k): str(v) for k, v in data["column_format"].items()}
        except (TypeError, ValueError):
            raise ConfigError("corpus.column_format", "keys must be column numbers") from None
    if data.get("arguments") is None:
        data["arguments"] = {}
    if "keep_docstart" in data:
        data["keep_docstart"] = setting("corpus.keep_docstart", data["keep_docstart"], bool)
    return CorpusConfig(**data)


def validate_corpus(corpus: CorpusConfig) -> None:
    if bool(corpus.name) == bool(corpus.folder):
        raise ConfigError("corpus", "give either 'name' (a Flair dataset) or 'folder' (local files), not both")
    if not isinstance(corpus.arguments, Mapping):
        raise ConfigError("corpus.arguments", "must be a mapping of keyword arguments")
    if corpus.format not in CORPUS_FORMATS:
        raise ConfigError("corpus.format", f"must be one of {', '.join(CORPUS_FORMATS)}, not {corpus.format!r}")
    _check_reader_arguments(corpus.arguments)
    if corpus.folder:
        folder = Path(corpus.folder)
        if not folder.is_dir():
            raise ConfigError("corpus.folder", f"folder '{folder}' does not exist")
        if corpus.format == "column" and not corpus.column_format:
            raise ConfigError("corpus.column_format", "is required for a column corpus, e.g. {0: text, 1: ner}")
        for name in ("train_file", "dev_file", "test_file"):
            file_name = getattr(corpus, name)
            if file_name and not (folder / file_name).is_file():
                raise ConfigError(f"corpus.{name}", f"'{folder / file_name}' does not exist")


def _check_reader_arguments(arguments: Mapping[str, Any]) -> None:
    """The file reader's own arguments that Flair would only trip over while reading."""
    delimiter = arguments.get("column_delimiter")
    if delimiter is not None:
        try:
            re.compile(delimiter)
        except (re.error, TypeError) as error:
            problem = f"is not a regular expression ({error})"
            raise ConfigError("corpus.arguments.column_delimiter", f"{delimiter!r} {problem}") from None
    encoding = arguments.get("encoding")
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except (LookupError, TypeError):
            raise ConfigError(
                "corpus.arguments.encoding", f"{encoding!r} is not a text encoding Python knows"
            ) from None
