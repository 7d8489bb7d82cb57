"""The services of a distributed deployment, started for real on 127.0.0.1 and always stopped.

PostgreSQL (Debian's server binaries, a throwaway cluster), ``mlflow server`` on it with the
artefact proxy, a Spark standalone master with workers started from pyspark's own
``spark-class``, ``mlflow ui`` and headless Chromium. Each is a context manager whose ``finally``
stops what it started, however the test ends. tests/test_deployment.py uses them; README.md's
deployment walk-through runs the same commands by hand.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from .servers import SERVER_ENV, free_port, server_command, wait_for_http
from .test_resilience import _stop_server as stop_process_group

DB_PASSWORD = "flair-mlflow-tests-only"


def unavailable(problem: str) -> None:
    """A system package this module needs is missing: a failure in CI (.ci/run installs it), a skip
    with the install command on a developer's machine that has not installed it."""
    if os.environ.get("CI"):
        pytest.fail(problem)
    pytest.skip(problem)


def _run(command: list, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=timeout, **kwargs)
    if result.returncode != 0:
        pytest.fail(
            f"{Path(str(command[0])).name} failed ({result.returncode}): {result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    return result


def _start(command: list, log: Path, env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen:
    """A background process in its own process group (so that its children stop with it)."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [str(c) for c in command], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )


def flair_mlflow_command(args: list, cwd: Path, env: dict[str, str] | None = None, hide: Path | None = None):
    """``flair-mlflow ARGS`` in the background, its output in a file; with ``hide``, blind to that folder."""
    command = [sys.executable, "-m", "flair_mlflow.cli", *map(str, args)]
    log = cwd / f"{args[0]}-{time.monotonic_ns()}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            hidden_from(hide, command) if hide else command,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    return process, log


def hidden_from(folder: Path, command: list) -> list[str]:
    """``command`` in a mount namespace of its own where ``folder`` is an empty, read-only tmpfs.

    A process started so (and every process it starts) cannot read or write the real folder by
    its path: what it stores there must go through the tracking server.
    """
    mount = 'mount -t tmpfs -o ro,size=16k,mode=0555 flair-mlflow-hidden "$0" && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", mount, str(folder), *map(str, command)]


@contextmanager
def postgres(timeout: float = 120):
    """A PostgreSQL cluster in a temporary folder on 127.0.0.1; yields its database URI for MLflow."""
    pg_ctl = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if not pg_ctl:
        unavailable("PostgreSQL's server binaries are missing: apt-get install postgresql (.ci/run does)")
    bin_dir = Path(pg_ctl[-1]).parent
    user = "postgres" if os.geteuid() == 0 else None  # initdb and postgres refuse to run as root
    folder = Path(tempfile.mkdtemp(prefix="flair-mlflow-pg-"))  # not under pytest's tmp_path: only root may enter that
    data, port = folder / "data", free_port()
    (folder / "password").write_text(DB_PASSWORD)
    if user:
        for path in (folder, folder / "password"):
            shutil.chown(path, user, user)
    as_owner = {"user": user, "group": user, "extra_groups": [] if user else None, "cwd": folder}
    try:
        _run(
            [
                bin_dir / "initdb",
                "-D",
                data,
                "-U",
                "mlflow",
                "--auth=scram-sha-256",
                f"--pwfile={folder / 'password'}",
                "-E",
                "UTF8",
                "--no-locale",
            ],
            timeout,
            **as_owner,
        )
        options = f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off -c full_page_writes=off"
        _run(
            [
                bin_dir / "pg_ctl",
                "-D",
                data,
                "-l",
                folder / "server.log",
                "-o",
                options,
                "-w",
                "-t",
                int(timeout),
                "start",
            ],
            timeout + 10,
            **as_owner,
        )
        _run(
            [bin_dir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "mlflow", "mlflow"],
            timeout,
            env={**os.environ, "PGPASSWORD": DB_PASSWORD},
        )
        yield f"postgresql+psycopg://mlflow:{DB_PASSWORD}@127.0.0.1:{port}/mlflow"
    finally:
        if (data / "postmaster.pid").exists():
            stopped = subprocess.run(
                [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop"],
                capture_output=True,
                timeout=60,
                **as_owner,
            )
            if stopped.returncode != 0 and (data / "postmaster.pid").exists():
                os.kill(int((data / "postmaster.pid").read_text().split()[0]), 9)
        shutil.rmtree(folder, ignore_errors=True)


@dataclasses.dataclass
class TrackingServer:
    url: str
    artifacts: Path  # the server's --artifacts-destination
    log: Path


@contextmanager
def tracking_server(backend_store_uri: str, folder: Path):
    """``mlflow server`` on the database with the artefact proxy (``mlflow-artifacts:/`` URIs)."""
    artifacts, port = folder / "artifacts", free_port()
    artifacts.mkdir(parents=True)
    command = server_command(port, backend_store_uri, artifacts, "--serve-artifacts")
    server = TrackingServer(f"http://127.0.0.1:{port}", artifacts, folder / "server.log")
    process = _start(command, server.log, {**os.environ, **SERVER_ENV}, cwd=folder)
    try:
        if not wait_for_http(f"{server.url}/health", process, 240):  # it creates the schema on first start
            pytest.fail(f"mlflow server did not start: {server.log.read_text()[-3000:]}")
        yield server
    finally:
        stop_process_group(process)


@dataclasses.dataclass
class SparkCluster:
    master: str  # spark://127.0.0.1:<port>
    worker_pids: list[int]
    driver_env: dict[str, str]  # for a process that runs a search on the cluster


@contextmanager
def spark_cluster(folder: Path, workers: int = 2, wrap=lambda command: command, timeout: float = 180):
    """A standalone master and ``workers`` one-core workers, each JVM started by ``$SPARK_HOME/bin/spark-class``.

    ``wrap`` rewrites each worker's command line (say, ``hidden_from``): executors and their
    Python workers are the Worker JVM's children and run as it does.
    """
    import pyspark

    home = Path(pyspark.__file__).parent
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOCAL_DIRS": str(folder / "local"),
    }
    spark_class = home / "bin" / "spark-class"
    port, ui_port = free_port(), free_port()
    master = f"spark://127.0.0.1:{port}"
    conf = folder / "conf"  # the driver's spark-defaults.conf: a lost trial fails at once instead of training again
    conf.mkdir(parents=True)
    (conf / "spark-defaults.conf").write_text(
        "spark.task.maxFailures 1\nspark.driver.host 127.0.0.1\n"
        "spark.driver.bindAddress 127.0.0.1\nspark.executor.memory 1g\n"
    )
    driver_env = {
        "SPARK_CONF_DIR": str(conf),
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOCAL_DIRS": str(folder / "local"),
    }
    master_env = {**env, "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false"}  # its REST port is a fixed 6066
    processes = [
        _start(
            [
                spark_class,
                "org.apache.spark.deploy.master.Master",
                "--host",
                "127.0.0.1",
                "--port",
                port,
                "--webui-port",
                ui_port,
            ],
            folder / "master.log",
            master_env,
        )
    ]
    try:
        for number in range(1, workers + 1):
            command = [
                spark_class,
                "org.apache.spark.deploy.worker.Worker",
                "--host",
                "127.0.0.1",
                "--port",
                free_port(),
                "--webui-port",
                free_port(),
                "--cores",
                "1",
                "--memory",
                "2g",
                "--work-dir",
                folder / f"worker-{number}",
                master,
            ]
            processes.append(_start(wrap(command), folder / f"worker-{number}.log", env))
        deadline = time.monotonic() + timeout
        while _alive_workers(ui_port) < workers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                logs = "".join(f"\n--- {log.name}\n{log.read_text()[-1500:]}" for log in sorted(folder.glob("*.log")))
                pytest.fail(f"the Spark cluster did not come up with {workers} workers:{logs}")
            time.sleep(1)
        yield SparkCluster(master, [p.pid for p in processes[1:]], driver_env)
    finally:
        for process in reversed(processes):  # workers first: each takes its executors and Python workers along
            stop_process_group(process)


def _alive_workers(ui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as response:
            return int(json.load(response).get("aliveworkers", 0))
    except (OSError, ValueError):
        return 0


def python_workers_under(pids: list[int]) -> list[int]:
    """PySpark's forked Python workers (children of a ``pyspark.daemon``) among the descendants of ``pids``."""
    parent_of, daemons = {}, set()
    for entry in Path("/proc").iterdir():
        try:
            parent_of[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if b"pyspark.daemon" in (entry / "cmdline").read_bytes():
                daemons.add(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue

    def descends(pid: int) -> bool:
        while pid > 1:
            if pid in pids:
                return True
            pid = parent_of.get(pid, 0)
        return False

    return [pid for pid, parent in parent_of.items() if parent in daemons and descends(pid)]


@contextmanager
def mlflow_ui(backend_store_uri: str, folder: Path):
    """``mlflow ui`` on a store; yields its URL."""
    port, log = free_port(), folder / "ui.log"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        backend_store_uri,
        "--host",
        "127.0.0.1",
        "--port",
        port,
        "--workers",
        "1",
    ]
    process = _start(command, log, {**os.environ, **SERVER_ENV}, cwd=folder)
    try:
        if not wait_for_http(f"http://127.0.0.1:{port}/health", process, 120):
            pytest.fail(f"mlflow ui did not start: {log.read_text()[-3000:]}")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process_group(process)


CHROMIUM = "/usr/bin/chromium"  # Debian's; playwright drives it (no browser download)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium(profile: Path, width: int, height: int, timeout_ms: int = 90_000):
    """A page in headless Chromium with a fresh profile (``--user-data-dir``); the browser is closed after."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        unavailable("Chromium is missing: apt-get install chromium (.ci/run does)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": width, "height": height},
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(timeout_ms)
            yield page
        finally:
            browser.close()


def close_assistant(page) -> None:
    """MLflow 3 opens an assistant panel beside every page; it hides half of what is shown."""
    close = page.get_by_role("button", name="Close", exact=True)
    if close.count() and close.first.is_visible():
        close.first.click()


def select_options(page, label: str) -> list[str]:
    """Opens the selector after the text ``label`` and returns what it offers."""
    page.locator(f"div:text-is('{label}') + div.du-bois-light-select").click()
    options = page.locator(".du-bois-light-select-dropdown:visible .du-bois-light-select-item-option")
    options.first.wait_for()
    return [option.get_attribute("title") for option in options.all()]
