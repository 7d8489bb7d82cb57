"""What a search costs on this machine, each row measured side by side in one run and repeated.

    FLAIR_CACHE_ROOT=<writable copy of Flair's cache> python benchmarks/bench_search.py [--repeats 2]

Rows: (1) tracking overhead: the same trials with MLflow tracking (local sqlite, and an
``mlflow server`` on 127.0.0.1) against none; (2) a frozen-transformer search with the
embedding cache on against off; (3) pruning (median stopping rule) on against off, and how soon
the pruned search reaches the unpruned one's best; (4) torch threads per trial: the README example
at torch's default, at one thread and at ``threads: auto``, wall and CPU time; (5) two ``tune``
processes started together against one alone; (6) Spark parallelism 2 against 1 where the project
supports it, on the README example's trials and on short ones, and the trial length where Spark
starts to pay; (7) the start-up cost and peak memory of a one-trial search against Flair 0.12.2's own
tuner (with ``FLAIR_012_PYTHON`` set to a Python that has it: ``flair012_env.sh`` makes one) and a
plain Flair training of the same configuration (each arm alone in a fresh process:
``startup_arm.py``). Prints
one Markdown table and writes it, with the raw numbers, to ``benchmarks/results/latest.md`` and
``latest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from bench_common import HERE  # first: it sets the environment up before MLflow and Flair load
from rows_processes import spark_parallelism, startup_cost, two_searches_at_once
from rows_search import cache_on_off, pruning_on_off, threads_row, tracking_overhead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    functions = {
        "tracking": tracking_overhead,
        "cache": cache_on_off,
        "pruning": pruning_on_off,
        "threads": threads_row,
        "together": two_searches_at_once,
        "spark": spark_parallelism,
        "startup": startup_cost,
    }
    parser.add_argument("--only", choices=list(functions), action="append")
    args = parser.parse_args()
    chosen = args.only or list(functions)
    rows: list[dict] = []
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="flair-mlflow-bench-") as folder:
        os.chdir(folder)  # a sqlite store puts its artefacts under ./mlruns
        for name in chosen:
            rows.extend({**row, "bench": name} for row in functions[name](Path(folder), args.repeats))
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
        rows = _merged(json.loads((out / "latest.json").read_text())["rows"], rows)
        lines[0] += f" Rows measured in this run: {', '.join(chosen)}; the others are from earlier runs."
        lines[4:] = [f"| {r['row']} | {r['measure']} | {r['result']} |" for r in rows]
        table = "\n".join(lines)
    (out / "latest.md").write_text(table + "\n", encoding="utf-8")
    (out / "latest.json").write_text(json.dumps({"machine": machine, "repeats": args.repeats, "rows": rows}, indent=2))


def _merged(previous: list[dict], fresh: list[dict]) -> list[dict]:
    """The last table's rows with those of the benchmarks run now replaced in place (a renamed row too),
    rows of new benchmarks last."""
    by_bench: dict[str, list[dict]] = {}
    for row in fresh:
        by_bench.setdefault(row["bench"], []).append(row)
    names = {row["row"]: row["bench"] for row in fresh}
    merged = []
    for row in previous:
        bench = row.get("bench") or names.get(row["row"])
        if bench in by_bench:
            merged.extend(by_bench.pop(bench))
        elif bench not in names.values():
            merged.append(row)
    return merged + [row for rows in by_bench.values() for row in rows]


if __name__ == "__main__":
    main()
