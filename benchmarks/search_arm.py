"""One search alone in a fresh process, so its wall time, its imports and its peak memory are its own.

    python benchmarks/search_arm.py EXPERIMENT.yaml STORE_FOLDER [--root PROJECT_ROOT]

Runs ``flair_mlflow.run_search`` on the experiment file into ``STORE_FOLDER/mlflow.db`` (the project
at ``--root`` first on the path: the benchmark can time another checkout of the package the same
way). Flair's ``ModelTrainer.train`` and ``fine_tune`` are wrapped to add up the time spent inside
them. Prints one JSON line: ``wall`` (seconds since ``BENCH_STARTED``, the parent's clock just
before it started this process), ``training`` (the trials' Flair training), ``outside`` (wall minus
training: imports, corpus, checks, tracking, hyperopt), ``peak_rss_mb`` (this process's VmHWM),
``trials`` and ``best``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time

STARTED = float(os.environ.get("BENCH_STARTED", time.time()))
for name, value in (("MLFLOW_DISABLE_TELEMETRY", "true"), ("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1")):
    os.environ.setdefault(name, value)


def _timed_training(calls: list[tuple[float, float, float]]) -> None:
    """Note each call of Flair's training methods as (start, end, RSS in MB after it), seconds since
    ``BENCH_STARTED`` (the search still calls them as usual)."""
    from flair.trainers import ModelTrainer

    def timed(method):
        @functools.wraps(method)  # the search reads the methods' signatures for the arguments they take
        def run(self, *args, **kwargs):
            started = time.time() - STARTED
            try:
                return method(self, *args, **kwargs)
            finally:
                calls.append((started, time.time() - STARTED, _status_mb("VmRSS:")))

        return run

    ModelTrainer.train = timed(ModelTrainer.train)
    ModelTrainer.fine_tune = timed(ModelTrainer.fine_tune)


def _timed_suggest() -> list[float]:
    """The seconds of each call of hyperopt's TPE suggest (hyperopt's own cost per trial)."""
    import hyperopt.tpe

    seconds: list[float] = []
    suggest = hyperopt.tpe.suggest

    @functools.wraps(suggest)
    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return suggest(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - started)

    hyperopt.tpe.suggest = timed
    return seconds


def _status_mb(field: str = "VmHWM:") -> float:
    """A memory figure of this process (``VmHWM``: its peak resident set), in MB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return float("nan")


def _timeline(store: str, result) -> list[tuple[float, float]]:
    """(seconds since BENCH_STARTED, score) of each trial that trained all of max_epochs and was not pruned."""
    import mlflow

    client, top = mlflow.MlflowClient(store), result.config.max_epochs
    timeline = []
    for outcome in result.outcomes:
        if outcome.status.value != "ok" or (outcome.epochs and outcome.epochs != top):
            continue
        ended = client.get_run(outcome.run_id).info.end_time / 1000 - STARTED
        timeline.append((ended, outcome.final_score))
    return sorted(timeline)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("experiment")
    parser.add_argument("folder")
    parser.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser.add_argument("--resume", help="continue this search (its parent run id) in the store of FOLDER")
    parser.add_argument("--calls", action="store_true", help="also print each training call (start, end, RSS)")
    parser.add_argument("--timeline", action="store_true", help="also print when each full-budget trial ended")
    parser.add_argument("--time-suggest", action="store_true", help="also print the seconds of each hyperopt suggest")
    options = parser.parse_args()
    sys.path.insert(0, options.root)
    calls: list[tuple[float, float, float]] = []
    _timed_training(calls)
    suggest = _timed_suggest() if options.time_suggest else None
    from flair_mlflow import run_search

    store = f"sqlite:///{os.path.join(options.folder, 'mlflow.db')}"
    result = run_search(options.experiment, tracking_uri=store, show_progress=False, resume=options.resume)
    wall = time.time() - STARTED
    training = sum(end - start for start, end, _ in calls)
    line = {
        "wall": wall,
        "training": training,
        "outside": wall - training,
        "peak_rss_mb": _status_mb(),
        "trials": len(result.outcomes),
        "best": result.best_score,
        "parent_run_id": result.parent_run_id,
        "first_training": calls[0][0] if calls else None,
        **({"calls": calls} if options.calls else {}),
        **({"suggest_seconds": suggest} if suggest is not None else {}),
        **({"timeline": _timeline(store, result)} if options.timeline else {}),
    }
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
