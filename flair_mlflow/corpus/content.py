"""What a loaded corpus tells: the constant predictor's dev score (the bar to clear), the settings that reload it."""

from __future__ import annotations

import hashlib
import inspect
from collections import Counter
from pathlib import Path
from typing import Any

import flair.datasets
from flair.data import Sentence, Token
from torch.utils.data import Subset

FRACTION_DIGITS = range(1, 7)  # significant digits tried for a downsample fraction: 0.03, not 0.0300353...


def constant_predictor_score(most_frequent: int, labels: int, units: int) -> float:
    """Micro F1 of the commonest label for every unit: precision ``c / n``, recall ``c / L``, so ``2c / (n + L)``."""
    return 2.0 * most_frequent / (units + labels) if most_frequent > 0 and units + labels > 0 else 0.0


def constant_predictor(corpus: Any, label_type: str) -> tuple[float, str]:
    """Dev score of predicting one constant thing, and what: no spans (NER scores 0), else the commonest label."""
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
    """``{"corpus": {"name": ...}, "downsample": ...}`` that load ``corpus`` again; None where no name loads it."""
    corpus_class = type(corpus)
    if getattr(flair.datasets, corpus_class.__name__, None) is not corpus_class:
        return None
    try:
        parameters = inspect.signature(corpus_class).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters):
        return None  # ColumnCorpus and its like need a folder
    return {"corpus": {"name": corpus_class.__name__}, "downsample": downsampled_fraction(corpus)}


def downsampled_fraction(corpus: Any) -> float:
    """The shortest fraction giving the test split's size (Flair samples no missing split from it); 1.0 if whole."""
    split = corpus.test
    if not isinstance(split, Subset) or len(split.dataset) == 0:
        return 1.0
    whole, kept = len(split.dataset), len(split)
    for digits in FRACTION_DIGITS:
        fraction = float(f"{kept / whole:.{digits}g}")
        if round(whole * fraction) == kept:
            return fraction
    return kept / whole


def split_summaries(corpus: Any, label_type: str, with_test: bool) -> dict[str, dict[str, Any]]:
    """Each split's digest (of its tokens and labels: the sampled sentences, not the files) and profile, for the
    dataset inputs MLflow shows; the test split only where trials see it."""
    splits = {"train": corpus.train, "dev": corpus.dev, "test": corpus.test if with_test else None}
    summaries = {}
    for context, split in ((c, s) for c, s in splits.items() if s is not None and len(s) > 0):
        digest, tokens, labels = hashlib.sha256(), 0, Counter()
        for sentence in split:
            values = [label.value for label in sentence.get_labels(label_type)]
            digest.update("\t".join([sentence.to_tokenized_string(), *values, "\n"]).encode("utf-8"))
            tokens += len(sentence)
            labels.update(values)
        profile = {"sentences": len(split), "tokens": tokens, "labels": sum(labels.values()), "label_values": labels}
        summaries[context] = {"digest": digest.hexdigest()[:8], "profile": profile}
    return summaries


def dataset_source(config: Any, given: Any = None) -> tuple[str, dict[str, Any]]:
    """The name and source of a run's dataset inputs: the local folder, or the Flair dataset and its sampling."""
    if given is not None:
        return str(getattr(given, "name", None) or type(given).__name__), {"flair_corpus": type(given).__name__}
    corpus, sampling = config.corpus, {"downsample": config.downsample, "seed": config.seed}
    if corpus.folder:
        return Path(corpus.folder).name, {"uri": str(corpus.folder)}
    return corpus.name, {"flair_dataset": corpus.name, **corpus.arguments, **sampling}
