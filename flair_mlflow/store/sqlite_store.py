"""Local sqlite tracking stores, created and upgraded so that no command leaves one half-written.

MLflow creates (or upgrades) a sqlite store's tables in place, in some seventy migrations that do
not form one transaction: a command stopped meanwhile (Ctrl-C, ``kill -9``) leaves a half-migrated
file that every later command fails on (``table experiment_tags already exists``), and two
commands that start at once on a store that does not exist yet race through the same migrations.
So here, under a lock file beside the database that every command of this package takes, a
store is created, or upgraded, in a temporary file beside it that is moved into place once
complete; a half-migrated file left by something else is refused with one line on how to recover.

Three of MLflow's internals are used, all here: how it builds the store for a URI
(``_get_sqlalchemy_store``), its test of whether a store needs migrating (``_all_tables_exist``)
and its cache of database engines by URI.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import uuid
import warnings
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Iterator

from ..core.errors import ConfigError

#: how long a command waits for another one creating the same store
LOCK_TIMEOUT_S = 300
LOCK_SUFFIX = ".lock"
#: the temporary files a store is created in: ``.mlflow.db.creating-<pid>-<random>`` beside ``mlflow.db``
CREATING_MARK = ".creating-"
#: loggers whose lines ("Creating initial MLflow database tables...") would surround a one-line error
MIGRATION_LOGGERS = ("mlflow.store.db.utils", "alembic")


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a local sqlite URI (``sqlite:///mlflow.db``); None for any other store."""
    if not tracking_uri.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(tracking_uri).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def ensure_sqlite_store(tracking_uri: str) -> None:
    """Make sure the sqlite store at ``tracking_uri`` (if it is one) is complete before MLflow opens it:
    created or upgraded whole, one command at a time; refused with one line if left half-migrated."""
    path = sqlite_path(tracking_uri)
    if path is None:
        return
    from filelock import FileLock, Timeout

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path) + LOCK_SUFFIX, timeout=LOCK_TIMEOUT_S)
        lock.acquire()
    except Timeout:
        raise ConfigError(
            "tracking_uri", f"another command has held '{path}{LOCK_SUFFIX}' for {LOCK_TIMEOUT_S} s; is it stuck?"
        ) from None
    except OSError as error:
        if path.is_file():  # a store in a folder this user cannot write to: read it as MLflow would
            return
        raise ConfigError("tracking_uri", f"cannot create the sqlite store '{path}': {error}") from None
    try:
        _remove_leftovers(path)
        if not path.is_file() or path.stat().st_size == 0:
            _complete_in_place_of(path, copy=False)
        elif not _has_all_tables(path):
            _complete_in_place_of(path, copy=True)
    finally:
        lock.release()


def _remove_leftovers(path: Path) -> None:
    """Temporary stores of commands that died while creating one (the lock is ours: none is in use)."""
    for leftover in path.parent.glob(f".{path.name}{CREATING_MARK}*"):
        leftover.unlink(missing_ok=True)


def _has_all_tables(path: Path) -> bool:
    """Whether MLflow would leave the file's schema alone (else it migrates it in place)."""
    import sqlalchemy
    from mlflow.store.db.utils import _all_tables_exist

    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    try:
        return _all_tables_exist(engine)
    except sqlalchemy.exc.DatabaseError:
        raise ConfigError("tracking_uri", f"'{path}' is not an sqlite database (nor an MLflow store)") from None
    finally:
        engine.dispose()


def _complete_in_place_of(path: Path, copy: bool) -> None:
    """Build the store (from a copy of ``path`` when ``copy``) in a temporary file, then move it into place."""
    temporary = path.with_name(f".{path.name}{CREATING_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        if copy:
            with closing(sqlite3.connect(path)) as source, closing(sqlite3.connect(temporary)) as target:
                source.backup(target)
        try:
            _migrate(temporary)
        except Exception as error:
            if not copy:
                raise
            raise ConfigError("tracking_uri", _half_migrated(path, error)) from None
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _migrate(path: Path) -> None:
    """What MLflow does to a store it opens for the first time: every table, the default experiment."""
    from mlflow.tracking._tracking_service.utils import _get_sqlalchemy_store

    uri = f"sqlite:///{path}"
    with _quiet(MIGRATION_LOGGERS), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # alembic's notes on the constraints it recreates
        store = _get_sqlalchemy_store(uri, None)
    store.engine.dispose()  # the file is about to move: no engine may stay open on it
    type(store)._engine_map.pop(uri, None)


def _half_migrated(path: Path, error: Exception) -> str:
    reason = " ".join(str(error).split("[SQL:")[0].split())[:160]
    runs = _run_count(path)
    if runs:
        advice = f"it holds {runs} runs: keep a copy, then try 'mlflow db upgrade sqlite:///{path}'"
    else:
        advice = f"it holds no runs: delete it ({path}) and run the command again"
    return f"the sqlite store '{path}' is half-migrated (a command was stopped while MLflow built its tables: {reason}); {advice}"


def _run_count(path: Path) -> int:
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
            return int(connection.execute("SELECT count(*) FROM runs").fetchone()[0])
    except sqlite3.Error:
        return 0


@contextmanager
def _quiet(names: tuple[str, ...]) -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
