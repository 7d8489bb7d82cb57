"""How well a short rung ranks trials against ``max_epochs``: the premise of multi-fidelity search, measured.

    python benchmarks/rung_ranks.py [--corpus trec] [--trials 60] [--seed 7]

Trains ``--trials`` random configurations of ``bench_asha``'s search on ``--corpus`` for all of its 9 epochs (a
plain ``rand`` search into a temporary store), then prints, for each rung of ASHA's (1, 3 epochs), the Spearman
correlation of its score with the 9-epoch score, where the 9-epoch best ranks there, and the five best trials.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

import mlflow
from bench_asha import CORPORA, corpus_settings
from bench_search import ROOT, environment
from scipy.stats import spearmanr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="trec", choices=sorted(CORPORA))
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    options = parser.parse_args()
    os.environ.update(environment())  # this script's own process: offline, a writable copy of the Flair cache
    logging.getLogger("flair").setLevel(logging.WARNING)  # the table, not every epoch's lines
    from flair_mlflow import run_search
    from flair_mlflow.config import ExperimentConfig

    settings = corpus_settings(options.corpus)
    settings.update(algorithm="rand", max_evals=options.trials, seed=options.seed, experiment="rung-ranks")
    with tempfile.TemporaryDirectory(prefix="rung-ranks-") as folder:
        uri = f"sqlite:///{Path(folder) / 'mlflow.db'}"
        result = run_search(ExperimentConfig.from_dict(settings), tracking_uri=uri, show_progress=False)
        client = mlflow.MlflowClient(uri)
        rows = []  # (score at rung 1, at rung 3, at 9 epochs, searched values)
        for outcome in (o for o in result.outcomes if o.ok):
            dev = [
                m.value
                for m in sorted(client.get_metric_history(outcome.run_id, "run_1/dev_score"), key=lambda m: m.step)
            ]
            sampled = {name: outcome.params[name] for name in settings["search_space"]}
            rows.append((dev[0], sum(dev[:3]) / 3, outcome.final_score, sampled))
    best = max(rows, key=lambda row: row[2])
    print(f"{len(rows)} configurations of the {options.corpus} search, 9 epochs each, seed {options.seed}\n")
    print("| rung | Spearman with the 9-epoch score | rank of the 9-epoch best |\n| --- | --- | --- |")
    for index, rung in enumerate(("epoch 1", "mean of epochs 1-3")):
        rho = spearmanr([row[index] for row in rows], [row[2] for row in rows])[0]
        rank = sorted(rows, key=lambda row: -row[index]).index(best) + 1
        print(f"| {rung} | {rho:.3f} | {rank} of {len(rows)} |")
    print("\n| epoch 1 | epochs 1-3 | 9 epochs | values |\n| --- | --- | --- | --- |")
    for row in sorted(rows, key=lambda row: -row[2])[:5]:
        print(f"| {row[0]:.4f} | {row[1]:.4f} | {row[2]:.4f} | {row[3]} |")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
