"""Flask CLI commands (``flask --app wsgi ...``)."""

import signal
import threading
from datetime import UTC, datetime, timedelta

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from marshmallow import ValidationError
from sqlalchemy.exc import IntegrityError

from taskapp import seed
from taskapp.admin import service as admin_service
from taskapp.auth import service as auth_service
from taskapp.auth.schemas import SignupSchema
from taskapp.errors import AppError
from taskapp.idempotency import service as idempotency_service
from taskapp.mail import service as mail_service
from taskapp.recovery import service as recovery_service
from taskapp.sync import service as sync_service

tokens = AppGroup("tokens", help="Refresh-token housekeeping.")
users = AppGroup("users", help="User administration.")
mail = AppGroup("mail", help="Outgoing mail (the outbox).")
idempotency = AppGroup("idempotency", help="Idempotency-Key housekeeping.")
sync = AppGroup("sync", help="Incremental-sync housekeeping.")
PASSWORD_ATTEMPTS = 3


@tokens.command("purge")
@click.option(
    "--revoked-days",
    default=7,
    show_default=True,
    type=click.IntRange(min=0),
    help="Keep revoked sessions this many days (for audit) before deleting them.",
)
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(min=1))
def purge_tokens(revoked_days: int, batch_size: int) -> None:
    """Delete expired and long-revoked sessions and their refresh tokens (safe under load)."""
    cutoff = datetime.now(UTC) - timedelta(days=revoked_days)
    deleted = auth_service.purge_sessions(revoked_before=cutoff, batch_size=batch_size)
    click.echo(f"purged {deleted} session(s) with their refresh tokens")


@idempotency.command("purge")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(min=1))
def purge_idempotency_keys(batch_size: int) -> None:
    """Delete Idempotency-Keys older than IDEMPOTENCY_KEY_HOURS (safe under load)."""
    hours = current_app.config["IDEMPOTENCY_KEY_HOURS"]
    deleted = idempotency_service.purge_keys(
        older_than=timedelta(hours=hours), batch_size=batch_size
    )
    click.echo(f"purged {deleted} idempotency key(s)")


@sync.command("purge")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(min=1))
def purge_tombstones(batch_size: int) -> None:
    """Delete tombstones of deleted tasks older than SYNC_RETENTION_DAYS (plus a day)."""
    days = current_app.config["SYNC_RETENTION_DAYS"]
    deleted = sync_service.purge_tombstones(older_than=timedelta(days=days), batch_size=batch_size)
    click.echo(f"purged {deleted} tombstone(s)")


def _signup_value(field: str, value: str) -> str:
    """``value`` as signup accepts it for ``field`` (email normalised), else a usage error."""
    try:
        return SignupSchema(partial=True).load({field: value})[field]
    except ValidationError as error:
        raise click.BadParameter(" ".join(error.messages[field]), param_hint=field) from None


def _prompt_password() -> str:
    for _ in range(PASSWORD_ATTEMPTS):
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        try:
            return _signup_value("password", password)
        except click.BadParameter as error:
            click.echo(f"Error: {error.message}", err=True)
    raise click.ClickException("no valid password given")


@users.command("create-admin")
@click.argument("email")
def create_admin(email: str) -> None:
    """Make EMAIL an active admin, creating the account if there is none.

    A new account's password is prompted for (twice), or read from TASKAPP_ADMIN_PASSWORD;
    it follows the signup rules (8 to 72 bytes in UTF-8). An existing account is promoted
    (and reactivated) and keeps its password.
    """
    email = _signup_value("email", email)
    password = None
    if not admin_service.user_exists(email=email):
        password = current_app.config.get("ADMIN_PASSWORD")
        if password is None:
            password = _prompt_password()
        else:
            try:
                password = _signup_value("password", password)
            except click.BadParameter as error:
                raise click.ClickException(f"TASKAPP_ADMIN_PASSWORD: {error.message}") from None
    try:
        user, created = admin_service.make_admin(email=email, password=password)
    except AppError as error:
        raise click.ClickException(error.message) from None
    if created:
        click.echo(f"created admin {user.email} (id {user.id})")
    else:
        click.echo(f"promoted admin {user.email} (id {user.id}); their password is unchanged")


@click.command("seed")
@click.option("--users", "user_count", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--tasks", "task_count", default=1000, show_default=True, type=click.IntRange(min=0))
@click.option(
    "--prefix", default="seed", show_default=True, help="Emails are <prefix>-<n>@example.com."
)
@click.option(
    "--password",
    envvar="TASKAPP_SEED_PASSWORD",
    prompt=True,
    hide_input=True,
    help="Password of the seeded users (or TASKAPP_SEED_PASSWORD).",
)
def seed_command(user_count: int, task_count: int, prefix: str, password: str) -> None:
    """Bulk-load synthetic users with TASKS tasks each (COPY on PostgreSQL), for benchmarks."""
    password = _signup_value("password", password)  # bcrypt refuses over 72 bytes
    try:
        user_ids = seed.seed(users=user_count, tasks=task_count, prefix=prefix, password=password)
    except IntegrityError:
        raise click.ClickException(f"users with the prefix {prefix!r} exist already") from None
    click.echo(f"seeded {len(user_ids)} user(s) with {task_count} task(s) each")


@mail.command("deliver")
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit (cron, tests).")
@click.option(
    "--interval",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between looks at the outbox when nothing is due.",
)
def deliver(once: bool, interval: float) -> None:
    """Send the outbox's due messages over SMTP, retrying failures with backoff.

    Run one or more beside gunicorn: each message is leased to one worker at a time
    (docs/email.md). SIGTERM or Ctrl-C stops it after the message in hand.
    """
    stopping = threading.Event()
    if not once:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.set())
    while not stopping.is_set():
        report = mail_service.deliver_due(stop=stopping)
        if report.total or once:
            counts = ", ".join(f"{count} {outcome}" for outcome, count in report.counts.items())
            click.echo(f"delivered: {counts}")
        if once:
            return
        stopping.wait(interval)


@mail.command("purge")
@click.option(
    "--days",
    default=7,
    show_default=True,
    type=click.IntRange(min=0),
    help="Keep sent and refused messages, and expired emailed tokens, this many days.",
)
def purge_mail(days: int) -> None:
    """Delete old sent or refused messages (their envelopes) and expired emailed tokens."""
    cutoff = datetime.now(UTC) - timedelta(days=days)
    messages = mail_service.purge_outbox(older_than=cutoff)
    tokens_deleted = recovery_service.purge_email_tokens(older_than=cutoff)
    click.echo(f"purged {messages} message(s) and {tokens_deleted} emailed token(s)")


def register(app: Flask) -> None:
    """Attach the command groups to the app."""
    app.cli.add_command(tokens)
    app.cli.add_command(users)
    app.cli.add_command(mail)
    app.cli.add_command(idempotency)
    app.cli.add_command(sync)
    app.cli.add_command(seed_command)
