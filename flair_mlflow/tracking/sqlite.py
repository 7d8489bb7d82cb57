"""Local sqlite stores created whole: MLflow's migrations are not one transaction, so a new store is built in a
temporary file and moved into place, under a lock file (``mlflow.db.lock``) other commands wait on."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import mlflow
from filelock import FileLock, Timeout

from ..errors import ConfigError

#: how long a command waits for another one creating the same store
LOCK_TIMEOUT_S = 300
CREATING_MARK = ".creating-"


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a local sqlite URI (``sqlite:///mlflow.db``); None for any other store."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = tracking_uri[len("sqlite:///") :].split("?", 1)[0]
    return Path(database) if database and database != ":memory:" else None


def check_creatable(path: Path) -> None:
    """Refuse, before anything is written, a store file that could never be created."""
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        problem = f"cannot create the sqlite store '{path}': '{parent}' is not a writable folder"
        raise ConfigError("tracking_uri", problem)


def create_sqlite_store(tracking_uri: str) -> None:
    """Build the sqlite store at ``tracking_uri`` if it is one and does not exist yet, whole or not at all."""
    path = sqlite_path(tracking_uri)
    if path is None or (path.is_file() and path.stat().st_size > 0):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(f"{path}.lock", timeout=LOCK_TIMEOUT_S):
            for leftover in path.parent.glob(f".{path.name}{CREATING_MARK}*"):  # of commands killed meanwhile
                leftover.unlink(missing_ok=True)
            if path.is_file() and path.stat().st_size > 0:
                return  # another command built it while this one waited
            temporary = path.with_name(f".{path.name}{CREATING_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
            try:
                mlflow.MlflowClient(f"sqlite:///{temporary}").search_experiments(max_results=1)
                os.replace(temporary, path)
            finally:
                temporary.unlink(missing_ok=True)
    except Timeout:
        raise ConfigError("tracking_uri", f"another command has held '{path}.lock' for {LOCK_TIMEOUT_S} s") from None
