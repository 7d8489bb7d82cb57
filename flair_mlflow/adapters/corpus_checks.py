"""What a corpus must be before any run exists: column files that are column files, read whole, and
a sample Flair can train on and score.

Flair reads almost any text as columns, and trains on a sample it cannot score until the first
evaluation fails: a dev label the training sentences lack raises ``IndexError`` (Flair's label
dictionaries have no "unknown" entry), and with fewer than two dev labels Flair computes no dev
loss, so its learning-rate scheduler fails with a ``TypeError``. Both would fail every trial;
here they are refused with one line naming the setting to change.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..core.corpus_config import CorpusConfig
from ..core.errors import CorpusError

#: a byte-order mark; Flair's reader takes it as (part of) a token, the check as nothing
BOM = "\ufeff"
#: dev labels Flair needs to compute a dev loss (``Model.evaluate``), which its scheduler needs
MIN_DEV_LABELS = 2
#: the downsample fractions tried, per power of ten, when looking for the smallest that works
FRACTION_STEPS = (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8)


# -- column files ----------------------------------------------------------------------------------
def check_column_files(corpus: CorpusConfig) -> None:
    """Refuse files that are not column files before Flair reads them, every line of them.

    Flair reads almost any text as columns (a line of prose becomes one token with its second
    word as label), so a wrong file would train on nonsense instead of failing. Each token line
    must have the columns ``column_format`` names, and every line of a file the same number.
    """
    from flair.datasets.base import find_train_dev_test_files

    folder = Path(corpus.folder or ".")
    dev, test, train = find_train_dev_test_files(folder, corpus.dev_file, corpus.test_file, corpus.train_file)
    if train is None:
        raise CorpusError(
            "corpus.folder", f"no training file in '{folder}': name one with 'train' in it, or set corpus.train_file"
        )
    arguments = corpus.arguments or {}
    layout = _Layout(
        re.compile(arguments.get("column_delimiter", r"\s+")),
        arguments.get("comment_symbol"),
        max(corpus.column_format or {0: "text"}) + 1,
    )
    for path in (train, dev, test):
        if path is not None:
            try:
                _check_column_file(Path(path), layout, arguments.get("encoding", "utf-8"))
            except UnicodeDecodeError as error:
                raise CorpusError("corpus.folder", f"{Path(path).name} is not {error.encoding} text") from None


@dataclass(frozen=True)
class _Layout:
    delimiter: re.Pattern
    comment: str | None
    needed: int  # columns column_format names


def _check_column_file(path: Path, layout: _Layout, encoding: str) -> None:
    first: tuple[int, int] | None = None  # (line number, columns) of the first token line
    with open(path, encoding=encoding) as handle:  # streamed: a file is checked whole, whatever its size
        for number, line in enumerate(handle, start=1):
            line = line.replace(BOM, "")
            if not line.strip() or (layout.comment and line.startswith(layout.comment)):
                continue
            columns = len(layout.delimiter.split(line.rstrip()))
            if columns < layout.needed:
                raise CorpusError(
                    "corpus.folder",
                    f"{path.name} line {number} has {columns} column(s); column_format needs {layout.needed}",
                )
            if first is None:
                first = (number, columns)
            elif columns != first[1]:
                raise CorpusError(
                    "corpus.folder",
                    f"{path.name} line {number} has {columns} columns but line {first[0]} has {first[1]}: "
                    "not a column file (one token per line, a blank line between sentences)",
                )


# -- a sample Flair can train on and score ---------------------------------------------------------
class _Labels:
    """The label values of each sentence of one split, by position, each read when first asked for: a
    sample that works needs only its own sentences' (a tenth of WNUT-17 reads 440 sentences, not 4400)."""

    def __init__(self, split: Any, label_type: str) -> None:
        self.split = split
        self.label_type = label_type
        self.values: dict[int, list[str]] = {}

    def at(self, index: int) -> list[str]:
        values = self.values.get(index)
        if values is None:
            values = self.values[index] = [label.value for label in self.split[index].get_labels(self.label_type)]
        return values

    def of(self, indices: Sequence[int]) -> list[str]:
        return [value for index in indices for value in self.at(index)]

    def any(self) -> bool:
        """Whether any sentence has a label of the type (stops at the first)."""
        return any(self.at(index) for index in range(len(self.split)))


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


def checked_sample(corpus: Any, fraction: float, label_type: str | None = None, seed: int | None = None) -> Any:
    """``corpus`` downsampled to ``fraction`` (Flair's ``downsample``, in place), refused where Flair could
    not train on what is left and score it: with the sizes and the smallest fraction that works.

    Without ``label_type`` only downsampled. A corpus without dev, or without any label of the type,
    is left to ``corpora.check_corpus``, which names that.
    """
    state = random.getstate()  # Flair samples with Python's random: the draw can be replayed
    full = (corpus.train, corpus.dev, corpus.test)
    if fraction < 1.0:
        corpus.downsample(fraction)
    if label_type is None or full[0] is None or full[1] is None:
        return corpus
    train, dev = _Labels(full[0], label_type), _Labels(full[1], label_type)
    if not train.any():
        return corpus
    sampled = _sampled(corpus.train, fraction), _sampled(corpus.dev, fraction)
    problem = scoring_problem(train.of(sampled[0]), dev.of(sampled[1]), label_type)
    if problem is None:
        return corpus
    smallest = _smallest_working_fraction(full, state, fraction, train, dev, label_type) if fraction < 1 else None
    if smallest is None:
        raise CorpusError("corpus", problem)
    repeat = f"with seed {seed}" if seed is not None else "for this draw (set seed: to repeat it)"
    raise CorpusError(
        "downsample",
        f"{fraction:g} leaves {len(corpus.train)} of {len(full[0])} training and {len(corpus.dev)} of "
        f"{len(full[1])} dev sentences: {problem}; the smallest downsample that works {repeat} is {smallest:g}",
    )


def _sampled(split: Any, fraction: float) -> Sequence[int]:
    """Positions in the full split of the sentences Flair kept: a downsample is a torch ``Subset`` of it."""
    return split.indices if fraction < 1.0 else range(len(split))


def _smallest_working_fraction(
    full: tuple, state: Any, fraction: float, train: _Labels, dev: _Labels, label_type: str
) -> float | None:
    """The smallest fraction above ``fraction`` (from a 1-1.2-1.5-2-... ladder) whose sample, drawn as
    Flair drew this one, Flair could train on and score; None if not even the whole corpus."""
    from flair.data import Corpus

    candidates = sorted({round(step * 10.0**power, 12) for power in range(-6, 1) for step in FRACTION_STEPS})
    drawn = random.getstate()
    try:
        for candidate in [c for c in candidates if fraction < c < 1.0] + [1.0]:
            random.setstate(state)
            sample = Corpus(*full, sample_missing_splits=False).downsample(candidate)
            sampled = _sampled(sample.train, candidate), _sampled(sample.dev, candidate)
            if scoring_problem(train.of(sampled[0]), dev.of(sampled[1]), label_type) is None:
                return candidate
        return None
    finally:
        random.setstate(drawn)
