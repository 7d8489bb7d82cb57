"""A search's own cost and memory do not grow with its trials: 30 short trials in this process, timed and measured
as each ends. The bounds are loose enough for a shared machine; benchmarks/bench_search.py measures the 500- and
100-trial figures on a quiet one."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import pytest

from flair_mlflow import run_search

from .conftest import write_tiny_corpus

pytestmark = pytest.mark.slow

EXPERIMENT = """\
task: sequence_tagging
experiment: growth
corpus:
  folder: {folder}
  column_format: {{0: text, 1: ner}}
label_type: ner
max_epochs: 1
max_evals: 30
seed: 3
threads: 1
search_space:
  dropout: {{uniform: [0.0, 0.3]}}
fixed:
  embeddings: onehot
  hidden_size: 8
  use_crf: false
  mini_batch_size: 16
"""


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _slope(values: list[float]) -> float:
    """Least-squares slope per trial."""
    xs = range(len(values))
    mean_x, mean_y = statistics.mean(xs), statistics.mean(values)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, values)) / sum((x - mean_x) ** 2 for x in xs)


def test_per_trial_time_and_memory_do_not_trend_upward(tmp_path: Path, tracking_uri: str, flair_cache):
    write_tiny_corpus(tmp_path / "data")
    config = tmp_path / "growth.yaml"
    config.write_text(EXPERIMENT.format(folder=tmp_path / "data"), encoding="utf-8")
    ended, memory = [time.perf_counter()], []

    def each_trial(line: str) -> None:
        ended.append(time.perf_counter())
        memory.append(_rss_mb())

    result = run_search(config, tracking_uri=tracking_uri, progress=each_trial)
    assert len(result.outcomes) == 30 and result.failed == 0
    per_trial = [later - earlier for earlier, later in zip(ended[1:], ended[2:])]  # the first one warms up
    typical = statistics.median(per_trial)
    # over the 28 intervals a trend would add slope * 28; allow a fifth of a trial for noise on a shared machine
    assert _slope(per_trial) * 28 < 0.2 * typical + 0.05, per_trial
    assert statistics.median(per_trial[-10:]) < 1.3 * statistics.median(per_trial[:10]), per_trial
    early, late = statistics.median(memory[5:15]), statistics.median(memory[-10:])
    assert late < early * 1.05 + 20, memory  # MB: a leak of a model or corpus per trial would show in 15 trials
