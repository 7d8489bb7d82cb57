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


def _timed_training(seconds: list[float]) -> None:
    """Add each call of Flair's training methods to ``seconds`` (the search still calls them as usual)."""
    from flair.trainers import ModelTrainer

    def timed(method):
        @functools.wraps(method)  # the search reads the methods' signatures for the arguments they take
        def run(self, *args, **kwargs):
            started = time.perf_counter()
            try:
                return method(self, *args, **kwargs)
            finally:
                seconds.append(time.perf_counter() - started)

        return run

    ModelTrainer.train = timed(ModelTrainer.train)
    ModelTrainer.fine_tune = timed(ModelTrainer.fine_tune)


def _peak_rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("experiment")
    parser.add_argument("folder")
    parser.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    options = parser.parse_args()
    sys.path.insert(0, options.root)
    seconds: list[float] = []
    _timed_training(seconds)
    from flair_mlflow import run_search

    result = run_search(
        options.experiment, tracking_uri=f"sqlite:///{os.path.join(options.folder, 'mlflow.db')}", show_progress=False
    )
    wall = time.time() - STARTED
    training = sum(seconds)
    line = {
        "wall": wall,
        "training": training,
        "outside": wall - training,
        "peak_rss_mb": _peak_rss_mb(),
        "trials": len(result.outcomes),
        "best": result.best_score,
    }
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
