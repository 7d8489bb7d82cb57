"""The best ``keep_models`` trials' models, kept as logged models; the others deleted after each trial to bound disk."""

from __future__ import annotations

import logging
import math
from typing import Any, Sequence

from ..tracking.mlflow_internals import delete_artifacts
from ..tracking.tags import KEPT_MODEL_TAG
from .outcome import TrialOutcome, ranked

log = logging.getLogger("flair_mlflow")


class KeptModels:
    """Which trials' models stay: those of the ``keep`` best complete trials."""

    def __init__(self, writer: Any, keep: int) -> None:
        self.writer, self.keep, self.deleted = writer, keep, set()

    def bar(self, outcomes: Sequence[TrialOutcome]) -> float:
        """The loss a new trial must beat to be kept: the ``keep``-th best so far (inf while fewer are kept)."""
        best = ranked(outcomes)
        return best[self.keep - 1].loss if self.keep and len(best) >= self.keep else math.inf

    def prune(self, outcomes: Sequence[TrialOutcome]) -> None:
        """Delete the kept models of the trials no longer among the ``keep`` best."""
        staying = {o.model_id for o in ranked(outcomes)[: self.keep]}
        for outcome in outcomes:
            model_id = outcome.model_id
            if not model_id or model_id in staying or model_id in self.deleted:
                continue
            client = self.writer.client
            try:
                delete_artifacts(client.get_logged_model(model_id).artifact_location)
                client.delete_logged_model(model_id)
                client.delete_tag(outcome.run_id, KEPT_MODEL_TAG)
            except Exception as error:  # disk use only: the search goes on
                log.warning("could not delete the model of trial %d (%s): %s", outcome.number, model_id, error)
            self.deleted.add(model_id)
            outcome.model_id = None
