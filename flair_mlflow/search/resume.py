"""Continuing a search from what the tracking store holds: its finished child runs.

Nothing is unpickled from anyone's artefact store. Each trial's child run carries hyperopt's own
record of the point it sampled (``misc.vals``: the option index for ``choice``/``pchoice``, the raw
sampled number for the rest) as the JSON tag ``flair_mlflow.hyperopt_vals``; with its ``loss``
metric that rebuilds hyperopt's ``Trials`` exactly, so a resumed search asks TPE the same
questions an uninterrupted one would have. The parent carries hashes of the search space and of
the corpus settings, so a resume with a different experiment is refused instead of mixing trials
that cannot be compared.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..core.config import ExperimentConfig
from ..core.errors import ConfigError
from ..core.hashing import digest, file_digest
from ..core.outcome import TrialOutcome, TrialState
from ..store.runs import child_runs, get_search_run
from ..store.tags import (
    CORPUS_HASH_TAG,
    ERROR_CLASS_TAG,
    ERROR_MESSAGE_TAG,
    NOT_REBUILDABLE_TAG,
    PRUNED_AT_TAG,
    SPACE_HASH_TAG,
    TRIAL_NUMBER_TAG,
    VALS_TAG,
)
from .hyperopt_adapter import restored_trials, sampled_point
from .trial import trial_params

#: what each hash covers, for the message that refuses a resume
HASH_PARTS = {
    SPACE_HASH_TAG: "search space (task, search_space, fixed, max_epochs, training_runs, optimization_value)",
    CORPUS_HASH_TAG: "corpus (corpus, label_type, downsample, seed, multi_label, evaluate_test)",
}


def _corpus_identity(config: ExperimentConfig) -> dict[str, Any]:
    """A named dataset by name and arguments; a local folder by its files' contents, not its path.

    The path differs from machine to machine; the sentences must not.
    """
    corpus = config.corpus
    if corpus.name:
        return {"name": corpus.name, "arguments": corpus.arguments}
    identity: dict[str, Any] = {k: v for k, v in asdict(corpus).items() if k not in ("folder",)}
    folder = Path(corpus.folder or ".")
    files: dict[str, str] = {}
    try:
        from flair.datasets.base import find_train_dev_test_files

        dev, test, train = find_train_dev_test_files(folder, corpus.dev_file, corpus.test_file, corpus.train_file)
        for split, path in (("train", train), ("dev", dev), ("test", test)):
            if path is not None and Path(path).is_file():
                files[split] = file_digest(Path(path))
    except OSError:
        pass
    identity["files"] = files
    return identity


def search_hashes(config: ExperimentConfig) -> dict[str, str]:
    """The parent-run tags that tell whether a later ``--resume`` searches the same thing."""
    space = {
        "task": config.task,
        "search_space": config.search_space,
        "fixed": config.fixed,
        "max_epochs": config.max_epochs,
        "training_runs": config.training_runs,
        "optimization_value": config.optimization_value,
    }
    corpus = {
        "corpus": _corpus_identity(config),
        "label_type": config.label_type,
        "downsample": config.downsample,
        "seed": config.seed,
        "multi_label": config.multi_label,
        "evaluate_test": config.evaluate_test,
    }
    return {SPACE_HASH_TAG: digest(space), CORPUS_HASH_TAG: digest(corpus)}


# -- reading the parent and its trials back -------------------------------------------------
def check_same_search(parent: Any, config: ExperimentConfig) -> dict[str, str]:
    """Refuse to resume with another search space or corpus: their trials could not be compared."""
    run_id = parent.info.run_id
    now = search_hashes(config)
    if not all(tag in parent.data.tags for tag in now):
        raise ConfigError(
            "resume",
            f"run '{run_id}' records no search-space hash (started from Python, or by an older "
            "flair-mlflow), so a resume cannot check that it searches the same thing",
        )
    for tag, value in now.items():
        if parent.data.tags[tag] != value:
            raise ConfigError(
                "resume",
                f"the {HASH_PARTS[tag]} differs from the one run '{run_id}' searched; compare with its "
                "experiment_resolved.yaml, or start a new search",
            )
    return now


def experiment_from_run(client: Any, run_id: str, overrides: Mapping[str, Any] | None) -> ExperimentConfig:
    """The experiment a search ran, from its parent's ``experiment_resolved.yaml`` (a resume without a file)."""
    problem = get_search_run(client, run_id, "resume").data.tags.get(NOT_REBUILDABLE_TAG)
    if problem:
        raise ConfigError(
            "resume",
            f"search '{run_id}' was started from Python and has no experiment file ({problem}), so it cannot be "
            "resumed; start a new search that names its embeddings as an experiment file does",
        )
    with tempfile.TemporaryDirectory(prefix="flair-mlflow-resume-") as folder:
        try:
            local = client.download_artifacts(run_id, "experiment_resolved.yaml", folder)
        except Exception as error:
            message = " ".join(str(error).split())[:200]
            raise ConfigError(
                "resume",
                f"run '{run_id}' has no readable experiment_resolved.yaml; give the experiment file: {message}",
            ) from None
        try:
            return ExperimentConfig.from_file(local, overrides)
        except ConfigError as error:
            raise ConfigError(
                "resume",
                f"the experiment_resolved.yaml of run '{run_id}' is not usable ({error}); give the experiment file",
            ) from None


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
        done = [(o.number - 1, vals, o.hyperopt_result()) for o, vals in zip(self.outcomes, self.vals)]
        return restored_trials(space, done)


def has_result(run: Any) -> bool:
    """A trial's run that ended with what a search counts: a loss, or the error it failed with."""
    status = run.info.status
    if status == TrialState.FAILED.run_status:
        return ERROR_CLASS_TAG in run.data.tags
    return status == TrialState.COMPLETE.run_status and "loss" in run.data.metrics


def restored_outcome(
    client: Any, run: Any, number: int, params: dict[str, Any], history_key: str | None
) -> TrialOutcome:
    """A trial's outcome read back from its child run (``history_key``: also its per-epoch values)."""
    data = run.data
    outcome = TrialOutcome(number=number, params=params, run_id=run.info.run_id)
    if run.info.end_time and run.info.start_time:
        outcome.duration_s = (run.info.end_time - run.info.start_time) / 1000.0
    if run.info.status == TrialState.FAILED.run_status:
        outcome.status = TrialState.FAILED
        outcome.error = f"{data.tags.get(ERROR_CLASS_TAG, 'Error')}: {data.tags.get(ERROR_MESSAGE_TAG, '')}"
        return outcome
    scores = sorted(
        (int(key.split("/")[0][4:]), value)
        for key, value in data.metrics.items()
        if key.startswith("run_") and key.endswith("/score") and key.split("/")[0][4:].isdigit()
    )
    outcome.run_scores = [value for _, value in scores]
    outcome.final_score = data.metrics.get("final_score", math.nan)
    outcome.final_variance = data.metrics.get("final_variance", math.nan)
    for name in ("last_epoch_score", "scored_epochs_variance", "peak_dev_score"):  # NaN in older searches
        setattr(outcome, name, data.metrics.get(name, math.nan))
    outcome.loss = data.metrics["loss"]
    outcome.test_score = data.metrics.get("test_score")
    pruned_at = data.tags.get(PRUNED_AT_TAG)
    if pruned_at is not None:
        outcome.pruned_at = int(float(pruned_at))
        outcome.status = TrialState.PRUNED
    if history_key is not None:
        outcome.epoch_values = [
            [
                m.value
                for m in sorted(
                    client.get_metric_history(run.info.run_id, f"run_{index}/{history_key}"), key=lambda m: m.step
                )
            ]
            for index, _ in scores
        ]
    return outcome


def read_previous_trials(
    client: Any, parent: Any, space: Mapping[str, Any], fixed: Mapping[str, Any], history_key: str | None = None
) -> PreviousTrials:
    """The parent's trials as outcomes and hyperopt points; trials that did not finish are left to run again.

    A trial counts when its child run ended FINISHED with a ``loss`` metric, or FAILED with the
    ``error.class`` tag a failing trial writes (it would fail again). Runs still RUNNING belong to
    a process that was killed (``kill -9``, a lost machine); they are listed in ``abandoned``.
    KILLED ones were interrupted. Both run again under their trial number. Of two counted runs
    with one number (a Spark task retried) the later one counts.
    """
    previous = PreviousTrials(parent=parent)
    found: dict[int, tuple[int, Any, dict[str, list]]] = {}
    for run in child_runs(client, parent.info.experiment_id, parent.info.run_id):
        tags = run.data.tags
        number_text = tags.get(TRIAL_NUMBER_TAG, "")
        if not number_text.isdigit():
            continue  # not a trial of this search
        if run.info.status in ("RUNNING", "SCHEDULED"):
            previous.abandoned.append(run.info.run_id)
        if not has_result(run):
            previous.rerun += 1
            continue
        if VALS_TAG not in tags:
            raise ConfigError(
                "resume", f"trial {number_text} (run '{run.info.run_id}') has no {VALS_TAG} tag; it cannot be restored"
            )
        vals = {label: list(values) for label, values in json.loads(tags[VALS_TAG]).items()}
        started = run.info.start_time or 0
        if int(number_text) not in found or found[int(number_text)][0] <= started:
            found[int(number_text)] = (started, run, vals)
    for number, (_, run, vals) in sorted(found.items()):
        params = trial_params(sampled_point(space, vals), fixed)
        previous.outcomes.append(restored_outcome(client, run, number, params, history_key))
        previous.vals.append(vals)
    return previous
