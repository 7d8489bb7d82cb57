"""PySpark's Python worker daemon, with Flair, torch and MLflow imported once, before it forks a worker per task.

A local Spark search names this module as ``spark.python.daemon.module``. Every Python worker is a
fork of the daemon; the stock daemon has imported nothing, so each new worker spent seconds of a
core importing Flair before its first trial (Spark also retires a worker idle for a minute, so
this recurs between searches). Forked from here, a worker starts with the imports done. Nothing
here runs torch code, so no thread pool exists yet to be lost in the fork.
"""

from __future__ import annotations

import contextlib
import sys

from ..core.collector import start_up

# the daemon's stdout is how it tells Spark its port; the imports are frozen before the first fork,
# so no worker's collector walks them (or copies their pages by touching them)
with contextlib.redirect_stdout(sys.stderr), start_up():
    import flair.datasets  # noqa: F401
    import flair.models  # noqa: F401
    import flair.trainers  # noqa: F401
    import mlflow  # noqa: F401

    from . import distributed  # noqa: F401  (the trial runner, the adapters and the tracking store)

if __name__ == "__main__":
    from pyspark import daemon

    daemon.manager()
