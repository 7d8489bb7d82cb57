"""A screenshot of a search in MLflow's UI, its trials expanded under the parent (docs/images/search-500-trials.png).

    python benchmarks/ui_screenshot.py STORE_URI PARENT_RUN_ID OUT.png

Uses the test suite's helpers (``mlflow ui`` on the store, Debian's Chromium through playwright).
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.deployment import chromium, close_assistant, mlflow_ui  # noqa: E402


def screenshot_trials(store_uri: str, parent_run_id: str, out: Path) -> float:
    """Open the search's experiment, expand the parent, wait for its trials; the seconds the list took."""
    import mlflow

    parent = mlflow.MlflowClient(store_uri).get_run(parent_run_id)
    with tempfile.TemporaryDirectory() as folder:
        with mlflow_ui(store_uri, Path(folder)) as ui, chromium(Path(folder) / "profile", 1440, 900) as page:
            page.goto(f"{ui}/#/experiments/{parent.info.experiment_id}/runs?workflowType=machine_learning")
            link = page.get_by_role("link", name=parent.info.run_name, exact=True)
            link.wait_for()
            close_assistant(page)
            started = time.perf_counter()
            page.locator("[role=row]", has=link).locator("button").first.click()  # the parent's +
            page.get_by_role("link", name=re.compile(r"^trial-\d+$")).first.wait_for()  # newest first
            seconds = time.perf_counter() - started
            page.screenshot(path=str(out))
    return seconds


if __name__ == "__main__":
    took = screenshot_trials(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
    print(f"trials listed {took:.1f}s after expanding the parent; wrote {sys.argv[3]}")
