"""Slow clients: connections that trickle their request head do not stop the default deployment
(gunicorn.conf.py's worker class and threads, as deployed) from answering everyone else."""

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from conftest import requires_redis
from tests.support.servers import Server, call, gunicorn

pytestmark = [requires_redis, pytest.mark.gunicorn]

DRIP_SECONDS = 0.2  # one byte of a header value each time
PROMPT = 5  # seconds: a generous bound; an idle server answers /healthz in milliseconds


class Trickler:
    """A client that sends a request head one byte at a time and never finishes it."""

    def __init__(self, server: Server):
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        self.sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n".encode())
        self.sock.sendall(b"X-Slow: ")
        self.dripped = 0
        self.well_under_way = threading.Event()
        self.error: OSError | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, daemon=True)
        self._thread.start()

    def _drip(self) -> None:
        while not self._stop.wait(DRIP_SECONDS):
            try:
                self.sock.sendall(b"a")
            except OSError as error:  # the server dropped it: the test says so
                self.error = error
                return
            self.dripped += 1
            if self.dripped >= 10:  # two seconds in: the server is reading it by now
                self.well_under_way.set()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.sock.close()


@contextmanager
def trickling(server: Server, count: int) -> Iterator[list[Trickler]]:
    tricklers = []
    try:
        for _ in range(count):
            tricklers.append(Trickler(server))
        for trickler in tricklers:
            assert trickler.well_under_way.wait(timeout=30)
        yield tricklers
    finally:
        for trickler in tricklers:
            trickler.stop()


def test_two_trickling_clients_do_not_stop_the_others(tmp_path):
    with gunicorn(tmp_path) as server, trickling(server, 2) as tricklers:
        for _ in range(5):
            started = time.monotonic()
            response = call(server, "GET", "/healthz")
            assert response.status_code == 200
            assert time.monotonic() - started < PROMPT

        # Still connected and still trickling: they were served threads, not dropped.
        assert all(trickler.error is None for trickler in tricklers)
        assert server.log().count("Booting worker") == server.workers  # no worker was lost
