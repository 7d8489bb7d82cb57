"""The ``mlflow server`` the tests (and the benchmarks) start, and the means of starting one: a free
loopback port and a wait for its health endpoint. No side effects at import, so ``benchmarks/`` can
use it without the tests' environment (``conftest.py``).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, timeout: float) -> bool:
    """True once ``url`` answers 200; False if the process exits or ``timeout`` seconds pass."""
    deadline = time.time() + timeout
    while process.poll() is None and time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


# a tracking server is all the tests need: MLflow 3's job runner would start eight more processes
# and spend about 25 CPU seconds starting them, on the cores the tests train on
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def server_command(port: int | str, backend_store_uri: str, artifacts: Path, *options: str) -> list[str]:
    """The ``mlflow server`` every test starts: loopback only, one worker, artefacts in ``artifacts``."""
    return [
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
        backend_store_uri,
        "--artifacts-destination",
        str(artifacts),
        *options,
    ]
