"""One message over SMTP (smtplib, with STARTTLS or SSL), or into the log without MAIL_SERVER."""

import logging
import smtplib
import socket
import ssl
import threading
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import make_msgid

log = logging.getLogger(__name__)


# The operations of one conversation, at most: connect, greeting, EHLO (and HELO after a
# refusal), STARTTLS and its handshake, EHLO again, AUTH and its challenge, MAIL, RCPT, DATA,
# the message, QUIT. Each may take the timeout; the conversation is cut once all could have.
OPERATIONS = 14


def conversation_limit(timeout: float) -> float:
    """Seconds one message's SMTP conversation may last, at most, with ``timeout`` per
    operation: ``send`` hangs up then (a server trickling its replies a byte at a time never
    lets one operation time out)."""
    return OPERATIONS * timeout


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
    """Hand ``message`` to the configured server within ``timeout`` seconds per operation, and
    conversation_limit(timeout) in all.

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
        client = smtplib.SMTP_SSL(timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(timeout=timeout)
    # The clock starts before the greeting (a server may trickle that too). So the client is
    # made unconnected and connected here, as its constructor would do it: the host noted
    # first, since TLS checks the certificate against it.
    client._host = server
    cutoff = threading.Timer(conversation_limit(timeout), _hang_up, (client,))
    cutoff.daemon = True
    cutoff.start()
    try:
        client.connect(server, port)
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
        cutoff.cancel()


def _hang_up(client: smtplib.SMTP) -> None:
    """End a conversation past its limit: the operation under way reads the end of the stream
    and fails (SMTPServerDisconnected, or an OSError), so the message waits for its retry."""
    sock = client.sock
    if sock is not None:
        try:
            # socket.socket's own shutdown, even on an SSLSocket: the reading thread owns the
            # TLS state; the descriptor's end is what it needs to see.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass  # closed meanwhile: the conversation ended on its own
