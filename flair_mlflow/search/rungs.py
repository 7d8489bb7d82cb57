"""The driver of a search that runs its own jobs: asynchronous successive halving, one loop for this process and for
Spark (a parallel search without a scheduler is one rung of ``max_epochs``: whole trials, no checkpoints)."""

from __future__ import annotations

import math
import shutil
import time
from typing import Any, Callable, Mapping, Sequence

import hyperopt
import numpy as np

from ..tracking.tags import VALS_TAG
from .hyperopt_internals import restored_trials, sampled_point, vals_json
from .loop import SequentialExecutor
from .outcome import TrialOutcome, as_loss, rung_summary
from .schedulers import Job


class RungExecutor(SequentialExecutor):
    """A multi-fidelity search's trials, one rung at a time: each rung of a trial continues its run and its training
    from the checkpoint the last rung left; checkpoints no promotion can need any more are deleted. Here one job runs
    at a time, in this process; ``SparkExecutor`` runs ``slots`` of them side by side. Without a scheduler (a plain
    search on Spark) a job is a whole trial, trained and logged as a sequential search's."""

    slots = 1

    def __init__(self, scheduler: Any, space: Mapping[str, Any], *args: Any) -> None:
        super().__init__(*args)
        self.scheduler, self.space, self.vals, self.points = scheduler, space, {}, {}
        self.running: dict[int, Job] = {}  # by trial number
        self.checkpoint_peak_bytes = 0
        self.in_rungs = self.runner.config.scheduled  # else: no rung records, no checkpoints

    def restore(self, vals: Sequence[Mapping[str, list]]) -> None:
        """A resumed search: the restored trials' points (``vals``, in their order) and the rungs they finished, so
        promotions and new trials go on as if never interrupted; a failed rung is one after the last finished."""
        maximise = self.runner.config.maximise
        for outcome, trial_vals in zip(self.outcomes, vals):
            self.vals[outcome.number] = trial_vals
            self.points[outcome.number] = sampled_point(self.space, trial_vals)
            self.scheduler.new_trial(outcome.number)
            rungs = self.scheduler.rungs_of(outcome.number)
            finished = [rungs.index(e) for e in outcome.rung_scores if e in rungs]
            for rung in finished:
                self.scheduler.report(outcome.number, rung, as_loss(outcome.rung_scores[rungs[rung]], maximise))
            failed_at = max(finished, default=-1) + 1
            if not outcome.ok and failed_at < len(rungs):
                self.scheduler.report(outcome.number, failed_at, math.inf)
                outcome.rung_scores = {**outcome.rung_scores, rungs[failed_at]: math.nan}
        self._drop_checkpoints()

    def run_rungs(self, suggest: Callable, rng: Any, started: float, stalled: Callable[[list], bool]) -> None:
        """Whenever a slot is free: a promotion if one is due, else the algorithm's next point, learnt from one rung's
        scores (the scheduler decides both); ends at ``max_evals`` points, none left to promote or running. Once the
        time budget is spent or ``stalled(outcomes)`` (no new best for a while), no job starts; those under way end."""
        config, scheduler = self.runner.config, self.scheduler
        domain, budget = hyperopt.Domain(lambda point: 0.0, dict(self.space)), (config.time_budget_minutes or 0) * 60
        enough = len(config.search_space) + 2  # BOHB's: one more result than dimensions, and one to spare
        sampled, rng, stopped = len(self.vals), rng or np.random.default_rng(), False
        while True:
            stopped = stopped or stalled(self.outcomes)
            in_time = not stopped and (not budget or time.time() - started < budget)
            job = scheduler.promotion() if in_time and len(self.running) < self.slots else None
            if job is not None:
                self.start(job)
            elif in_time and len(self.running) < self.slots and sampled < config.max_evals:
                losses = scheduler.losses_at(scheduler.model_budget(enough))
                learnt = [(n - 1, self.vals[n], {"status": "ok", "loss": loss}) for n, loss in losses.items()]
                number = max(self.vals, default=0) + 1  # after a gap a resume left, too
                doc = suggest([number - 1], domain, restored_trials(self.space, learnt), int(rng.integers(2**31 - 1)))
                sampled += 1
                self.start(scheduler.new_trial(number), doc[0]["misc"]["vals"])
            elif self.running:
                self.wait()
            else:
                return

    def start(self, job: Job, vals: Mapping[str, list] | None = None) -> None:
        """Run ``job`` (``vals``: a new trial's point) here and now."""
        self.finish(job, self.runner.run(*self.prepare(job, vals)))

    def wait(self) -> None:
        """Until a running job ends; here none is ever left running."""

    def prepare(self, job: Job, vals: Mapping[str, list] | None) -> tuple[Any, ...]:
        """``job`` counted as under way; ``runner.run``'s arguments for it (its run continued after the first rung)."""
        if vals is not None:
            self.vals[job.number] = vals
            self.points[job.number] = sampled_point(self.space, vals)
        self.scheduler.start(job)
        self.running[job.number] = job
        earlier = next((o for o in self.outcomes if o.number == job.number), None)
        top = [o for o in self.outcomes if not self.in_rungs or o.epochs == self.runner.config.max_epochs]
        self.runner.keep_bar = self.kept.bar(top)
        tags = {VALS_TAG: vals_json(vals)} if vals is not None else {}
        return job.number, self.points[job.number], tags, job if self.in_rungs else None, earlier and earlier.run_id

    def finish(self, job: Job, outcome: TrialOutcome) -> None:
        """A job ended: its rung reported to the scheduler, its outcome to the parent and the console."""
        del self.running[job.number]
        self.scheduler.report(job.number, job.rung, outcome.loss if outcome.ok else math.inf)
        earlier = next((o for o in self.outcomes if o.number == job.number), None)
        if self.in_rungs:
            outcome.rung_scores = {
                **(earlier.rung_scores if earlier else {}),
                job.stop: outcome.final_score if outcome.ok else math.nan,
            }
        self.outcomes = sorted([o for o in self.outcomes if o.number != job.number] + [outcome], key=lambda o: o.number)
        self.kept.prune(self.outcomes)
        self._drop_checkpoints()
        others = [o for o in self.outcomes if o is not outcome]
        self.parent.after_trial([*others, outcome])
        self.show(outcome)

    def _drop_checkpoints(self) -> None:
        """Delete what no promotion can need (a running job's is needed); note the most disk the rest held."""
        if not self.in_rungs:
            return
        held, needed = 0, self.scheduler.awaiting_promotion()
        for number in self.scheduler.bracket_of:
            folder = self.runner.checkpoint_folder(number)
            if not folder.is_dir():
                continue
            if number not in self.running and number not in needed:
                shutil.rmtree(folder, ignore_errors=True)
            else:
                held += sum(f.stat().st_size for f in folder.iterdir())
        self.checkpoint_peak_bytes = max(self.checkpoint_peak_bytes, held)

    def final_outcomes(self, settle: bool) -> list[TrialOutcome]:
        """The trials, the rungs logged; the checkpoints are deleted, unless a signal or an error stopped the search
        (``settle`` False): ``--resume`` continues its trials from them."""
        if not self.in_rungs:
            return list(self.outcomes)
        if settle:
            shutil.rmtree(self.runner.checkpoints, ignore_errors=True)
        maximise = self.runner.config.maximise
        writer, run_id = self.parent.writer, self.parent.run_id
        for epochs, (count, score) in rung_summary(self.outcomes, maximise).items():
            best = {"rung_best_score": score} if math.isfinite(score) else {}
            writer.log_metrics(run_id, {"rung_trials": count, **best}, step=epochs)
        writer.log_metrics(run_id, {"checkpoint_peak_mb": self.checkpoint_peak_bytes / 2**20})
        return list(self.outcomes)
