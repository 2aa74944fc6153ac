"""Flask CLI commands (``flask --app wsgi ...``)."""

from datetime import UTC, datetime, timedelta

import click
from flask import Flask
from flask.cli import AppGroup

from taskapp.auth import service as auth_service

tokens = AppGroup("tokens", help="Refresh-token housekeeping.")


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


def register(app: Flask) -> None:
    """Attach the command groups to the app."""
    app.cli.add_command(tokens)
