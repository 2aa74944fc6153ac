"""The outbox: queue a message in the caller's transaction; claim, send and record it later.

A message is written in the same transaction as whatever it announces (a token), so it
exists exactly when that commits. Delivery claims one due message at a time with a lease (one
short transaction moves its next attempt past the longest SMTP conversation), sends it with no
transaction open, and records the outcome in a second short one, if the claim still holds. So
two deliverers (workers, or a worker and the attempt after a response) never send the same
message while a lease holds, and a slow SMTP server never holds a transaction (the database's
idle-in-transaction timeout would end it, and the record of a message the server has with it).
A message is sent twice only if a deliverer dies, or stalls past its lease, after the server
accepted the message and before the outbox recorded that.
"""

import functools
import logging
import smtplib
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import Flask, current_app, render_template
from sqlalchemy import delete, event, func, select, update

from taskapp.extensions import db
from taskapp.mail import transport
from taskapp.mail.models import OutboxMessage

log = logging.getLogger(__name__)

# Session.info keys: ids queued in the open transaction, and ids it committed.
_QUEUED = "mail_queued"
_COMMITTED = "mail_committed"


def queue_mail(recipient: str, template: str, *, subject: str, **context) -> OutboxMessage:
    """Render ``mail/<template>.txt`` and ``.html`` and add the message to the outbox; the
    caller commits it with the rest of its transaction."""
    message = OutboxMessage(
        recipient=recipient,
        subject=subject,
        text_body=render_template(f"mail/{template}.txt", subject=subject, **context),
        html_body=render_template(f"mail/{template}.html", subject=subject, **context),
    )
    db.session.add(message)
    db.session.flush()
    db.session.info.setdefault(_QUEUED, []).append(message.id)
    return message


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the ``attempts``-th failed attempt: doubling, capped, and at
    least a second (so one pass over the due messages tries each once)."""
    config = current_app.config
    seconds = config["MAIL_RETRY_SECONDS"] * 2 ** min(attempts - 1, 32)
    return timedelta(seconds=max(min(seconds, config["MAIL_RETRY_MAX_SECONDS"]), 1))


@dataclass(frozen=True)
class _Claim:
    """A message claimed for one attempt: what to send, and the attempt's number, which is the
    claim's token (a later claim of the message counts another attempt)."""

    id: int
    recipient: str
    subject: str
    text_body: str
    html_body: str
    attempts: int


# The deliverer's clock: the database's, so that every deliverer's leases and retries agree.
# At the statement, as now() is in the deliverer's one-statement transactions (a transaction
# spanning several, as a test's outer one does, would stop now() at its start).
_clock = func.statement_timestamp


def delivery_lease(timeout: float) -> timedelta:
    """How long a claim keeps a message from other deliverers: the longest SMTP conversation
    with ``timeout`` per operation (transport.conversation_limit), then the longest wait on
    the database to record its outcome."""
    database = current_app.config["DATABASE_TIMEOUTS"].longest_wait
    return timedelta(seconds=transport.conversation_limit(timeout) + database)


def deliver_one(
    message_id: int | None = None,
    *,
    due_before: datetime | None = None,
    timeout: float | None = None,
) -> str | None:
    """Claim a message (``message_id``, if unsent and due; else the oldest one due by
    ``due_before``, default now), send it and record the outcome, each step on its own: no
    transaction is open while the SMTP server takes its time. Returns "sent", "retry",
    "failed" (refused for good, or still failing when its next attempt would pass
    MAIL_MAX_AGE_HOURS), or None if none was free.
    """
    config = current_app.config
    timeout = timeout or config["MAIL_TIMEOUT"]
    claim = _claim(message_id, due_before=due_before, lease=delivery_lease(timeout))
    if claim is None:
        return None
    error = _send(claim, config=config, timeout=timeout)
    return _record(claim, error, config=config)


def _claim(message_id: int | None, *, due_before: datetime | None, lease: timedelta):
    """Lease a due message to this deliverer, in a transaction of its own: its next attempt
    moves past the lease, so no other deliverer finds it due meanwhile; commits."""
    due = OutboxMessage.next_attempt_at <= (_clock() if due_before is None else due_before)
    candidates = select(OutboxMessage.id).where(
        OutboxMessage.sent_at.is_(None), OutboxMessage.failed_at.is_(None), due
    )
    if message_id is not None:
        candidates = candidates.where(OutboxMessage.id == message_id)
    else:
        candidates = candidates.order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
    # SKIP LOCKED: a message another deliverer is claiming at this moment is left to it.
    candidate = candidates.limit(1).with_for_update(skip_locked=True).scalar_subquery()
    claimed = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == candidate)
        .values(attempts=OutboxMessage.attempts + 1, next_attempt_at=_clock() + lease)
        .returning(
            OutboxMessage.id,
            OutboxMessage.recipient,
            OutboxMessage.subject,
            OutboxMessage.text_body,
            OutboxMessage.html_body,
            OutboxMessage.attempts,
        )
        .execution_options(synchronize_session=False)
    ).one_or_none()
    db.session.commit()
    return None if claimed is None else _Claim(*claimed)


def _send(claim: _Claim, *, config, timeout: float) -> Exception | None:
    """Hand the claimed message to the SMTP server: None once it has it, else the error."""
    try:
        email = transport.build_message(
            sender=config["MAIL_FROM"],
            recipient=claim.recipient,
            subject=claim.subject,
            text_body=claim.text_body,
            html_body=claim.html_body,
        )
        transport.send(email, config=config, timeout=timeout)
    except Exception as error:
        # OSError and SMTPException: the server is down, slow or says "later"; anything else
        # is unexpected (logged in full when recorded). Either way the message waits its
        # backoff, so that it never stands in the way of the others.
        return error
    return None


def _record(claim: _Claim, error: Exception | None, *, config) -> str:
    """Record the attempt's outcome in a transaction of its own, if the claim still holds:
    had its lease run out and another deliverer claimed the message again (or finished it),
    that one records its own attempt, and this one records nothing; commits."""
    found = db.session.execute(
        select(OutboxMessage, _clock())
        .where(
            OutboxMessage.id == claim.id,
            OutboxMessage.attempts == claim.attempts,
            OutboxMessage.sent_at.is_(None),
            OutboxMessage.failed_at.is_(None),
        )
        .with_for_update()
    ).one_or_none()
    if found is None:
        db.session.rollback()
        log.warning(
            "mail %s: attempt %d outlived its lease; the message's next claim records it",
            claim.id,
            claim.attempts,
        )
        return _outcome(error)
    message, now = found
    outcome = _outcome(error)
    if outcome == "sent":
        message.sent_at = now
        message.last_error = None
    elif outcome == "failed":
        message.failed_at = now
        message.last_error = f"refused: {error}"[:255]
        log.error("mail %s refused for good after %d attempt(s)", message.id, message.attempts)
    else:
        # The exception text may carry the server's reply; the class is what the row keeps.
        message.last_error = type(error).__name__
        message.next_attempt_at = now + retry_delay(message.attempts)
        expected = isinstance(error, OSError | smtplib.SMTPException)
        log.log(
            logging.WARNING if expected else logging.ERROR,
            "mail %s not delivered (attempt %d, %s); retrying at %s",
            message.id,
            message.attempts,
            type(error).__name__,
            message.next_attempt_at.isoformat(timespec="seconds"),
            exc_info=None if expected else error,
        )
        if _too_old(message, config=config):
            _give_up(message, now=now)
            outcome = "failed"
    if outcome != "retry":
        # The bodies carry live links (tokens are stored only as digests elsewhere): once
        # the server has the message, or never will, the outbox keeps only its envelope.
        message.text_body = message.html_body = ""
    db.session.commit()
    return outcome


def _outcome(error: Exception | None) -> str:
    if error is None:
        return "sent"
    return "failed" if isinstance(error, transport.PermanentFailure) else "retry"


def _too_old(message: OutboxMessage, *, config) -> bool:
    """Whether the message's next attempt would come after MAIL_MAX_AGE_HOURS."""
    max_age = timedelta(hours=config["MAIL_MAX_AGE_HOURS"])
    return message.next_attempt_at > message.created_at + max_age


def _give_up(message: OutboxMessage, *, now: datetime) -> None:
    message.failed_at = now
    message.last_error = f"gave up: {message.last_error}"[:255]
    log.error(
        "mail %s given up after %d attempt(s) over MAIL_MAX_AGE_HOURS (%s)",
        message.id,
        message.attempts,
        message.last_error,
    )


@dataclass
class DeliveryReport:
    """What one pass over the due messages did."""

    counts: dict[str, int] = field(default_factory=lambda: {"sent": 0, "retry": 0, "failed": 0})

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def deliver_due(*, stop: threading.Event | None = None) -> DeliveryReport:
    """Deliver due messages, one transaction each, until none is due (or ``stop`` is set)."""
    report = DeliveryReport()
    # Due by the start of the pass: a message that fails now is retried in a later pass.
    started = db.session.scalar(select(_clock()))
    db.session.rollback()
    while stop is None or not stop.is_set():
        outcome = deliver_one(due_before=started)
        if outcome is None:
            break
        report.counts[outcome] += 1
    return report


def purge_outbox(*, older_than: datetime, batch_size: int = 1000) -> int:
    """Delete messages sent or refused before ``older_than``, in batches (each commits)."""
    done = OutboxMessage.sent_at.is_not(None) | OutboxMessage.failed_at.is_not(None)
    finished = func.coalesce(OutboxMessage.sent_at, OutboxMessage.failed_at)
    deleted = 0
    while True:
        batch = (
            select(OutboxMessage.id)
            .where(done, finished < older_than)
            .limit(batch_size)
            .scalar_subquery()
        )
        count = db.session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(batch)))
        db.session.commit()
        deleted += count.rowcount
        if count.rowcount < batch_size:
            return deleted


def _send_after_response(app: Flask, message_ids: list[int]) -> None:
    """One attempt per message, with the short timeout; the worker retries what fails."""
    with app.app_context():  # its teardown discards the session, even a broken one
        for message_id in message_ids:
            try:
                deliver_one(message_id, timeout=app.config["MAIL_IMMEDIATE_TIMEOUT"])
            except Exception:
                # Never out of a response's close: the messages wait in the outbox for the
                # worker (the database itself may be what failed).
                log.exception("mail %s: immediate attempt failed", message_id)
                return


def _committed(session) -> None:
    queued = session.info.pop(_QUEUED, None)
    if queued:
        session.info.setdefault(_COMMITTED, []).extend(queued)


def _rolled_back(session, *_args) -> None:
    session.info.pop(_QUEUED, None)


def register_mail(app: Flask) -> None:
    """After a response whose request committed mail: try to send it at once, once the
    client has the response (so an SMTP server's delay never reaches the client)."""
    if app.config["ENV_NAME"] == "production":
        if app.config["MAIL_SERVER"] is None:
            log.warning("MAIL_SERVER is not set: emails, links included, go to the log unsent")
        if not app.config["PUBLIC_BASE_URL_SET"]:
            log.warning(
                "PUBLIC_BASE_URL is not set: links in emails point to %s",
                app.config["PUBLIC_BASE_URL"],
            )
    if not event.contains(db.session, "after_commit", _committed):
        event.listen(db.session, "after_commit", _committed)
        event.listen(db.session, "after_rollback", _rolled_back)

    @app.after_request
    def send_after_response(response):
        if not db.session.registry.has():
            return response
        message_ids = db.session.info.pop(_COMMITTED, None)
        if message_ids and app.config["MAIL_SEND_IMMEDIATELY"]:
            response.call_on_close(functools.partial(_send_after_response, app, message_ids))
        return response
