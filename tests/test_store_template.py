"""The store template: a new local sqlite store is a copy of an empty one MLflow built, that MLflow opens
without migrating and that carries nothing of the store it was made from; a template that is not
whole, or not empty, is never copied.

Real MLflow sqlite stores throughout, each test with its own cache folder.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "a cache #1"  # a path a file: URI must quote
    monkeypatch.setenv("FLAIR_MLFLOW_CACHE_DIR", str(folder))
    return folder


def _template() -> Path:
    from flair_mlflow.store.store_template import template_path

    return template_path()


def _no_migrations(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow may not build or migrate a store from here on."""
    import mlflow.store.db.utils as db_utils

    def refuse(*_: object) -> None:
        raise AssertionError("MLflow migrated a store made from the template")

    monkeypatch.setattr(db_utils, "_initialize_tables", refuse)
    monkeypatch.setattr(db_utils, "_upgrade_db", refuse)


def _experiments(path: Path) -> list[tuple]:
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute("SELECT experiment_id, name, artifact_location FROM experiments").fetchall()


def _new_store_serves(path: Path) -> None:
    """MLflow opens the store, which holds only its Default experiment, and takes runs."""
    import mlflow

    from flair_mlflow.store.runs import connect

    writer = connect(f"sqlite:///{path}")
    assert [(e.name, e.experiment_id) for e in writer.client.search_experiments()] == [("Default", "0")]
    experiment = writer.client.create_experiment("after")
    run = writer.client.create_run(experiment)
    writer.client.log_param(run.info.run_id, "hidden_size", 64)
    writer.client.log_metric(run.info.run_id, "dev_score", 0.5)
    writer.client.set_terminated(run.info.run_id)
    again = mlflow.MlflowClient(f"sqlite:///{path}").get_run(run.info.run_id)
    assert again.data.params == {"hidden_size": "64"} and again.info.status == "FINISHED"


def test_a_second_new_store_is_copied_from_the_template(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flair_mlflow.store.runs import connect

    (tmp_path / "first").mkdir()
    monkeypatch.chdir(tmp_path / "first")
    first = connect(f"sqlite:///{tmp_path / 'first.db'}")
    first.client.create_experiment("only-in-the-first")
    assert _template().is_file()
    assert _experiments(_template()) == []  # not even the Default one, whose folder is the first command's

    (tmp_path / "second").mkdir()
    monkeypatch.chdir(tmp_path / "second")
    _no_migrations(monkeypatch)
    _new_store_serves(tmp_path / "second.db")
    (default,) = [row for row in _experiments(tmp_path / "second.db") if row[0] == 0]
    assert default[1] == "Default" and default[2].startswith(str(tmp_path / "second")), default  # made here
    assert not list(tmp_path.glob(".*.creating-*"))


def _half_migrated_template() -> None:
    """A template as MLflow's migrations would leave it stopped part-way: some tables, an old version."""
    _template().parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(_template())) as connection:
        connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        connection.execute("INSERT INTO alembic_version VALUES ('451aebb31d03')")
        connection.execute("CREATE TABLE experiments (experiment_id INTEGER, name VARCHAR(256))")
        connection.execute("CREATE TABLE runs (run_uuid VARCHAR(32))")
        connection.execute("CREATE TABLE registered_models (name VARCHAR(256))")
        connection.commit()


@pytest.mark.parametrize("kind", ["half-written", "not a database", "holds an experiment"])
def test_a_template_that_is_not_whole_and_empty_is_not_used_and_is_replaced(
    tmp_path: Path, cache: Path, kind: str
) -> None:
    from flair_mlflow.store.runs import connect

    if kind == "half-written":
        _half_migrated_template()
    elif kind == "not a database":
        _template().parent.mkdir(parents=True)
        _template().write_bytes(b"not sqlite at all\n" * 64)
    else:
        connect(f"sqlite:///{tmp_path / 'first.db'}")
        with closing(sqlite3.connect(_template())) as connection:
            connection.execute(
                "INSERT INTO experiments (experiment_id, name, lifecycle_stage) VALUES (7, 'x', 'active')"
            )
            connection.commit()

    _new_store_serves(tmp_path / "new.db")
    assert _experiments(_template()) == []  # replaced by a whole one
    with closing(sqlite3.connect(_template())) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"experiments", "runs", "metrics", "params", "registered_models"} <= tables


def test_a_cache_that_cannot_be_written_still_gives_a_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a-file").write_text("", "utf-8")
    monkeypatch.setenv("FLAIR_MLFLOW_CACHE_DIR", str(tmp_path / "a-file" / "cache"))
    _new_store_serves(tmp_path / "new.db")
