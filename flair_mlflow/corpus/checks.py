"""What a corpus must be before any run exists: column files that are column files, read whole, and a sample Flair
can train on and score (a dev label the training sentences lack raises ``IndexError`` in Flair, and with fewer
than two dev labels its scheduler fails): both would fail every trial, so they are refused in one line.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any, Sequence

from flair.data import Corpus
from flair.datasets.base import find_train_dev_test_files

from ..config import CorpusConfig
from ..errors import CorpusError

BOM = "\ufeff"  # Flair's reader takes it as (part of) a token, the check as nothing
MIN_DEV_LABELS = 2
#: the downsample fractions tried, per power of ten, when looking for the smallest that works
FRACTION_STEPS = (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8)


def check_column_files(corpus: CorpusConfig) -> None:
    """Refuse files that are not column files, every line of them: each token line must have the columns
    ``column_format`` names, and every line of a file the same number."""
    folder = Path(corpus.folder or ".")
    dev, test, train = find_train_dev_test_files(folder, corpus.dev_file, corpus.test_file, corpus.train_file)
    if train is None:
        problem = f"no training file in '{folder}': name one with 'train' in it, or set corpus.train_file"
        raise CorpusError("corpus.folder", problem)
    arguments = corpus.arguments
    delimiter = re.compile(arguments.get("column_delimiter", r"\s+"))
    needed = max(corpus.column_format or {0: "text"}) + 1
    for path in (Path(p) for p in (train, dev, test) if p is not None):
        try:
            _check_column_file(
                path, delimiter, arguments.get("comment_symbol"), needed, arguments.get("encoding", "utf-8")
            )
        except UnicodeDecodeError as error:
            raise CorpusError("corpus.folder", f"{path.name} is not {error.encoding} text") from None


def _check_column_file(path: Path, delimiter: re.Pattern, comment: str | None, needed: int, encoding: str) -> None:
    first: tuple[int, int] | None = None  # line number and columns of the first token line
    with open(path, encoding=encoding) as handle:  # streamed: a file is checked whole, whatever its size
        for number, line in enumerate(handle, start=1):
            line = line.replace(BOM, "")
            if not line.strip() or (comment and line.startswith(comment)):
                continue
            columns = len(delimiter.split(line.rstrip()))
            if columns < needed:
                problem = f"{path.name} line {number} has {columns} column(s); column_format needs {needed}"
                raise CorpusError("corpus.folder", problem)
            if first is None:
                first = (number, columns)
            elif columns != first[1]:
                raise CorpusError(
                    "corpus.folder",
                    f"{path.name} line {number} has {columns} columns but line {first[0]} has {first[1]}: "
                    "not a column file (one token per line, a blank line between sentences)",
                )


def scoring_problem(train: list[str], dev: list[str], label_type: str) -> str | None:
    """Why Flair could not train on labels ``train`` and score labels ``dev`` (each a list of values), or None."""
    if not train:
        return f"the training sentences have no '{label_type}' labels"
    if len(dev) < MIN_DEV_LABELS:
        count = f"{len(dev)} '{label_type}' label" + ("" if len(dev) == 1 else "s")
        return f"dev has {count}, too few for Flair to score it (it needs {MIN_DEV_LABELS})"
    unseen = sorted(set(dev) - set(train))
    if unseen:
        shown = ", ".join(unseen[:5]) + (", ..." if len(unseen) > 5 else "")
        return f"dev has '{label_type}' labels the training sentences lack ({shown}), which Flair cannot score"
    return None


def _labels(split: Any, indices: Sequence[int], label_type: str) -> list[str]:
    return [label.value for index in indices for label in split[index].get_labels(label_type)]


def _kept(split: Any, fraction: float) -> Sequence[int]:
    """Positions in the whole split of the sentences a downsample kept: it is a torch ``Subset`` of it."""
    return split.indices if fraction < 1.0 else range(len(split))


def checked_sample(corpus: Any, fraction: float, label_type: str | None = None, seed: int | None = None) -> Any:
    """``corpus`` downsampled to ``fraction`` (Flair's ``downsample``), refused where Flair could not train on
    what is left and score it, with the sizes and the smallest fraction that works. Without ``label_type``,
    or without dev or any label of the type (``check_corpus`` names those), only downsampled."""
    state = random.getstate()  # Flair samples with Python's random: the draw can be replayed
    whole = (corpus.train, corpus.dev, corpus.test)
    if fraction < 1.0:
        corpus.downsample(fraction)
    if label_type is None or whole[0] is None or whole[1] is None:
        return corpus
    if not any(sentence.get_labels(label_type) for sentence in whole[0]):
        return corpus
    problem = _problem(corpus.train, corpus.dev, whole, fraction, label_type)
    if problem is None:
        return corpus
    smallest = _smallest_working_fraction(whole, state, fraction, label_type) if fraction < 1 else None
    if smallest is None:
        raise CorpusError("corpus", problem)
    repeat = f"with seed {seed}" if seed is not None else "for this draw (set seed: to repeat it)"
    raise CorpusError(
        "downsample",
        f"{fraction:g} leaves {len(corpus.train)} of {len(whole[0])} training and {len(corpus.dev)} of "
        f"{len(whole[1])} dev sentences: {problem}; the smallest downsample that works {repeat} is {smallest:g}",
    )


def _problem(train: Any, dev: Any, whole: tuple, fraction: float, label_type: str) -> str | None:
    return scoring_problem(
        _labels(whole[0], _kept(train, fraction), label_type),
        _labels(whole[1], _kept(dev, fraction), label_type),
        label_type,
    )


def _smallest_working_fraction(whole: tuple, state: Any, fraction: float, label_type: str) -> float | None:
    """The smallest fraction above ``fraction`` (from a 1-1.2-1.5-2-... ladder) whose sample, drawn as Flair
    drew this one, Flair could train on and score; None if not even the whole corpus."""
    candidates = sorted({round(step * 10.0**power, 12) for power in range(-6, 1) for step in FRACTION_STEPS})
    drawn = random.getstate()
    try:
        for candidate in [c for c in candidates if fraction < c < 1.0] + [1.0]:
            random.setstate(state)
            sample = Corpus(*whole, sample_missing_splits=False).downsample(candidate)
            if _problem(sample.train, sample.dev, whole, candidate, label_type) is None:
                return candidate
        return None
    finally:
        random.setstate(drawn)
