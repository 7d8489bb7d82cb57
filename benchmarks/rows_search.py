"""Rows timed inside one process: tracking overhead, the embedding cache, pruning, threads per trial."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import mlflow
from bench_common import (
    TREC,
    WNUT,
    ExperimentConfig,
    _CallTimer,
    _readme_example,
    _run_trials,
    _sampled_trials,
    _server,
    _time_arms,
    run_search,
)


def tracking_overhead(folder: Path, repeats: int) -> list[dict]:
    config = ExperimentConfig.from_dict({**WNUT, "downsample": 0.2, "max_epochs": 4, "max_evals": 4})
    trials = _sampled_trials(config, config.max_evals)
    server, url = _server(folder)
    time.sleep(10)  # let the server finish starting up: it competes for the same two cores
    _run_trials(config, trials[:1], None)  # warm-up: imports, embeddings, first-call costs
    in_calls: dict[str, list[float]] = {"sqlite": [], "http": []}
    try:
        times: dict[str, list[float]] = {"none": [], "sqlite": [], "http": []}
        for repeat in range(repeats + 1):  # one repeat more: wall times here differ by less than training's noise
            for arm in ("none", "sqlite", "http"):
                uri = {"none": None, "sqlite": f"sqlite:///{folder / f'bench{repeat}.db'}", "http": url}[arm]
                with _CallTimer() as timer:
                    times[arm].append(_run_trials(config, trials, uri))
                if uri is not None:
                    in_calls[arm].append(timer.seconds)
    finally:
        server.terminate()
        server.wait(timeout=20)
    base = statistics.median(times["none"])
    rows = []
    for arm, label in (("sqlite", "local sqlite"), ("http", "HTTP server")):
        value = statistics.median(times[arm])
        share = statistics.median(c / t for c, t in zip(in_calls[arm], times[arm]))
        rows.append(
            {
                "row": f"tracking overhead, {label}",
                "measure": f"{config.max_evals} trials x {config.max_epochs} epochs, {repeats + 1} repeats: time inside "
                "MLflow calls / wall; wall tracked vs untracked",
                "a": value,
                "b": base,
                "ratio": share,
                "result": f"{share * 100:.1f}% of wall time in MLflow calls; wall {value:.1f}s vs {base:.1f}s untracked",
                "raw": {"tracked": times[arm], "untracked": times["none"], "in_calls": in_calls[arm]},
            }
        )
    return rows


def cache_on_off(folder: Path, repeats: int) -> list[dict]:
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'cache.db'}")
    run_search(ExperimentConfig.from_dict({**TREC, "max_evals": 1}), show_progress=False)  # imports, MiniLM loaded
    times, results = _time_arms(
        {"off": {**TREC, "embedding_cache_mb": 0}, "on": {**TREC, "embedding_cache_mb": 1024}}, repeats
    )
    scores = {arm: [o.final_score for o in result.outcomes] for arm, result in results.items()}
    later = {arm: statistics.mean(o.duration_s for o in result.outcomes[1:]) for arm, result in results.items()}
    on, off = statistics.median(times["on"]), statistics.median(times["off"])
    same = "identical" if scores["on"] == scores["off"] else f"within {_largest_gap(scores):.1e}"
    return [
        {
            "row": "embedding cache, frozen MiniLM (TREC_6)",
            "measure": f"{TREC['max_evals']} trials x {TREC['max_epochs']} epochs, wall time cache on / off "
            "(MiniLM loaded before timing); a trial after the first",
            "a": on,
            "b": off,
            "ratio": on / off,
            "result": f"{off / on:.2f}x faster ({on:.1f}s vs {off:.1f}s); scores {same}; "
            f"a later trial {later['on']:.2f}s vs {later['off']:.2f}s; 3x from "
            f"{_trials_to(3.0, on, off, later['on'], TREC['max_evals'])} trials on",
            "raw": {"on": times["on"], "off": times["off"], "scores": scores, "later_trial": later},
        }
    ]


def _largest_gap(scores: dict[str, list[float]]) -> float:
    return max(abs(a - b) for a, b in zip(scores["on"], scores["off"]))


def _trials_to(ratio: float, on: float, off: float, later_on: float, trials: int) -> int | str:
    """The fewest trials at which the cached search would be ``ratio`` times faster: the first cached
    trial (with everything outside the trials) as measured, each later one as a measured later one,
    and every uncached trial as their mean."""
    first_on = on - (trials - 1) * later_on
    for count in range(1, 101):
        if count * off / trials >= ratio * (first_on + (count - 1) * later_on):
            return count
    return "over 100"


def _time_to_reach(result, score: float, started: float, minimise: bool) -> float:
    """Seconds from a search's start until a trial that can be best first scored ``score`` or better."""
    client = mlflow.MlflowClient()
    ends = [
        client.get_run(o.run_id).info.end_time / 1000
        for o in result.outcomes
        if o.ok and not o.pruned and (o.final_score <= score + 1e-9 if minimise else o.final_score >= score - 1e-9)
    ]
    return min(ends) - started if ends else float("nan")


def pruning_on_off(folder: Path, repeats: int) -> list[dict]:
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'prune.db'}")
    base = {
        **WNUT,
        "max_evals": 8,
        "max_epochs": 4,
        "optimization_value": "dev_loss",
        "search_space": {**WNUT["search_space"], "learning_rate": {"choice": [0.2, 0.05, 1.0e-4]}},
    }
    pruned = {**base, "pruning": {"warmup_epochs": 1, "startup_trials": 2}}
    reached, extra = [], {}
    times: dict = {"off": [], "on": []}
    for _ in range(repeats):  # one repeat at a time: each pruned search is held against its own unpruned one
        one, results = _time_arms({"off": base, "on": pruned}, 1, extra)
        for arm in times:
            times[arm] += one[arm]
        target = results["off"].best_score
        reached.append(_time_to_reach(results["on"], target, extra["on"]["started"], minimise=True) / one["off"][0])
    best = {arm: result.best_score for arm, result in results.items()}
    count = sum(o.pruned for o in results["on"].outcomes)
    on, off = statistics.median(times["on"]), statistics.median(times["off"])
    share = statistics.median(reached)
    return [
        {
            "row": "pruning (median rule), WNUT_17",
            "measure": f"{base['max_evals']} trials x {base['max_epochs']} epochs: time until the pruned search first "
            "reaches the unpruned search's best / the unpruned search's time; wall time on / off; best dev loss",
            "a": on,
            "b": off,
            "ratio": share,
            "result": f"reaches it in {share:.2f}x the time; whole search {off / on:.2f}x faster, {count} pruned; "
            f"best dev loss {best['on']:.4f} vs {best['off']:.4f}",
            "raw": {"on": times["on"], "off": times["off"], "best": best, "reached_share": reached},
        }
    ]


def threads_row(folder: Path, repeats: int) -> list[dict]:
    """The README example cut to two trials at torch's default threads (one per core), at one, and timed."""
    import torch

    mlflow.set_tracking_uri(f"sqlite:///{folder / 'threads.db'}")
    default = torch.get_num_threads()
    arms = {
        name: _readme_example(2, threads=value) for name, value in (("default", default), ("1", 1), ("auto", "auto"))
    }
    extra: dict = {}
    times, results = _time_arms(arms, repeats, extra)
    wall = {arm: statistics.median(values) for arm, values in times.items()}
    cpu = {arm: statistics.median(extra[arm]["cpu"]) for arm in arms}
    scores = {arm: [round(o.final_score, 4) for o in result.outcomes] for arm, result in results.items()}
    text = "; ".join(f"{arm}: {wall[arm]:.0f}s wall, {cpu[arm]:.0f} CPU-s" for arm in arms)
    return [
        {
            "row": "threads per trial, README example (2 trials), alone on the machine",
            "measure": f"torch's default ({default} threads) / 1 / auto: wall time and CPU seconds; dev scores",
            "a": wall["auto"],
            "b": wall["default"],
            "ratio": wall["auto"] / wall["default"],
            "result": f"{text}; scores {scores['default']} / {scores['1']} / {scores['auto']}",
            "raw": {"wall": times, "cpu": extra, "scores": scores},
        }
    ]
