"""Rows timed across processes: two searches at once, Spark parallelism, and the start-up of a fresh process."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import mlflow
from bench_common import HERE, WNUT, _readme_example, _time_arms


def _cli_searches(folder: Path, count: int) -> list[float]:
    """Wall times of ``count`` ``flair-mlflow tune`` processes of the README example cut to two trials, started together."""
    command = [sys.executable, "-m", "flair_mlflow.cli", "tune", str(HERE.parent / "examples" / "wnut17.yaml")]
    command += ["--max-evals", "2", "--tracking-uri", f"sqlite:///{folder / 'together.db'}"]
    started = time.perf_counter()
    processes = [
        subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(count)
    ]
    walls = []
    for process in processes:
        _, error = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"a search failed: {error.decode()[-2000:]}")
        walls.append(time.perf_counter() - started)
    return walls


def two_searches_at_once(folder: Path, repeats: int) -> list[dict]:
    """One ``tune`` process alone against two started side by side (threads: auto), arms interleaved."""
    _cli_searches(folder, 1)  # the store exists, the page cache is warm
    alone, together = [], []
    for _ in range(repeats):
        alone += _cli_searches(folder, 1)
        together.append(max(_cli_searches(folder, 2)))
    one, two = statistics.median(alone), statistics.median(together)
    return [
        {
            "row": "two searches at once, README example (2 trials each)",
            "measure": "two `flair-mlflow tune` processes started together on one store: the later to finish / one alone",
            "a": two,
            "b": one,
            "ratio": two / one,
            "result": f"{two / one:.2f}x the time of one alone ({two:.0f}s vs {one:.0f}s)",
            "raw": {"alone": alone, "together": together},
        }
    ]


def _crossover(short: tuple[float, float, float], long: tuple[float, float, float], trials: int) -> float:
    """The trial length below which Spark does not pay, from two trial lengths: ``(trial work, sequential
    wall, parallel wall)`` each; both walls taken as straight lines in the trials' work."""
    (w1, s1, p1), (w2, s2, p2) = short, long
    slope = (p2 - p1) / (w2 - w1)  # parallel wall per second of sequential trial work
    fixed_parallel, fixed_sequential = p1 - slope * w1, ((s1 - w1) + (s2 - w2)) / 2
    if slope >= 1:
        return float("inf")
    return max(0.0, (fixed_parallel - fixed_sequential) / (1 - slope)) / trials


def spark_parallelism(folder: Path, repeats: int) -> list[dict]:
    try:
        import pyspark  # noqa: F401
    except ImportError as error:
        return [
            {
                "row": "Spark parallelism 2 vs 1",
                "measure": "-",
                "a": None,
                "b": None,
                "ratio": None,
                "result": f"not measured: {error}",
                "raw": {},
            }
        ]
    from flair_mlflow.search.distributed import spark_session

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'spark.db'}")
    # a long-lived cluster does not pay these per search: the JVM, and the Python daemon workers fork from
    spark_session(2).sparkContext.parallelize([0, 1], 2).map(lambda x: x).collect()
    arms = {
        ("long", 1): _readme_example(4, parallelism=1),
        ("long", 2): _readme_example(4, parallelism=2),
        ("short", 1): {**WNUT, "max_evals": 4, "parallelism": 1},
        ("short", 2): {**WNUT, "max_evals": 4, "parallelism": 2},
    }
    times, results = _time_arms(arms, repeats)
    assert all(len(result.outcomes) == 4 and result.failed == 0 for result in results.values())
    wall = {arm: statistics.median(values) for arm, values in times.items()}
    work = {length: sum(o.duration_s for o in results[(length, 1)].outcomes) for length in ("short", "long")}
    points = {length: (work[length], wall[(length, 1)], wall[(length, 2)]) for length in work}
    crossover = _crossover(points["short"], points["long"], 4)
    ratio = {length: wall[(length, 1)] / wall[(length, 2)] for length in work}
    return [
        {
            "row": "Spark parallelism 2 vs 1 (local[2]), README example",
            "measure": "4 trials of about 20 s (examples/wnut17.yaml), throughput parallel / sequential; "
            "JVM and Python daemon started before timing",
            "a": wall[("long", 2)],
            "b": wall[("long", 1)],
            "ratio": ratio["long"],
            "result": f"{ratio['long']:.2f}x the throughput ({wall[('long', 2)]:.1f}s vs {wall[('long', 1)]:.1f}s)",
            "raw": {"times": {f"{k[0]}-{k[1]}": v for k, v in times.items()}, "work": work},
        },
        {
            "row": "Spark parallelism 2 vs 1 (local[2]), short trials; crossover",
            "measure": f"4 trials of about {work['short'] / 4:.0f} s (WNUT_17 10%, 3 epochs); the trial length where "
            "both lines of wall time against trial work cross",
            "a": wall[("short", 2)],
            "b": wall[("short", 1)],
            "ratio": ratio["short"],
            "result": f"{ratio['short']:.2f}x the throughput ({wall[('short', 2)]:.1f}s vs {wall[('short', 1)]:.1f}s); "
            f"Spark pays for trials longer than about {crossover:.0f} s (4 trials)",
            "raw": {"crossover_s": crossover, "points": points},
        },
    ]


#: a Python with flair==0.12.2 and gensim installed; with it the start-up row also times Flair 0.12's own tuner
FLAIR_012_PYTHON = os.environ.get("FLAIR_012_PYTHON")
SEARCHES = ("first store", "new store", "existing store")


def _startup_arm(arm: str, folder: Path) -> dict[str, float]:
    """One arm in a fresh process: its imports, store and peak memory are its own."""
    python = FLAIR_012_PYTHON if arm.startswith(("flair-0.12", "gensim")) else sys.executable
    command = [python, str(HERE / "startup_arm.py"), arm, str(folder)]
    env = {**os.environ, "BENCH_STARTED": repr(time.time())}
    done = subprocess.run(command, env=env, cwd=folder, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"startup arm {arm} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def startup_cost(folder: Path, repeats: int) -> list[dict]:
    """A one-trial search (into the first store of this MLflow version, a new store copied from the store
    template, an existing store) against Flair 0.12's own tuner (where ``FLAIR_012_PYTHON`` names a Python
    with it) and Flair 0.15 training the same configuration alone: time to the trial's training, wall
    time, peak memory."""
    arms = {"Flair 0.15 alone": "flair", "first store": "search", "new store": "search", "existing store": "search"}
    if FLAIR_012_PYTHON:
        arms = {"Flair 0.12.2 tuner": "flair-0.12", **arms}
        _startup_arm("gensim-glove", folder)  # its vectors file, written before anything is timed
    before = {"new store": "template", "existing store": "store"}  # what an earlier command left
    runs: dict[str, list[dict]] = {name: [] for name in arms}
    for repeat in range(repeats):
        for name, arm in arms.items():
            where = folder / f"startup-{repeat}-{name.replace(' ', '-')}"
            where.mkdir(parents=True)
            if name in before:
                _startup_arm(before[name], where)
            runs[name].append(_startup_arm(arm, where))
    median = {name: {k: statistics.median(r[k] for r in runs[name]) for k in runs[name][0]} for name in arms}
    baselines = [name for name in ("Flair 0.12.2 tuner", "Flair 0.15 alone") if name in arms]
    results = [_startup_result(median, base) for base in baselines]
    new, base = median["new store"], median[baselines[0]]
    return [
        {
            "row": f"start-up and peak memory, one-trial search vs {' and vs '.join(baselines)} (WNUT_17 10%)",
            "measure": "1 trial x 2 epochs, each arm a fresh process; search into the first store of this MLflow "
            "(migrated) / a new store (from the template) / an existing sqlite store vs Flair 0.12.2's "
            "SequenceTaggerParamSelector (where measured) and vs Flair 0.15 training alone: time to the trial's "
            "training, the training, wall time, peak RSS",
            "a": new["total"],
            "b": base["total"],
            "ratio": new["total"] / base["total"],
            "result": "; ".join(results),
            "raw": runs,
        }
    ]


def _startup_result(median: dict[str, dict[str, float]], base_name: str) -> str:
    """The three searches against one baseline, each measure as values and ratios."""
    base, searches = median[base_name], [median[name] for name in SEARCHES]

    def vs(key: str, unit: str, digits: int = 1) -> str:
        values = " / ".join(f"{arm[key]:.{digits}f}{unit}" for arm in searches)
        ratios = " / ".join(f"{arm[key] / base[key]:.2f}x" for arm in searches)
        return f"{values} vs {base[key]:.{digits}f}{unit} ({ratios})"

    return (
        f"vs {base_name}: start-up {vs('first_training', 's')}, training {vs('training', 's')}, "
        f"wall {vs('total', 's')}, peak RSS {vs('peak_rss_mb', ' MB', 0)}"
    )
