"""The revisions on the embedded default: SQLite's table copies must not trip over the
triggers of earlier revisions, on the way up or down."""

import sqlite3

import pytest
from test_migrations import flask_db


@pytest.mark.parametrize("target", ["base", "0003"])
def test_sqlite_downgrades_and_upgrades_again(tmp_path, target):
    url = f"sqlite:///{tmp_path / 'taskapp.db'}"
    for args in (["upgrade"], ["downgrade", target], ["upgrade"]):
        result = flask_db(url, *args)
        assert result.returncode == 0, (args, result.stderr[-2000:])


def test_sqlite_gives_a_position_to_a_task_inserted_without_one(tmp_path):
    # As the release before 0006 does, should it still serve while the migration runs.
    url = f"sqlite:///{tmp_path / 'taskapp.db'}"
    assert flask_db(url, "upgrade").returncode == 0
    with sqlite3.connect(tmp_path / "taskapp.db") as connection:
        connection.execute("INSERT INTO users (email, password_hash) VALUES ('m@x.org', 'x')")
        connection.execute("INSERT INTO tasks (user_id, title) VALUES (1, 'old code')")
        rows = connection.execute("SELECT id, position FROM tasks").fetchall()
    assert rows == [(1, "j0000000001")]
