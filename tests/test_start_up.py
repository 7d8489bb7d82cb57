"""Start-up runs with Python's cyclic collector off and freezes what it built; trials run with it on,
and a finished search hands the frozen objects back (see ``flair_mlflow.core.collector``)."""

from __future__ import annotations

import functools
import gc

import pytest
from flair.trainers import ModelTrainer

from flair_mlflow import run_search
from flair_mlflow.core.collector import start_up, thaw

from .conftest import WNUT_TINY


@pytest.fixture(autouse=True)
def _collector_as_found():
    enabled = gc.isenabled()
    yield
    thaw()
    gc.enable() if enabled else gc.disable()


def test_start_up_pauses_the_collector_and_freezes_what_it_made():
    gc.enable()
    thaw()
    with start_up():
        assert not gc.isenabled()
        made = [[index] for index in range(1000)]  # noqa: F841  (objects the block leaves behind)
        with start_up():  # nested: the outer one decides
            pass
        assert not gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() > 1000
    thaw()
    assert gc.get_freeze_count() == 0

    gc.disable()  # a user's choice is left alone
    with start_up():
        pass
    assert not gc.isenabled() and gc.get_freeze_count() == 0


def test_a_search_trains_with_the_collector_on_and_hands_back_what_start_up_froze(
    flair_cache, tracking_uri, write_config, monkeypatch
):
    gc.enable()
    thaw()
    seen: list[tuple[bool, int]] = []
    train = ModelTrainer.train

    @functools.wraps(train)  # the search reads train's signature for the arguments it takes
    def noting(self, *args, **kwargs):
        seen.append((gc.isenabled(), gc.get_freeze_count()))
        return train(self, *args, **kwargs)

    monkeypatch.setattr(ModelTrainer, "train", noting)
    config = write_config(WNUT_TINY, max_evals=1)
    run_search(config, overrides={"max_epochs": 1}, show_progress=False)
    [(enabled, frozen)] = seen
    assert enabled and frozen > 100_000  # torch, Flair, MLflow and the corpus: out of the collector's walks
    assert gc.isenabled() and gc.get_freeze_count() == 0
