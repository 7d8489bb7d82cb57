"""What a loaded corpus tells: the score of predicting one constant thing on dev (the bar a search's best
trial must clear), and, for a Corpus object given in Python, the settings that would load it again."""

from __future__ import annotations

import inspect
from collections import Counter
from typing import Any

import flair.datasets
from flair.data import Sentence, Token
from torch.utils.data import Subset

#: significant digits tried for a downsample fraction, fewest first: 0.03, not 0.0300353...
FRACTION_DIGITS = range(1, 7)


def constant_predictor_score(most_frequent: int, labels: int, units: int) -> float:
    """Micro F1 of predicting the most frequent label for each of ``units`` tokens or sentences: precision
    ``most_frequent / units``, recall ``most_frequent / labels``, so ``2 c / (n + L)``."""
    if most_frequent <= 0 or units + labels <= 0:
        return 0.0
    return 2.0 * most_frequent / (units + labels)


def constant_predictor(corpus: Any, label_type: str) -> tuple[float, str]:
    """What predicting one constant thing scores on dev, and what that thing is: no spans for span labels
    (NER scores 0), the most frequent label for token or sentence labels."""
    counts: Counter[str] = Counter()
    kinds: set[str] = set()
    sentences = tokens = 0
    for sentence in corpus.dev or []:
        sentences += 1
        tokens += len(sentence)
        for label in sentence.get_labels(label_type):
            point = label.data_point
            kinds.add("sentence" if isinstance(point, Sentence) else "token" if isinstance(point, Token) else "span")
            counts[label.value] += 1
    if not counts or "span" in kinds:
        return 0.0, "predicting no spans" if counts else "predicting nothing"
    value, most = counts.most_common(1)[0]
    units = tokens if "token" in kinds else sentences
    return constant_predictor_score(most, sum(counts.values()), units), f"always predicting '{value}'"


def corpus_settings(corpus: Any) -> dict[str, Any] | None:
    """``{"corpus": {"name": ...}, "downsample": ...}`` that load a corpus like ``corpus`` (one of Flair's
    datasets by name, downsampled), or None where no experiment file names it (a folder read in Python)."""
    corpus_class = type(corpus)
    if getattr(flair.datasets, corpus_class.__name__, None) is not corpus_class:
        return None
    try:
        parameters = inspect.signature(corpus_class).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(
        p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters
    ):
        return None  # ColumnCorpus and its like need a folder
    return {"corpus": {"name": corpus_class.__name__}, "downsample": downsampled_fraction(corpus)}


def downsampled_fraction(corpus: Any) -> float:
    """The fraction ``Corpus.downsample`` kept, read off the test split (Flair never samples a missing split
    from it): the shortest fraction that gives its number of sentences; 1.0 if whole."""
    split = corpus.test
    if not isinstance(split, Subset) or len(split.dataset) == 0:
        return 1.0
    whole, kept = len(split.dataset), len(split)
    for digits in FRACTION_DIGITS:
        fraction = float(f"{kept / whole:.{digits}g}")
        if round(whole * fraction) == kept:
            return fraction
    return kept / whole
