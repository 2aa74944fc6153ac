"""The session check of an authenticated request, sent with the request's first statement.

An access token is only as good as its session: revoked, expired or of a deactivated user, it
is refused on every worker at once, so the check reads the database on every request. It
used to be a query of its own before the view ran: a round trip that cost as much as the
page it guarded (BENCHMARKS.md). Now the user loader only notes the token's ids, and the
request's first statement carries ``SELECT taskapp_check_session(user, session);`` in front
of it, in the same message (migration 0010). The statements of one message are one
transaction, so a dead session raises before that statement runs: it never reads or writes.

The check is still made before anything is committed (``before_commit``), and before a view's
answer or error leaves (``checked``), for views whose statements could not carry it (none
ran, or only ``executemany``); ``Caller`` loads the user row, with the check, for the few
routes that read more of the caller than the id.
"""

import functools
import re
from collections.abc import Callable
from typing import NoReturn

from flask import Flask, g, has_app_context
from sqlalchemy import event, text

from taskapp.auth.service import load_session_user
from taskapp.errors import Unauthorized
from taskapp.extensions import db
from taskapp.observability import SESSION_REFUSED

SESSION_GONE = "Session is no longer valid"
# Raised by taskapp_check_session (migration 0010).
SESSION_GONE_SQLSTATE = "TA401"
# g keys: the token's (user id, session id) while unchecked; while a statement carries it.
_PENDING = "taskapp_session_unchecked"
_SENT = "taskapp_session_sent"
# Savepoints (tests bind sessions to an outer transaction) carry no check: an error there would
# break the outer transaction. The next statement carries it.
_TRANSACTION_CONTROL = re.compile(r"\s*(SAVEPOINT|RELEASE|ROLLBACK)\b", re.IGNORECASE)


class Caller:
    """``current_user``: the id of a verified access token's user and session; reading any
    other attribute loads the user row (with the session check, one round trip)."""

    def __init__(self, user_id: int, session_id: int):
        self.id = user_id
        self.session_id = session_id

    def __getattr__(self, name: str):
        # Only called for attributes not set in __init__.
        if name.startswith("__"):
            raise AttributeError(name)
        user = self.__dict__.get("_user")
        if user is None:
            g.pop(_PENDING, None)
            user = load_session_user(self.id, self.session_id)
            if user is None:
                _refuse()
            self._user = user
        return getattr(user, name)


def _refuse() -> NoReturn:
    """The session is dead: a 401, and the request is nobody's (its access line names no
    user)."""
    if has_app_context():
        g.pop(_PENDING, None)
        setattr(g, SESSION_REFUSED, True)
    raise Unauthorized(SESSION_GONE)


def defer_check(user_id: int, session_id: int) -> Caller:
    """The caller of a verified token, its session to be checked with the first statement."""
    g.setdefault(_PENDING, (user_id, session_id))
    return Caller(user_id, session_id)


def check_now() -> None:
    """Check the request's session now if no statement has carried the check yet (one round
    trip); Unauthorized if it is dead."""
    if not has_app_context():
        return
    ids = g.pop(_PENDING, None)
    if ids is not None:
        db.session.execute(text("SELECT taskapp_check_session(:user_id, :session_id)"), _bind(ids))


def _bind(ids: tuple[int, int]) -> dict:
    return {"user_id": ids[0], "session_id": ids[1]}


def checked(view: Callable) -> Callable:
    """``view`` whose answer, or error, leaves only once the session was checked."""

    @functools.wraps(view)
    def check_before_answering(*args, **kwargs):
        try:
            answer = view(*args, **kwargs)
        except Exception:
            if g.get(_PENDING) is not None:
                db.session.rollback()  # the view's failed transaction, if any
                check_now()
            raise
        check_now()
        return answer

    return check_before_answering


def carry_check(_conn, _cursor, statement, parameters, _context, executemany):
    """``before_cursor_execute`` listener (retval): the pending check goes in front of the
    statement, in the same message. Integers only, so no parameter style is disturbed."""
    if executemany or not has_app_context():
        return statement, parameters
    ids = g.get(_PENDING)
    if ids is None or _TRANSACTION_CONTROL.match(statement):
        return statement, parameters
    setattr(g, _SENT, g.pop(_PENDING))
    user_id, session_id = map(int, ids)
    return f"SELECT taskapp_check_session({user_id}, {session_id}); {statement}", parameters


def carried(*_args) -> None:
    """``after_cursor_execute`` listener: the statement ran, so the session was live."""
    if has_app_context():
        g.pop(_SENT, None)


def refuse_dead_session(context) -> None:
    """``handle_error`` listener: the check's error is a 401; any other error of a statement
    that carried the check leaves it unchecked (it may not have run)."""
    if has_app_context():
        ids = g.pop(_SENT, None)
        if ids is not None:
            setattr(g, _PENDING, ids)
    if getattr(context.original_exception, "pgcode", None) == SESSION_GONE_SQLSTATE:
        _refuse()


def check_before_commit(_session) -> None:
    """Session ``before_commit`` listener: nothing commits for a session not yet checked."""
    check_now()


def init_app(app: Flask) -> None:
    """Listen on the app's engine (ahead of the transaction settings, which must go first in
    the message: inserted first, this listener runs first and they are prepended after it)."""
    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", carry_check, retval=True, insert=True)
    event.listen(engine, "after_cursor_execute", carried)
    event.listen(engine, "handle_error", refuse_dead_session)
    # db.session outlives any one app (tests build many): listen once.
    if not event.contains(db.session, "before_commit", check_before_commit):
        event.listen(db.session, "before_commit", check_before_commit)
