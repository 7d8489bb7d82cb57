"""A Corpus object given in Python, named as an experiment file would load it again.

A search started from Python (the tutorial's selectors) gets a Flair ``Corpus`` object; its parent
run records the ``corpus`` and ``downsample`` settings that load a corpus like it, so that
``register`` and ``--resume`` can rebuild the search without the object. Flair keeps no record of
how a corpus was made, so only what can be read off the object is recorded: the class of one of
Flair's named datasets, and the fraction a ``Corpus.downsample`` kept (read off its test split).
"""

from __future__ import annotations

import inspect
from typing import Any

#: significant digits tried for a downsample fraction, fewest first: 0.03, not 0.0300353...
FRACTION_DIGITS = range(1, 7)


def corpus_settings(corpus: Any) -> dict[str, Any] | None:
    """``{"corpus": {"name": ...}, "downsample": ...}`` that load a corpus like ``corpus``, or None
    where no experiment file names it (a corpus of a folder read in Python, a Corpus built by hand)."""
    import flair.datasets

    corpus_class = type(corpus)
    name = corpus_class.__name__
    if getattr(flair.datasets, name, None) is not corpus_class or not _loads_without_arguments(corpus_class):
        return None
    return {"corpus": {"name": name}, "downsample": downsampled_fraction(corpus)}


def _loads_without_arguments(corpus_class: type) -> bool:
    """A named dataset loads with no arguments; ColumnCorpus and its like need a folder."""
    try:
        parameters = inspect.signature(corpus_class).parameters.values()
    except (TypeError, ValueError):
        return False
    return all(
        p.default is not inspect.Parameter.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters
    )


def downsampled_fraction(corpus: Any) -> float:
    """The fraction ``Corpus.downsample`` kept, read off the test split (the one Flair never samples a
    missing split from): the shortest fraction that gives the same number of sentences; 1.0 if whole."""
    from torch.utils.data import Subset

    split = corpus.test
    if not isinstance(split, Subset) or len(split.dataset) == 0:
        return 1.0
    whole, kept = len(split.dataset), len(split)
    for digits in FRACTION_DIGITS:
        fraction = float(f"{kept / whole:.{digits}g}")
        if round(whole * fraction) == kept:
            return fraction
    return kept / whole
