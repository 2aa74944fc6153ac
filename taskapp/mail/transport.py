"""One message over SMTP (smtplib, with STARTTLS or SSL), or into the log without MAIL_SERVER."""

import logging
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import make_msgid

log = logging.getLogger(__name__)


class PermanentFailure(Exception):
    """The server refused the message for good (5xx): retrying cannot help."""


def build_message(
    *, sender: str, recipient: str, subject: str, text_body: str, html_body: str
) -> EmailMessage:
    """A multipart/alternative message: the plain text, then the HTML version."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip("> ") or None)
    message.set_content(text_body)
    message.add_alternative(html_body, subtype="html")
    return message


def _permanent(error: smtplib.SMTPException) -> bool:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _text in error.recipients.values())
    # A message refused after DATA; a refused sender or login is the operator's to fix.
    return isinstance(error, smtplib.SMTPDataError) and error.smtp_code >= 500


def send(message: EmailMessage, *, config: Mapping, timeout: float) -> None:
    """Hand ``message`` to the configured server within ``timeout`` seconds per operation.

    Raises PermanentFailure for a 5xx refusal of the message, or a non-ASCII recipient the
    server cannot take (no SMTPUTF8); OSError or SMTPException for anything worth retrying
    (refused connection, timeout, 4xx).
    """
    server = config["MAIL_SERVER"]
    if server is None:
        # Development: no mail server, so the message (with its link) goes to the log.
        log.info(
            "mail not sent (no MAIL_SERVER); to %s: %s\n%s",
            message["To"],
            message["Subject"],
            message.get_body(("plain",)).get_content(),
        )
        return
    port = config["MAIL_PORT"]
    context = ssl.create_default_context()
    if config["MAIL_USE_SSL"]:
        client = smtplib.SMTP_SSL(server, port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(server, port, timeout=timeout)
    try:
        if config["MAIL_USE_TLS"]:
            client.starttls(context=context)
        if config["MAIL_USERNAME"]:
            client.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"] or "")
        client.ehlo_or_helo_if_needed()
        if not str(message["To"]).isascii() and not client.has_extn("smtputf8"):
            # smtplib would raise SMTPNotSupportedError on every attempt: this server can
            # never take an internationalised address.
            raise PermanentFailure("SMTPUTF8 not supported")
        client.send_message(message)
    except smtplib.SMTPException as error:
        if _permanent(error):
            raise PermanentFailure(type(error).__name__) from error
        raise
    finally:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()
