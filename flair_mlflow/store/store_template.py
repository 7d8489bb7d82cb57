"""One empty, fully migrated sqlite store per MLflow version, kept in the user's cache, that new local
stores are copied from: MLflow builds a new store in some seventy migrations (seconds, on every new
store); a copy takes milliseconds.

The template is a store MLflow built, less the one thing MLflow adds when it first opens a store: its
Default experiment, whose artifact location is the folder of whoever opened it. A store copied from it
is then opened by MLflow (:mod:`.sqlite_store`), which adds its own Default experiment as it would to
a store it had just built. The template is written in a temporary file and moved into place whole;
one that is not a whole, empty store of this MLflow version is never used, and is replaced.

The cache folder is ``$FLAIR_MLFLOW_CACHE_DIR``, else ``$XDG_CACHE_HOME/flair-mlflow``, else
``~/.cache/flair-mlflow``; without one that can be written, every new store is migrated as before.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from contextlib import closing, suppress
from pathlib import Path

#: the temporary files a store (or the template) is built in: ``.NAME.creating-<pid>-<random>`` beside it
CREATING_MARK = ".creating-"
CACHE_ENV = "FLAIR_MLFLOW_CACHE_DIR"
#: what a store holds once anyone has used it; the template holds none of it
USED_TABLES = ("experiments", "runs", "registered_models")


def cache_dir() -> Path:
    """Where this package keeps what it can rebuild (the store template)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "flair-mlflow"


def template_path() -> Path:
    from mlflow.version import VERSION

    return cache_dir() / f"mlflow-{VERSION}-store.db"


def temporary_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}{CREATING_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")


def remove_leftovers(path: Path) -> None:
    """The temporary files of commands killed while building ``path`` (the caller holds its lock)."""
    for leftover in path.parent.glob(f".{path.name}{CREATING_MARK}*"):
        leftover.unlink(missing_ok=True)


def copy_template(target: Path) -> bool:
    """Copy the template into the new file ``target``; False when there is none fit to copy (the caller
    still checks that MLflow opens the copy without migrating it)."""
    template = template_path()
    if not template.is_file():
        return False
    try:
        with closing(sqlite3.connect(f"{template.resolve().as_uri()}?mode=ro", uri=True)) as source:
            if not _holds_nothing(source):
                return False
            with closing(sqlite3.connect(target)) as copy:
                source.backup(copy)
    except sqlite3.Error:
        target.unlink(missing_ok=True)
        return False
    return True


def save_template(store: Path) -> None:
    """Keep ``store``, which MLflow has just built and opened (so it holds only the Default experiment),
    less that experiment, as the template. Best effort: without one the next store is migrated."""
    from filelock import FileLock, Timeout

    template = template_path()
    temporary = temporary_beside(template)
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{template}.lock", timeout=0):  # another command is saving one: leave it to it
            remove_leftovers(template)
            with closing(sqlite3.connect(store)) as source, closing(sqlite3.connect(temporary)) as copy:
                source.backup(copy)
                copy.execute("DELETE FROM experiment_tags")
                copy.execute("DELETE FROM experiments")
                copy.commit()
                if not _holds_nothing(copy):
                    return
            os.replace(temporary, template)
    except (OSError, Timeout, sqlite3.Error):
        pass
    finally:
        with suppress(OSError):  # a cache folder that is not one
            temporary.unlink(missing_ok=True)


def _holds_nothing(connection: sqlite3.Connection) -> bool:
    """Whether a store has a schema version and holds no experiment, run or model."""
    if connection.execute("SELECT count(*) FROM alembic_version").fetchone()[0] != 1:
        return False
    return all(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0 for table in USED_TABLES)
