"""Local sqlite tracking stores, created and upgraded so that no command leaves one half-written.

MLflow creates (or upgrades) a sqlite store's tables in place, in some seventy migrations that do
not form one transaction: a command stopped meanwhile (Ctrl-C, ``kill -9``) leaves a half-migrated
file that every later command fails on (``table experiment_tags already exists``), and two
commands that start at once on a store that does not exist yet race through the same migrations.
So here, under a lock file beside the database that every command of this package takes, a
store is created, or upgraded, in a temporary file beside it that is moved into place once
complete; a half-migrated file left by something else is refused with one line on how to recover.
A new store is a copy of an empty one kept per MLflow version (:mod:`.store_template`), when there is
one: MLflow's migrations take seconds, a copy milliseconds.

Three of MLflow's internals are used, all here: how it builds the store for a URI
(``_get_sqlalchemy_store``), its test of whether a store needs migrating (``_all_tables_exist``)
and its cache of database engines by URI.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import warnings
from contextlib import closing
from pathlib import Path

from ..core.errors import ConfigError
from ..core.quiet import quiet_loggers
from .store_template import copy_template, remove_leftovers, save_template, temporary_beside

#: how long a command waits for another one creating the same store
LOCK_TIMEOUT_S = 300
LOCK_SUFFIX = ".lock"
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
        remove_leftovers(path)  # of commands that died while creating one (the lock is ours: none is in use)
        if not path.is_file() or path.stat().st_size == 0:
            _create(path)
        elif not _has_all_tables(path):
            _upgrade(path)
    finally:
        lock.release()


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


def _create(path: Path) -> None:
    """A new store, built in a temporary file: a copy of the template if there is one that MLflow opens as
    is, else built by MLflow (and kept as the template for the next one)."""
    temporary = temporary_beside(path)
    try:
        if not _from_template(temporary):
            _migrate(temporary)
            save_template(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _from_template(temporary: Path) -> bool:
    """Whether ``temporary`` is now a copy of the template that MLflow opened without migrating it (and
    gave its Default experiment); a template that is not whole or not of this MLflow is left unused."""
    if not copy_template(temporary):
        return False
    try:
        if _has_all_tables(temporary):
            _migrate(temporary)
            return True
    except Exception:  # not of this MLflow's schema version, or not a database: build the store instead
        pass
    temporary.unlink(missing_ok=True)
    return False


def _upgrade(path: Path) -> None:
    """An existing store MLflow would migrate in place: migrated in a copy, moved into place when whole."""
    temporary = temporary_beside(path)
    try:
        with closing(sqlite3.connect(path)) as source, closing(sqlite3.connect(temporary)) as target:
            source.backup(target)
        try:
            _migrate(temporary)
        except Exception as error:
            raise ConfigError("tracking_uri", _half_migrated(path, error)) from None
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _migrate(path: Path) -> None:
    """What MLflow does to a store it opens for the first time: every table, the default experiment."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.tracking._tracking_service.utils import _get_sqlalchemy_store

    uri = f"sqlite:///{path}"
    try:
        with quiet_loggers(MIGRATION_LOGGERS, logging.WARNING), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # alembic's notes on the constraints it recreates
            _get_sqlalchemy_store(uri, None)
    finally:  # the file is about to move, or go: no engine may stay open on it
        engine = SqlAlchemyStore._engine_map.pop(uri, None)
        if engine is not None:
            engine.dispose()


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
