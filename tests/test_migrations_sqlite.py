"""The revisions on the embedded default: SQLite's table copies must not trip over the
triggers of earlier revisions, on the way up or down."""

import pytest
from test_migrations import flask_db


@pytest.mark.parametrize("target", ["base", "0003"])
def test_sqlite_downgrades_and_upgrades_again(tmp_path, target):
    url = f"sqlite:///{tmp_path / 'taskapp.db'}"
    for args in (["upgrade"], ["downgrade", target], ["upgrade"]):
        result = flask_db(url, *args)
        assert result.returncode == 0, (args, result.stderr[-2000:])
