"""Requests sent from threads of their own, and the lock waits they meet in PostgreSQL: for
tests that interleave writers for real, each ordering forced by a lock another connection
holds and observed in pg_locks."""

import threading

from tests.support import wait_for
from tests.support.databases import own_connection


class InThread:
    """One request sent from its own thread, with its own test client (and so its own app
    context, session and pooled connection)."""

    def __init__(self, app, method: str, path: str, **kwargs):
        self.response = None
        self.error = None

        def send():
            try:
                self.response = getattr(app.test_client(), method)(path, **kwargs)
            except BaseException as error:  # surfaced by result()
                self.error = error

        self.thread = threading.Thread(target=send, daemon=True)
        self.thread.start()

    def done(self) -> bool:
        return not self.thread.is_alive()

    def result(self):
        self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "the request never finished"
        if self.error is not None:
            raise self.error
        return self.response


def lock_waits(connection) -> list[tuple[str, str]]:
    """(lock type, relation or '') of every ungranted lock of the app's backends."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT l.locktype, coalesce(l.relation::regclass::text, '')
              FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE NOT l.granted AND a.datname = current_database()
               AND a.application_name = 'taskapp'
            """
        )
        return cursor.fetchall()


def await_lock_waits(app, count: int, *requests: InThread) -> list[tuple[str, str]]:
    """Poll pg_locks until ``count`` of the app's statements wait on a lock."""
    watcher = own_connection()
    try:
        waits = []

        def waiting() -> bool:
            nonlocal waits
            waits = lock_waits(watcher)
            finished = [request for request in requests if request.done()]
            assert not finished, [request.result().status_code for request in finished]
            return len(waits) >= count

        wait_for(waiting, message=f"{count} lock wait(s) of the app")
        return waits
    finally:
        watcher.close()
