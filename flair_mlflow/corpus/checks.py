"""What a corpus must be before any run exists: whole column files, and a sample Flair can train on and score
(a dev label the training sentences lack, or fewer than two dev labels, would fail every trial)."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from flair.data import Corpus
from flair.datasets.base import find_train_dev_test_files

from ..config import CorpusConfig
from ..errors import CorpusError

BOM = "\ufeff"  # Flair's reader takes it as (part of) a token, the check as nothing
MIN_DEV_LABELS = 2
FRACTION_STEPS = (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8)  # downsample fractions tried per power of ten


def check_column_files(corpus: CorpusConfig) -> None:
    """Refuse files whose token lines lack the columns ``column_format`` names or differ in their number."""
    folder = Path(corpus.folder or ".")
    dev, test, train = find_train_dev_test_files(folder, corpus.dev_file, corpus.test_file, corpus.train_file)
    if train is None:
        problem = f"no training file in '{folder}': name one with 'train' in it, or set corpus.train_file"
        raise CorpusError("corpus.folder", problem)
    needed = max(corpus.column_format or {0: "text"}) + 1
    for path in (Path(p) for p in (train, dev, test) if p is not None):
        try:
            _check_column_file(path, corpus.arguments, needed)
        except UnicodeDecodeError as error:
            raise CorpusError("corpus.folder", f"{path.name} is not {error.encoding} text") from None


def _check_column_file(path: Path, arguments: dict[str, Any], needed: int) -> None:
    delimiter, comment = re.compile(arguments.get("column_delimiter", r"\s+")), arguments.get("comment_symbol")
    first: tuple[int, int] | None = None  # line number and columns of the first token line
    with open(path, encoding=arguments.get("encoding", "utf-8")) as handle:  # streamed: checked whole, any size
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
                problem = f"{path.name} line {number} has {columns} columns but line {first[0]} has {first[1]}: "
                problem += "not a column file (one token per line, a blank line between sentences)"
                raise CorpusError("corpus.folder", problem)


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
    """``corpus`` downsampled, refused (with the smallest fraction that works) where Flair could not train and score."""
    state = random.getstate()  # Flair samples with Python's random: the draw can be replayed
    whole = (corpus.train, corpus.dev, corpus.test)
    if fraction < 1.0:
        corpus.downsample(fraction)
    if label_type is None or whole[1] is None or not any(s.get_labels(label_type) for s in whole[0] or ()):
        return corpus  # check_corpus names what is missing
    problem = _problem(corpus.train, corpus.dev, whole, fraction, label_type)
    if problem is None:
        return corpus
    smallest = _smallest_working_fraction(whole, state, fraction, label_type) if fraction < 1 else None
    if smallest is None:
        raise CorpusError("corpus", problem)
    repeat = f"with seed {seed}" if seed is not None else "for this draw (set seed: to repeat it)"
    sizes = f"{len(corpus.train)} of {len(whole[0])} training and {len(corpus.dev)} of {len(whole[1])} dev sentences"
    problem = f"{fraction:g} leaves {sizes}: {problem}; the smallest downsample that works {repeat} is {smallest:g}"
    raise CorpusError("downsample", problem)


def _problem(train: Any, dev: Any, whole: tuple, fraction: float, label_type: str) -> str | None:
    def labels(split: Any, sample: Any) -> list[str]:  # a downsample is a torch Subset of the whole split
        kept = sample.indices if fraction < 1.0 else range(len(sample))
        return [label.value for index in kept for label in split[index].get_labels(label_type)]

    return scoring_problem(labels(whole[0], train), labels(whole[1], dev), label_type)


def _smallest_working_fraction(whole: tuple, state: Any, fraction: float, label_type: str) -> float | None:
    """The first fraction above ``fraction`` whose sample, drawn as this one was, works; None if not even 1.0."""
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
