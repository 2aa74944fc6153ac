"""Count the SQL round trips of one request, in-process (bench/run.py and bench/profile.py).

Each statement the app sends is one message (the session check and a lock ride in front of
the statement they precede: one message); psycopg2 sends BEGIN on its own before a
transaction's first statement (not in autocommit, where safe-method requests run), and COMMIT
or ROLLBACK of an open transaction on their own. SQLAlchemy's events see all of them.
"""

import contextlib

from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from sqlalchemy import event

from taskapp.extensions import db


@contextlib.contextmanager
def counting(app):
    """Yield a list whose length is the round trips made while the block runs."""
    sent: list[str] = []
    with app.app_context():
        engine = db.engine

    def statement(_conn, cursor, text, *_args):
        driver = cursor.connection
        if not driver.autocommit and driver.info.transaction_status == TRANSACTION_STATUS_IDLE:
            sent.append("BEGIN")
        sent.append(text)

    def ending(name):
        def end(conn):
            driver = conn.connection.driver_connection
            if driver.info.transaction_status != TRANSACTION_STATUS_IDLE:
                sent.append(name)

        return end

    commit, rollback = ending("COMMIT"), ending("ROLLBACK")
    listeners = [("before_cursor_execute", statement), ("commit", commit), ("rollback", rollback)]
    for name, listener in listeners:
        event.listen(engine, name, listener)
    try:
        yield sent
    finally:
        for name, listener in listeners:
            event.remove(engine, name, listener)


def round_trips(app, client, method: str, path: str, *, headers: dict, json=None) -> int:
    """The round trips of one request through ``client`` (Flask's test client of ``app``)."""
    with counting(app) as sent:
        response = client.open(path, method=method, headers=headers, json=json)
    if response.status_code >= 400:
        raise RuntimeError(f"{method} {path} answered {response.status_code}")
    return len(sent)
