"""Does the learning-rate finder's suggestion hold up? Its ``--lr-from`` range against ground truth.

    FLAIR_CACHE_ROOT=<writable copy of Flair's cache> python benchmarks/bench_lr_ground_truth.py

For each example (``examples/wnut17.yaml``, ``examples/trec6.yaml``): the finder runs with its
defaults on the model the example describes (as ``flair-mlflow lr-find`` does), and the same model
is trained for the example's epochs at seven fixed learning rates, half a decade apart, from 0.001
to 1 (the rates these examples search, and more than a decade around them). A training run is scored as a
trial is: its dev score, the mean of its last three epochs, seeded the same at every rate. The row
says whether the range a search fed with ``--lr-from`` would search, [suggestion / 10, suggestion
x 10], contains the best of those rates. Writes ``benchmarks/results/lr_ground_truth.md`` and
``.json`` (the finder's curves and every score, saved as each comes: ``--reuse-scores`` trains only
the rates not yet scored, then runs the finder with the current settings and rules).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_search  # noqa: E402

os.environ.update(bench_search.environment())  # offline, and a writable copy of Flair's shared cache
import numpy as np  # noqa: E402

from flair_mlflow import ExperimentConfig  # noqa: E402
from flair_mlflow.lr_finder.curve import DEFAULTS  # noqa: E402
from flair_mlflow.search.rules import LR_RANGE_FACTOR  # noqa: E402


def learning_rate_range(suggested: float) -> tuple[float, float]:
    return suggested / LR_RANGE_FACTOR, suggested * LR_RANGE_FACTOR


EXAMPLES = ("wnut17.yaml", "trec6.yaml")
GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
RESULTS = HERE / "results"


def find(config: ExperimentConfig, store: str) -> dict:
    """The finder with its defaults on the example's model; the curve, for rescoring."""
    from flair_mlflow import run_lr_find
    from flair_mlflow.lr_finder.curve import read_learning_rate_tsv

    with tempfile.TemporaryDirectory() as folder:
        found = run_lr_find(config, tracking_uri=store, output=folder)
        curve = read_learning_rate_tsv(Path(folder) / "learning_rate.tsv")
    return {
        "learning_rates": curve.learning_rates,
        "losses": curve.losses,
        "smoothed_losses": curve.smoothed_losses,
        "suggested_lr": found.suggestion.suggested_lr,
        "rule": found.suggestion.default_rule,
        "warning": found.suggestion.warning,
    }


def train_at(config: ExperimentConfig, learning_rate: float) -> float:
    """The example's model trained at one fixed rate for the example's epochs: its dev score as a trial's."""
    from flair_mlflow.search.trial import TrialRunner

    params = {**config.representative_params(), "learning_rate": learning_rate}
    params["min_learning_rate"] = 1e-9  # annealing must not end a slow rate's training early
    fixed = {k: v for k, v in params.items() if k not in config.search_space}
    sampled = {k: v for k, v in params.items() if k in config.search_space}
    outcome = TrialRunner(config.replaced(fixed=fixed)).run(1, sampled)  # trial 1: the same seed at every rate
    if not outcome.ok:
        return float("nan")
    return outcome.final_score


def judge(example: dict) -> dict:
    """The finder's suggestion against the scores at fixed rates."""
    curve = example["curve"]
    low, high = learning_rate_range(curve["suggested_lr"])
    scores = {float(k): v for k, v in example["scores"].items()}
    finite = {lr: s for lr, s in scores.items() if np.isfinite(s)}
    best_lr = max(finite, key=finite.get)
    best_inside = max((s for lr, s in finite.items() if low <= lr <= high), default=float("nan"))
    return {
        "suggested_lr": curve["suggested_lr"],
        "rule": curve["rule"],
        "range": [low, high],
        "best_lr": best_lr,
        "best_score": finite[best_lr],
        "best_inside": best_inside,
        "contains_best": bool(low <= best_lr <= high),
        "warning": curve["warning"],
    }


def table(examples: dict, settings: str) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores; {settings}.",
        "",
        "| example | suggestion (rule) | --lr-from range | dev score at fixed rates | best rate | range holds it |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, example in examples.items():
        verdict = example["verdict"]
        scores = ", ".join(f"{float(lr):g}: {s:.3f}" for lr, s in example["scores"].items())
        low, high = verdict["range"]
        held = "yes" if verdict["contains_best"] else f"no (best inside: {verdict['best_inside']:.3f})"
        lines.append(
            f"| {name} ({example['optimizer']}) | {verdict['suggested_lr']:.3g} ({verdict['rule']}) "
            f"| {low:.3g} .. {high:.3g} | {scores} | {verdict['best_lr']:g} ({verdict['best_score']:.3f}) | {held} |"
        )
    return "\n".join(lines) + "\n"


def rescore(saved: Path, names: list[str]) -> int:
    """The current rules on the saved smoothed curves (the rules are pure: the same curve, the same reading)."""
    from flair_mlflow.lr_finder.rules import suggest_learning_rates

    recorded = json.loads(saved.read_text())
    examples = recorded["examples"]
    for name in names:
        curve = examples[name]["curve"]
        suggestion = suggest_learning_rates(curve["learning_rates"], curve["smoothed_losses"])
        curve.update(suggested_lr=suggestion.suggested_lr, rule=suggestion.default_rule, warning=suggestion.warning)
        examples[name]["verdict"] = judge(examples[name])
    text = table({name: examples[name] for name in names}, recorded["settings"])
    (RESULTS / "lr_ground_truth.md").write_text(text, encoding="utf-8")
    saved.write_text(json.dumps(recorded, indent=1), encoding="utf-8")
    print(text)
    return 0 if all(examples[name]["verdict"]["contains_best"] for name in names) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reuse-scores", action="store_true", help="keep the saved scores; train only what is missing")
    parser.add_argument("--rescore", action="store_true", help="train and sweep nothing: the rules on the saved curves")
    parser.add_argument("--examples", nargs="*", default=list(EXAMPLES))
    arguments = parser.parse_args()
    saved = RESULTS / "lr_ground_truth.json"
    if arguments.rescore:
        return rescore(saved, arguments.examples)
    examples: dict = json.loads(saved.read_text())["examples"] if arguments.reuse_scores and saved.exists() else {}
    RESULTS.mkdir(exist_ok=True)
    started, trained = time.time(), 0
    with tempfile.TemporaryDirectory(prefix="bench-lr-") as folder:
        store = f"sqlite:///{folder}/mlflow.db"
        for name in arguments.examples:
            config = ExperimentConfig.from_file(HERE.parent / "examples" / name)
            example = examples.setdefault(name, {"scores": {}})
            example["optimizer"] = str(config.fixed.get("optimizer", "sgd"))
            for learning_rate in [lr for lr in GRID if str(lr) not in example["scores"]]:
                example["scores"][str(learning_rate)] = train_at(config, learning_rate)
                trained += 1
                print(f"{name} lr {learning_rate:g}: {example['scores'][str(learning_rate)]:.4f}", file=sys.stderr)
                saved.write_text(json.dumps({"examples": examples}, indent=1), encoding="utf-8")
            print(f"{name}: range test", file=sys.stderr, flush=True)
            example["curve"] = find(config, store)
            example["scores"] = {str(lr): example["scores"][str(lr)] for lr in GRID}
            example["verdict"] = judge(example)
    settings = (
        f"finder: {DEFAULTS.iterations} iterations from {DEFAULTS.start_learning_rate:g} to "
        f"{DEFAULTS.end_learning_rate:g}, smoothing {DEFAULTS.smoothing_factor}; "
        f"each example's model, epochs and batch size; {trained} of {len(GRID) * len(arguments.examples)} "
        f"scores trained in this run, {time.time() - started:.0f}s"
    )
    text = table({name: examples[name] for name in arguments.examples}, settings)
    (RESULTS / "lr_ground_truth.md").write_text(text, encoding="utf-8")
    saved.write_text(json.dumps({"settings": settings, "examples": examples}, indent=1), encoding="utf-8")
    print(text)
    return 0 if all(examples[name]["verdict"]["contains_best"] for name in arguments.examples) else 1


if __name__ == "__main__":
    sys.exit(main())
