"""A real SMTP server for tests (aiosmtpd on a free port) that keeps what it receives, can
be stopped and started again on the same port, and can refuse chosen recipients."""

import asyncio
import re
import threading
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.support.servers import free_port

LINK = re.compile(r"(https?://\S+?)\?token=([A-Za-z0-9_-]+)")


@dataclass
class Received:
    """One message as the server took it."""

    recipients: list[str]
    message: EmailMessage

    @property
    def text(self) -> str:
        return self.message.get_body(("plain",)).get_content()

    @property
    def html(self) -> str:
        return self.message.get_body(("html",)).get_content()

    @property
    def link(self) -> tuple[str, str] | None:
        """(the link without its query, the token) from the plain-text body, or None."""
        match = LINK.search(self.text)
        return match.groups() if match else None

    @property
    def token(self) -> str:
        link = self.link
        assert link is not None, self.text
        return link[1]


class _Handler:
    def __init__(self, sink: "SmtpSink"):
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.sink.refused:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.sink.delay:
            await asyncio.sleep(self.sink.delay)
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self.sink.lock:
            self.sink.received.append(Received(list(envelope.rcpt_tos), message))
        return "250 Message accepted"


class SmtpSink:
    """aiosmtpd on 127.0.0.1:<free port>; ``received`` lists the messages it accepted."""

    def __init__(self, *, delay: float = 0.0, **smtp_options):
        self.port = free_port()
        self.received: list[Received] = []
        self.refused: set[str] = set()
        self.delay = delay
        self.lock = threading.Lock()
        self.smtp_options = smtp_options
        self.controller: Controller | None = None

    def start(self) -> "SmtpSink":
        self.controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=self.port, **self.smtp_options
        )
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [item for item in self.received if address in item.recipients]

    def wait_for(self, address: str, count: int = 1, timeout: float = 10) -> list[Received]:
        """The messages to ``address`` once there are ``count`` (polled, with a deadline)."""
        deadline = time.monotonic() + timeout
        while len(self.to(address)) < count:
            assert time.monotonic() < deadline, f"no message to {address} in {timeout} s"
            time.sleep(0.02)
        return self.to(address)


def authenticator(username: str, password: str):
    """An aiosmtpd authenticator accepting one user: "mailer" / "mail-secret"."""

    def check(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == username.encode() and auth_data.password == password.encode()
        return AuthResult(success=ok)

    return check
