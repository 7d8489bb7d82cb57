"""What a search costs on this machine: each row's arms measured side by side in one run, interleaved.

    python benchmarks/bench_search.py [--only realistic,...] [--repeats 2] [--baseline OTHER_CHECKOUT]

Rows (see docs/performance.md): ``realistic`` (WNUT-17 whole, GloVe, BiLSTM-CRF, 8 trials x 5 epochs:
wall, training, the package's own time, peak RSS; with ``--baseline``, the same against another checkout of
the package), ``overhead`` (a 500-trial search of 1-epoch trials: the package's time per trial outside
training, early and late, hyperopt's own share, and how long ``--resume`` of it takes to start),
``memory`` (peak RSS after trial 10 and after trial 100 of one process), ``cache`` (a frozen transformer's
vectors kept between trials, on and off), ``spark`` (parallelism 2 against 1 on trials of about a minute),
``spark-asha`` (an ASHA search on Spark, a job per rung, against ``--baseline``), ``spark-cache`` (a plain search on
Spark over a frozen transformer, against ``--baseline``).
Each arm runs alone in a fresh process (``search_arm.py``). Writes ``benchmarks/results/latest.md`` and
``.json``; a partial run (``--only``) replaces its rows and keeps the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"


def environment() -> dict[str, str]:
    """Offline, no telemetry, a writable copy of the shared Flair cache (made once per benchmark run)."""
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    shared = ROOT.parent / "shared" / "flair-cache"
    if "FLAIR_CACHE_ROOT" not in env and shared.is_dir():
        cache = Path(tempfile.mkdtemp(prefix="bench-flair-cache-"))
        shutil.copytree(shared, cache, dirs_exist_ok=True)
        env["FLAIR_CACHE_ROOT"] = str(cache)
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    return env


def run_arm(experiment: Path, root: Path, env: dict[str, str], *extra: str) -> dict:
    """One search alone in a fresh process, into a new store, with the package of ``root`` (Spark's workers too);
    its JSON line (see search_arm.py)."""
    with tempfile.TemporaryDirectory(prefix="bench-store-") as folder:
        own = root / ".venv" / "bin" / "python"  # a checkout's own environment: Spark's workers run its Python
        python = str(own) if root != ROOT and own.exists() else sys.executable
        command = [python, str(HERE / "search_arm.py"), str(experiment), folder, "--root", str(root), *extra]
        env = {**env, "BENCH_STARTED": repr(time.time()), "PYTHONPATH": str(root)}
        # run from the store's folder: Python puts the working directory first on a Spark worker's path
        done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=folder)
        if done.returncode != 0:
            raise RuntimeError(f"arm failed ({done.returncode}): {done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _this_and_baseline(file: str, this: Path, baseline: Path | None) -> dict[str, tuple[Path, Path]]:
    """One experiment of ``experiments/`` as arms: this checkout, and ``baseline`` where given."""
    experiment = HERE / "experiments" / file
    return {"this": (experiment, this), **({"baseline": (experiment, baseline)} if baseline else {})}


def interleaved(label: str, arms: dict[str, tuple[Path, Path]], env: dict[str, str], repeats: int) -> dict:
    """Each arm (its experiment file, the checkout it runs) ``repeats`` times, in turn: A B, then B A; the
    measurements of each arm by name."""
    measured: dict[str, list[dict]] = {name: [] for name in arms}
    for repeat in range(repeats):
        for name in list(arms) if repeat % 2 == 0 else list(reversed(arms)):
            measured[name].append(run_arm(*arms[name], env))
            print(f"  {label} {name} #{repeat + 1}: {measured[name][-1]}", file=sys.stderr)
    return measured


def realistic(env: dict[str, str], repeats: int, this: Path, baseline: Path | None) -> list[dict]:
    """The search a user runs, at a user's scale, this checkout against ``baseline`` (arms interleaved)."""
    measured = interleaved("realistic", _this_and_baseline("realistic.yaml", this, baseline), env, repeats)
    row = {
        name: {k: _median([m[k] for m in runs]) for k in ("wall", "training", "outside", "peak_rss_mb", "best")}
        for name, runs in measured.items()
    }
    this = row["this"]
    result = (
        f"wall {this['wall']:.0f}s, training {this['training']:.0f}s, outside training {this['outside']:.1f}s "
        f"({this['outside'] / this['wall']:.1%}), peak RSS {this['peak_rss_mb']:.0f} MB, best dev F1 {this['best']:.3f}"
    )
    if baseline:
        base = row["baseline"]
        result += (
            f"; baseline {base['wall']:.0f}s / {base['training']:.0f}s / {base['outside']:.1f}s / "
            f"{base['peak_rss_mb']:.0f} MB: wall {this['wall'] / base['wall']:.3f}x, outside training "
            f"{this['outside'] / base['outside']:.2f}x, peak RSS {this['peak_rss_mb'] / base['peak_rss_mb']:.2f}x"
        )
    measure = (
        f"WNUT-17 whole, GloVe 50d, BiLSTM-CRF, 8 trials x 5 epochs, seed 42; median of {repeats}, arms interleaved"
    )
    return [{"row": "realistic search", "measure": measure, "result": result, "raw": measured}]


def spark(env: dict[str, str], repeats: int, this: Path, baseline: Path | None) -> list[dict]:
    """Trials of about a minute side by side on Spark (parallelism 2 on local[2]), this checkout against
    ``baseline`` (the worker daemon and the mapPartitions proxy were there), and one after another."""
    parallel = HERE / "experiments" / "spark.yaml"
    with tempfile.TemporaryDirectory() as folder:
        sequential = Path(folder) / "sequential.yaml"
        sequential.write_text(parallel.read_text().replace("parallelism: 2", "parallelism: 1"))
        arms = {"parallel": (parallel, this), "sequential": (sequential, this)}
        if baseline:
            arms["parallel, baseline"] = (parallel, baseline)
        measured = interleaved("spark", arms, env, repeats)
    wall = {name: _median([m["wall"] for m in runs]) for name, runs in measured.items()}
    per_trial = _median([m["training"] for m in measured["sequential"]]) / 4
    result = f"parallel {wall['parallel']:.0f}s vs sequential {wall['sequential']:.0f}s: {wall['sequential'] / wall['parallel']:.2f}x the throughput"
    if baseline:
        result += f"; with the baseline's worker daemon and proxy {wall['parallel, baseline']:.0f}s: {wall['parallel, baseline'] / wall['parallel']:.2f}x this one's wall"
    measure = f"4 trials of about {per_trial:.0f}s each (WNUT-17 whole, 12 epochs), parallelism 2 on local[2]; median of {repeats}, interleaved"
    return [{"row": "spark parallelism 2 vs 1", "measure": measure, "result": result, "raw": measured}]


def overhead(env: dict[str, str], repeats: int) -> list[dict]:
    """A 500-trial search of 1-epoch trials: the package's time per trial outside training (from the end of one
    trial's training to the start of the next), early and late, the share of it inside hyperopt's suggest,
    and how long ``--resume`` of the finished search takes to reach its first new trial."""
    experiment = HERE / "experiments" / "overhead.yaml"
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as folder:
        command = [sys.executable, str(HERE / "search_arm.py"), str(experiment), folder, "--calls", "--time-suggest"]
        first = _run(command, env)
        gaps = [later[0] - earlier[1] for earlier, later in zip(first["calls"], first["calls"][1:])]
        suggest = first["suggest_seconds"]
        more = Path(folder) / "more.yaml"
        more.write_text(experiment.read_text().replace("max_evals: 500", "max_evals: 510"))
        resumed = _run(
            [sys.executable, str(HERE / "search_arm.py"), str(more), folder, "--resume", first["parent_run_id"]], env
        )
        shown = ""
        if Path("/usr/bin/chromium").exists():  # the 500 trials in MLflow's UI, for docs/performance.md
            from ui_screenshot import screenshot_trials

            store, picture = (
                f"sqlite:///{Path(folder) / 'mlflow.db'}",
                ROOT / "docs" / "images" / "search-500-trials.png",
            )
            try:
                seconds = screenshot_trials(store, first["parent_run_id"], picture)
                shown = f"; the UI listed them {seconds:.1f}s after the parent was expanded"
            except Exception as error:  # the figures stand without the picture
                print(f"  no screenshot: {error}", file=sys.stderr)
    early, late = statistics.mean(gaps[:49]), statistics.mean(gaps[-50:])
    early_suggest, late_suggest = statistics.mean(suggest[1:50]), statistics.mean(suggest[-50:])
    result = (
        f"outside training per trial: trials 1-50 {early * 1000:.0f} ms, 451-500 {late * 1000:.0f} ms ({late / early:.2f}x); "
        f"of which hyperopt's suggest {early_suggest * 1000:.0f} ms and {late_suggest * 1000:.0f} ms; "
        f"--resume of the 500 trials reached its first new trial {resumed['first_training']:.1f}s after starting{shown}"
    )
    measure = "500 trials x 1 epoch on 1% of WNUT-17 (34 sentences), tpe, local sqlite store, one process"
    return [
        {
            "row": "overhead of a 500-trial search",
            "measure": measure,
            "result": result,
            "raw": {"gaps": gaps, "suggest": suggest},
        }
    ]


def memory(env: dict[str, str], repeats: int) -> list[dict]:
    """A 100-trial search in one process: its resident set after trial 10 and after trial 100."""
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as folder:
        done = _run(
            [sys.executable, str(HERE / "search_arm.py"), str(HERE / "experiments" / "memory.yaml"), folder, "--calls"],
            env,
        )
    rss = [call[2] for call in done["calls"]]
    result = f"RSS after trial 10 {rss[9]:.0f} MB, after trial 100 {rss[-1]:.0f} MB ({rss[-1] / rss[9]:.3f}x); peak {done['peak_rss_mb']:.0f} MB"
    measure = "100 trials x 1 epoch on 10% of WNUT-17, GloVe, hidden size 64-256, one process"
    return [{"row": "memory over a 100-trial search", "measure": measure, "result": result, "raw": {"rss": rss}}]


def cache(env: dict[str, str], repeats: int) -> list[dict]:
    """A frozen transformer's vectors kept between trials, against computed anew in every epoch of every trial."""
    on = HERE / "experiments" / "cache.yaml"
    with tempfile.TemporaryDirectory() as folder:
        off = Path(folder) / "off.yaml"
        off.write_text(on.read_text() + "embedding_cache_mb: 0\n")
        measured = interleaved("cache", {"on": (on, ROOT), "off": (off, ROOT)}, env, repeats)
    wall = {name: _median([m["training"] for m in runs]) for name, runs in measured.items()}
    same = {round(m["best"], 6) for runs in measured.values() for m in runs}
    result = f"training {wall['on']:.1f}s with the cache vs {wall['off']:.1f}s without: {wall['off'] / wall['on']:.2f}x"
    result += "; best dev score identical" if len(same) == 1 else f"; best dev scores differ: {sorted(same)}"
    measure = f"TREC_6 20%, frozen MiniLM, 4 trials x 3 epochs, time inside Flair's training; median of {repeats}"
    return [{"row": "embedding cache", "measure": measure, "result": result, "raw": measured}]


def _run(command: list[str], env: dict[str, str]) -> dict:
    done = subprocess.run(command, env={**env, "BENCH_STARTED": repr(time.time())}, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"failed ({done.returncode}): {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _against_baseline(row: str, file: str, measure: str, env: dict[str, str], repeats: int, this: Path,
                      baseline: Path | None) -> list[dict]:  # fmt: skip
    """One experiment's wall and best score, this checkout against ``baseline`` (arms interleaved): a row."""
    measured = interleaved(row, _this_and_baseline(file, this, baseline), env, repeats)
    wall = {name: _median([m["wall"] for m in runs]) for name, runs in measured.items()}
    best = {name: _median([m["best"] for m in runs]) for name, runs in measured.items()}
    result = f"this {wall['this']:.0f}s (best {best['this']:.4f})"
    if baseline:
        result += f" vs baseline {wall['baseline']:.0f}s (best {best['baseline']:.4f}): {wall['baseline'] / wall['this']:.2f}x the throughput"
    measure += f", parallelism 2 on local[2]; median of {repeats}, interleaved"
    return [{"row": row, "measure": measure, "result": result, "raw": measured}]


def spark_asha(env: dict[str, str], repeats: int, this: Path, baseline: Path | None) -> list[dict]:
    """A multi-fidelity search on Spark, where every rung is a Spark job: what a job costs beyond its epochs (a new
    Python worker imports Flair and loads the corpus) is paid per rung. This checkout against ``baseline``."""
    measure = "ASHA, 9 trials at rungs 1/3/9 (13 Spark jobs), WNUT-17 whole"
    return _against_baseline("spark asha", "spark-asha.yaml", measure, env, repeats, this, baseline)


def spark_cache(env: dict[str, str], repeats: int, this: Path, baseline: Path | None) -> list[dict]:
    """A plain search on Spark over a frozen transformer: a Python worker that runs trial after trial keeps the
    corpus and the transformer's vectors (the embedding cache); a new worker per trial computes them again."""
    measure = "12 trials x 3 epochs, TREC-6 whole, frozen MiniLM, rand"
    return _against_baseline("spark cache", "spark-cache.yaml", measure, env, repeats, this, baseline)


ROWS = {
    "realistic": realistic,
    "spark": spark,
    "spark-asha": spark_asha,
    "spark-cache": spark_cache,
    "overhead": overhead,
    "memory": memory,
    "cache": cache,
}
CURRENT = {
    "realistic search",
    "spark parallelism 2 vs 1",
    "spark asha",
    "spark cache",
    "overhead of a 500-trial search",
    "memory over a 100-trial search",
    "embedding cache",
}


def write(rows: list[dict], started: float) -> str:
    """The table, merged with the rows of earlier runs that this one did not measure."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "latest.json"
    earlier = json.loads(path.read_text()) if path.is_file() else {"rows": []}
    names = {row["row"] for row in rows}
    kept = [row for row in earlier.get("rows", []) if row["row"] not in names and row["row"] in CURRENT]
    merged = kept + rows  # rows of retired benchmarks are dropped
    header = (
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; this run {time.time() - started:.0f}s, rows {', '.join(sorted(names))}."
    )
    table = ["| row | measure | result |", "| --- | --- | --- |"]
    table += [f"| {row['row']} | {row['measure']} | {row['result']} |" for row in merged]
    text = header + "\n\n" + "\n".join(table) + "\n"
    path.write_text(json.dumps({"header": header, "rows": merged}, indent=2))
    (RESULTS / "latest.md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(ROWS), help=f"rows to measure: {', '.join(ROWS)}")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--this", type=Path, default=ROOT, help="the checkout whose package is timed")
    parser.add_argument("--baseline", type=Path, help="another checkout of the package to time beside it")
    options = parser.parse_args()
    env, started, rows = environment(), time.time(), []
    for name in options.only.split(","):
        function = ROWS[name.strip()]
        takes_arms = name.strip() in ("realistic", "spark", "spark-asha", "spark-cache")
        rows += (
            function(env, options.repeats, options.this, options.baseline)
            if takes_arms
            else function(env, options.repeats)
        )
    print(write(rows, started))


if __name__ == "__main__":
    main()
