"""Resuming from the finished child runs, nothing unpickled: their ``misc.vals`` tags and losses rebuild the Trials."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from flair.datasets.base import find_train_dev_test_files

from ..config import ExperimentConfig
from ..config.experiment import digest
from ..errors import ConfigError
from ..tracking import tags as T
from ..tracking.search_runs import child_runs
from .hyperopt_internals import restored_trials, sampled_point
from .outcome import SCORE_METRICS, TrialOutcome, TrialState
from .trial import trial_params

#: what each hash covers, for the message that refuses a resume
HASH_PARTS = {
    T.SPACE_HASH_TAG: "search space (task, search_space, fixed, max_epochs, training_runs, optimization_value)",
    T.CORPUS_HASH_TAG: "corpus (corpus, label_type, downsample, seed, multi_label, evaluate_test)",
}


def _corpus_identity(config: ExperimentConfig) -> dict[str, Any]:
    """A named dataset by name and arguments; a local folder by its files' contents, not its machine's path."""
    corpus = config.corpus
    if corpus.name:
        return {"name": corpus.name, "arguments": corpus.arguments}
    identity = corpus.model_dump(exclude={"folder"})
    folder = Path(corpus.folder or ".")
    dev, test, train = find_train_dev_test_files(folder, corpus.dev_file, corpus.test_file, corpus.train_file)
    files = {split: path for split, path in (("train", train), ("dev", dev), ("test", test)) if path is not None}
    identity["files"] = {split: hashlib.sha256(Path(p).read_bytes()).hexdigest()[:16] for split, p in files.items()}
    return identity


def search_hashes(config: ExperimentConfig) -> dict[str, str]:
    """The parent-run tags that tell whether a later ``--resume`` searches the same thing."""
    names = ("task", "search_space", "fixed", "max_epochs", "training_runs", "optimization_value")
    space = {k: getattr(config, k) for k in names}
    corpus = {k: getattr(config, k) for k in ("label_type", "downsample", "seed", "multi_label", "evaluate_test")}
    return {T.SPACE_HASH_TAG: digest(space), T.CORPUS_HASH_TAG: digest({**corpus, "corpus": _corpus_identity(config)})}


def check_same_search(parent: Any, config: ExperimentConfig) -> None:
    """Refuse to resume with another search space or corpus: their trials could not be compared."""
    run_id = parent.info.run_id
    for tag, value in search_hashes(config).items():
        if tag not in parent.data.tags:
            why = "started from Python, or by an older flair-mlflow"
            problem = f"run '{run_id}' records no search-space hash ({why}), so a resume cannot check that it searches"
            raise ConfigError("resume", f"{problem} the same thing")
        if parent.data.tags[tag] != value:
            problem = f"the {HASH_PARTS[tag]} differs from the one run '{run_id}' searched"
            raise ConfigError("resume", f"{problem}; compare with its experiment_resolved.yaml, or start a new search")
    recorded = parent.data.params.get("scheduler", "none")  # the rungs its trials ran and its checkpoints hold
    if recorded != config.scheduler.describe():
        problem = f"is {config.scheduler.describe()}, but run '{run_id}' searched with {recorded}; resume it with that"
        raise ConfigError("scheduler", problem)


@dataclass
class PreviousTrials:
    """What a resumed search starts from: its finished trials and hyperopt's record of their points."""

    parent: Any
    outcomes: list[TrialOutcome] = field(default_factory=list)
    vals: list[dict[str, list]] = field(default_factory=list)  # each outcome's misc.vals
    abandoned: list[str] = field(default_factory=list)  # child runs a killed process left RUNNING
    rerun: int = 0  # trials that were interrupted and will run again

    def hyperopt_trials(self, space: Mapping[str, Any]):
        """hyperopt's ``Trials`` holding these trials under their numbers (trial id = number - 1)."""
        done = [(o.number - 1, v, o.hyperopt_result()) for o, v in zip(self.outcomes, self.vals)]
        return restored_trials(space, done)


def has_result(run: Any) -> bool:
    """A trial's run that ended with what a search counts: a loss, or the error it failed with; a multi-fidelity
    trial that a signal cut inside a promotion counts with the rungs it had finished (``rung_score``)."""
    if run.info.status == "FAILED":
        return T.ERROR_CLASS_TAG in run.data.tags
    finished = run.info.status == "FINISHED" or "rung_score" in run.data.metrics
    return finished and "loss" in run.data.metrics


def restored_outcome(client: Any, run: Any, number: int, params: dict[str, Any],
                     history_key: str | None) -> TrialOutcome:  # fmt: skip
    """A trial's outcome read back from its run (``history_key``: with its per-epoch values, for pruning)."""
    data, info = run.data, run.info
    outcome = TrialOutcome(number=number, params=params, run_id=info.run_id)
    outcome.duration_s = ((info.end_time or 0) - (info.start_time or 0)) / 1000.0 if info.end_time else 0.0
    if "rung_score" in data.metrics:  # each rung it finished: its epochs and score (the scheduler is rebuilt from them)
        history = client.get_metric_history(info.run_id, "rung_score")
        outcome.rung_scores = {m.step: m.value for m in sorted(history, key=lambda m: m.step)}
        outcome.epochs, outcome.rung = max(outcome.rung_scores), int(data.tags.get(T.RUNG_TAG, 0))
    if info.status == "FAILED":
        outcome.status = TrialState.FAILED
        outcome.error = f"{data.tags.get(T.ERROR_CLASS_TAG, 'Error')}: {data.tags.get(T.ERROR_MESSAGE_TAG, '')}"
        return outcome
    indices = {key: key[4:].split("/")[0] for key in data.metrics if key.startswith("run_") and key.endswith("/score")}
    scores = sorted((int(index), data.metrics[key]) for key, index in indices.items() if index.isdigit())
    outcome.run_scores = [value for _, value in scores]
    for name in SCORE_METRICS:
        setattr(outcome, name, data.metrics.get(name, math.nan))
    outcome.test_score, outcome.model_id = data.metrics.get("test_score"), data.tags.get(T.KEPT_MODEL_TAG)
    if data.tags.get(T.PRUNED_AT_TAG) is not None:
        outcome.pruned_at, outcome.status = int(float(data.tags[T.PRUNED_AT_TAG])), TrialState.PRUNED
    if history_key is not None:
        histories = [client.get_metric_history(info.run_id, f"run_{index}/{history_key}") for index, _ in scores]
        outcome.epoch_values = [[m.value for m in sorted(history, key=lambda m: m.step)] for history in histories]
    return outcome


def read_previous_trials(client: Any, parent: Any, space: Mapping[str, Any], fixed: Mapping[str, Any],
                         history_key: str | None) -> PreviousTrials:  # fmt: skip
    """The parent's trials with a result, as outcomes and points; of two runs with one number the later counts."""
    previous = PreviousTrials(parent=parent)
    found: dict[int, tuple[int, Any, dict[str, list]]] = {}
    for run in child_runs(client, parent.info.experiment_id, parent.info.run_id):
        number = run.data.tags.get(T.TRIAL_NUMBER_TAG, "")
        if not number.isdigit():
            continue
        if run.info.status in ("RUNNING", "SCHEDULED"):
            previous.abandoned.append(run.info.run_id)
        if not has_result(run):
            previous.rerun += 1
            continue
        if T.VALS_TAG not in run.data.tags:
            problem = f"trial {number} (run '{run.info.run_id}') has no {T.VALS_TAG} tag; it cannot be restored"
            raise ConfigError("resume", problem)
        started = run.info.start_time or 0
        if int(number) not in found or found[int(number)][0] <= started:
            found[int(number)] = (started, run, json.loads(run.data.tags[T.VALS_TAG]))
    for number, (_, run, vals) in sorted(found.items()):
        params = trial_params(sampled_point(space, vals), fixed)
        previous.outcomes.append(restored_outcome(client, run, number, params, history_key))
        previous.vals.append(vals)
    return previous
