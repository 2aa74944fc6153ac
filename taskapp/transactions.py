"""Transactions a caller holds: the app's SQLAlchemy session class, whose commits may wait
for the caller's own.

Services own their commits. A caller that must commit more than a service's work in the same
transaction (an idempotency key's stored response, which must never be committed apart from
the work it answers for) runs the service inside ``held_commits``: there a service's
``commit()`` only flushes, so its statements and their errors happen where they did, and the
caller's commit at the end makes all of it durable at once, or its rollback none of it.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from flask_sqlalchemy.session import Session as FlaskSession

HELD = "taskapp.commits_held"


class Session(FlaskSession):
    """Flask-SQLAlchemy's session, whose ``commit`` flushes instead while commits are held."""

    def commit(self) -> None:
        if self.info.get(HELD):
            self.flush()
            return
        super().commit()


@contextmanager
def held_commits(session) -> Iterator[None]:
    """Within, ``session.commit()`` flushes only: the caller commits (or rolls back) after."""
    session.info[HELD] = True
    try:
        yield
    finally:
        session.info[HELD] = False
