"""The README search and the realistic search on a GPU, beside the same on CPU: trials per hour and GPU use.

    FLAIR_CACHE_ROOT=<writable copy of Flair's cache> python benchmarks/gpu_search.py [--skip-cpu] [--amp]

Each arm is one ``search_arm.py`` process (its own store, its own peak RSS); while a GPU arm runs, ``nvidia-smi``
is sampled every second for utilisation and memory. Prints a markdown table; exits non-zero without CUDA.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SEARCHES = {
    "README search": ROOT / "examples" / "wnut17.yaml",
    "realistic search": HERE / "experiments" / "realistic.yaml",
}


def _gpu_samples(stop: threading.Event, samples: list[tuple[float, float]]) -> None:
    query = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits", "-i", "0"]
    while not stop.wait(1.0):
        try:
            utilisation, memory = subprocess.run(query, capture_output=True, text=True, timeout=5).stdout.split(",")
            samples.append((float(utilisation), float(memory)))
        except (ValueError, OSError, subprocess.SubprocessError):
            pass


def _arm(experiment: Path, device: str, amp: bool) -> dict:
    """One search with ``device`` (and Flair's AMP on CUDA with ``amp``), in a fresh process."""
    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as folder:
        text = experiment.read_text() + f"\ndevice: {device}\n"
        if amp and device != "cpu":
            text = text.replace("fixed:\n", "fixed:\n  use_amp: true\n", 1)
        config = Path(folder) / "experiment.yaml"
        config.write_text(text)
        stop, samples = threading.Event(), []
        sampler = threading.Thread(target=_gpu_samples, args=(stop, samples), daemon=True)
        if device != "cpu":
            sampler.start()
        env = {**os.environ, "BENCH_STARTED": repr(time.time()), "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, str(HERE / "search_arm.py"), str(config), folder], env=env,
                              capture_output=True, text=True, cwd=folder)  # fmt: skip
        stop.set()
        if done.returncode != 0:
            raise RuntimeError(f"{experiment.name} on {device} failed: {done.stderr[-3000:]}")
        line = json.loads(done.stdout.strip().splitlines()[-1])
        line["gpu_util"] = statistics.mean(u for u, _ in samples) if samples else None
        line["gpu_mem_mb"] = max((m for _, m in samples), default=None)
        return line


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-cpu", action="store_true", help="GPU arms only (the CPU figures are in results/)")
    parser.add_argument("--amp", action="store_true", help="GPU trials with Flair's use_amp")
    options = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("no CUDA device: this benchmark needs a GPU")
    rows = ["| search | device | trials | wall s | trials per hour | GPU util % | GPU memory MB | peak RSS MB | best |",
            "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, experiment in SEARCHES.items():
        for device in ("cuda", *(() if options.skip_cpu else ("cpu",))):
            arm = _arm(experiment, device, options.amp)
            per_hour = 3600 * arm["trials"] / arm["wall"]
            util = "-" if arm["gpu_util"] is None else f"{arm['gpu_util']:.0f}"
            memory = "-" if arm["gpu_mem_mb"] is None else f"{arm['gpu_mem_mb']:.0f}"
            rows.append(f"| {name} | {device} | {arm['trials']} | {arm['wall']:.0f} | {per_hour:.0f} | {util} | "
                        f"{memory} | {arm['peak_rss_mb']:.0f} | {arm['best']:.4f} |")  # fmt: skip
            print(rows[-1], file=sys.stderr, flush=True)
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; AMP {'on' if options.amp else 'off'}")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
