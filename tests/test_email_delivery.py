"""Delivery through the outbox: retries after an outage, timeouts, permanent refusals,
STARTTLS/SSL with login, the log backend, and two workers that never send one message twice."""

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select, update

from conftest import unique_email
from taskapp.extensions import db
from taskapp.mail.models import OutboxMessage
from taskapp.mail.service import delivery_lease, queue_mail, retry_delay
from taskapp.mail.transport import conversation_limit
from tests.support import PROJECT
from tests.support.servers import call, gunicorn
from tests.support.smtp import SmtpSink, authenticator


@pytest.fixture
def make_user(make_user):
    """Sign a user up, without the verification email of signup (these tests count mail)."""

    def make():
        email, password = make_user()
        db.session.execute(delete(OutboxMessage).where(OutboxMessage.recipient == email))
        db.session.commit()
        return email, password

    return make


def request_reset(client, email: str):
    response = client.post("/password-reset", json={"email": email}, buffered=True)
    assert response.status_code == 202
    return response


def outbox(email: str) -> list[OutboxMessage]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.recipient == email).order_by(OutboxMessage.id)
        )
    )


def deliver_until_sent(runner, email: str, *, timeout: float = 15) -> None:
    """Run ``flask mail deliver --once`` until the outbox records the message as sent (its
    retry comes due after the backoff: polled, with a deadline)."""
    deadline = time.monotonic() + timeout
    while not all(message.sent_at for message in outbox(email)):
        assert time.monotonic() < deadline, [m.last_error for m in outbox(email)]
        result = runner.invoke(args=["mail", "deliver", "--once"])
        assert result.exit_code == 0, result.output
        time.sleep(0.1)


@pytest.fixture
def fast_retries(app):
    saved = app.config["MAIL_RETRY_SECONDS"]
    app.config["MAIL_RETRY_SECONDS"] = 0  # the floor: one second
    yield
    app.config["MAIL_RETRY_SECONDS"] = saved


def test_a_message_queued_while_the_server_is_down_is_delivered_once_it_is_back(
    client, runner, smtp, make_user, fast_retries
):
    email, _ = make_user()
    smtp.stop()

    request_reset(client, email)  # answered; the attempt after it failed

    [message] = outbox(email)
    assert message.sent_at is None and message.attempts == 1
    assert message.last_error == "ConnectionRefusedError"
    assert message.next_attempt_at > datetime.now(UTC) - timedelta(seconds=1)

    smtp.start()
    deliver_until_sent(runner, email)
    [mail] = smtp.wait_for(email)
    assert len(smtp.to(email)) == 1
    # ... and the flow completes with the token it carried.
    confirm = client.post(
        "/password-reset/confirm", json={"token": mail.token, "new_password": "after the outage"}
    )
    assert confirm.status_code == 204


def test_a_silent_server_costs_the_attempt_its_timeout_not_the_request(
    app, client, make_user, caplog
):
    email, _ = make_user()
    with socket.socket() as silent:  # accepts connections (backlog), never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        app.config.update(
            MAIL_SERVER="127.0.0.1", MAIL_PORT=silent.getsockname()[1], MAIL_IMMEDIATE_TIMEOUT=0.3
        )
        try:
            with caplog.at_level(logging.WARNING, logger="taskapp.mail.service"):
                request_reset(client, email)
        finally:
            app.config.update(MAIL_SERVER=None, MAIL_PORT=25, MAIL_IMMEDIATE_TIMEOUT=3.0)
    [message] = outbox(email)
    assert (message.sent_at, message.attempts) == (None, 1)
    assert message.last_error in {"TimeoutError", "SMTPServerDisconnected"}
    assert "not delivered" in caplog.text


def test_a_server_trickling_its_replies_is_cut_off_at_the_conversation_limit(
    app, client, make_user
):
    """A reply line within each timeout, for ever, never times one operation out: the
    conversation as a whole is cut at its limit, which the delivery lease outlasts."""
    email, _ = make_user()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)

        def trickle():  # a greeting that never ends, for 15 s at most
            connection, _ = listener.accept()
            with connection:
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    try:
                        connection.sendall(b"220-still greeting\r\n")
                    except OSError:
                        return  # the client hung up
                    time.sleep(0.02)

        server = threading.Thread(target=trickle, daemon=True)
        server.start()
        app.config.update(
            # Lines every 20 ms, well within the timeout even on a loaded machine.
            MAIL_SERVER="127.0.0.1",
            MAIL_PORT=listener.getsockname()[1],
            MAIL_IMMEDIATE_TIMEOUT=0.25,
        )
        try:
            started = time.monotonic()
            request_reset(client, email)  # its attempt after the response included
            elapsed = time.monotonic() - started
        finally:
            app.config.update(MAIL_SERVER=None, MAIL_PORT=25, MAIL_IMMEDIATE_TIMEOUT=3.0)
        server.join()
    limit = conversation_limit(0.25)
    assert limit <= elapsed < limit + 3
    assert delivery_lease(0.25).total_seconds() > limit
    [message] = outbox(email)
    assert (message.sent_at, message.failed_at, message.attempts) == (None, None, 1)
    assert message.last_error == "SMTPServerDisconnected"


def test_a_permanent_refusal_is_recorded_and_not_retried(client, runner, smtp, make_user):
    email, _ = make_user()
    smtp.refused.add(email)
    request_reset(client, email)
    [message] = outbox(email)
    assert message.failed_at is not None and message.sent_at is None
    assert message.last_error.startswith("refused")

    smtp.refused.clear()
    runner.invoke(args=["mail", "deliver", "--once"])
    assert outbox(email)[0].attempts == 1
    assert smtp.to(email) == []


@pytest.mark.parametrize("smtputf8", [False, True], ids=["without-smtputf8", "with-smtputf8"])
def test_an_address_the_server_can_never_take_fails_for_good_and_drops_its_link(
    app, client, runner, caplog, smtputf8
):
    """A non-ASCII local part (stored as signup normalised it) to a relay without SMTPUTF8
    is refused on every attempt: the first ends delivery, erases the link, and is logged."""
    sink = SmtpSink(enable_SMTPUTF8=smtputf8).start()
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=sink.port)
    email = f"jöe{unique_email()}"
    try:
        assert (
            client.post("/signup", json={"email": email, "password": "a passphrase"}).status_code
            == 201
        )
        db.session.execute(delete(OutboxMessage).where(OutboxMessage.recipient == email))
        db.session.commit()
        with caplog.at_level(logging.ERROR, logger="taskapp.mail.service"):
            request_reset(client, email)
        [message] = outbox(email)
        if smtputf8:
            assert message.sent_at is not None and len(sink.wait_for(email)) == 1
            return
        assert (message.sent_at, message.attempts) == (None, 1)
        assert message.failed_at is not None
        assert message.last_error == "refused: SMTPUTF8 not supported"
        assert (message.text_body, message.html_body) == ("", "")
        assert "refused for good" in caplog.text

        db.session.execute(update(OutboxMessage).values(next_attempt_at=func.now()))
        db.session.commit()
        assert runner.invoke(args=["mail", "deliver", "--once"]).exit_code == 0
        assert outbox(email)[0].attempts == 1
    finally:
        sink.stop()
        app.config.update(MAIL_SERVER=None, MAIL_PORT=25)


def test_a_message_still_failing_at_its_maximum_age_is_given_up_and_drops_its_link(
    app, client, runner, smtp, make_user, caplog
):
    email, _ = make_user()
    smtp.stop()
    request_reset(client, email)
    [message] = outbox(email)
    assert (message.failed_at, message.attempts) == (None, 1)
    assert message.text_body  # kept for the retry

    # A day and a half later, still refused: the next attempt would pass MAIL_MAX_AGE_HOURS.
    app.config["MAIL_MAX_AGE_HOURS"] = 36
    try:
        db.session.execute(
            update(OutboxMessage).values(
                created_at=func.now() - timedelta(hours=35, minutes=59), next_attempt_at=func.now()
            )
        )
        db.session.commit()
        with caplog.at_level(logging.ERROR, logger="taskapp.mail.service"):
            assert runner.invoke(args=["mail", "deliver", "--once"]).exit_code == 0
    finally:
        app.config["MAIL_MAX_AGE_HOURS"] = 48.0
    [message] = outbox(email)
    assert message.attempts == 2 and message.sent_at is None
    assert message.failed_at is not None
    assert message.last_error == "gave up: ConnectionRefusedError"
    assert (message.text_body, message.html_body) == ("", "")
    assert "given up after 2 attempt(s)" in caplog.text

    smtp.start()
    db.session.execute(update(OutboxMessage).values(next_attempt_at=func.now()))
    db.session.commit()
    assert runner.invoke(args=["mail", "deliver", "--once"]).exit_code == 0
    assert smtp.to(email) == [] and outbox(email)[0].attempts == 2


def test_an_unexpected_error_with_one_message_is_logged_and_retried_not_raised(
    app, client, runner, smtp, make_user, fast_retries, caplog
):
    email, _ = make_user()
    # Only reachable by editing the config (MAIL_FROM is checked at start): a header that
    # the email package refuses to write (an injection attempt, here).
    app.config["MAIL_FROM"] = "taskapp <a@example.com>\r\nBcc: victim@example.com"
    try:
        with caplog.at_level(logging.ERROR, logger="taskapp.mail.service"):
            request_reset(client, email)  # the answer is unaffected
    finally:
        app.config["MAIL_FROM"] = "taskapp <no-reply@localhost>"
    [message] = outbox(email)
    assert (message.sent_at, message.attempts, message.last_error) == (None, 1, "ValueError")
    assert "Traceback" in caplog.text or caplog.records[-1].exc_info
    assert smtp.received == []

    deliver_until_sent(runner, email)
    assert len(smtp.wait_for(email)) == 1
    assert "victim" not in str(smtp.received[0].message)


def test_retries_back_off_doubling_up_to_the_cap(app):
    app.config.update(MAIL_RETRY_SECONDS=30, MAIL_RETRY_MAX_SECONDS=3600)
    try:
        delays = [retry_delay(n).total_seconds() for n in (1, 2, 3, 7, 8, 100)]
    finally:
        app.config.update(MAIL_RETRY_SECONDS=30.0, MAIL_RETRY_MAX_SECONDS=3600.0)
    assert delays == [30, 60, 120, 1920, 3600, 3600]


def test_without_immediate_sending_the_worker_delivers(app, client, runner, smtp, make_user):
    email, _ = make_user()
    app.config["MAIL_SEND_IMMEDIATELY"] = False
    try:
        request_reset(client, email)
    finally:
        app.config["MAIL_SEND_IMMEDIATELY"] = True
    assert outbox(email)[0].attempts == 0

    result = runner.invoke(args=["mail", "deliver", "--once"])
    assert result.exit_code == 0, result.output
    assert "1 sent" in result.output
    assert len(smtp.wait_for(email)) == 1


def test_without_a_mail_server_messages_go_to_the_log(client, make_user, caplog):
    email, _ = make_user()
    with caplog.at_level(logging.INFO, logger="taskapp.mail.transport"):
        request_reset(client, email)
    [message] = outbox(email)
    assert message.sent_at is not None
    assert f"to {email}" in caplog.text and "/reset-password?token=" in caplog.text


@pytest.fixture(scope="session")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1: (cert path, key path)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_tls_with_login_verifies_the_server_certificate(
    app, client, make_user, certificate, monkeypatch, mode, fast_retries
):
    import ssl

    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    options = (
        {"tls_context": context, "require_starttls": True, "auth_required": True}
        # aiosmtpd does not count implicit TLS as TLS for auth_require_tls; it is TLS all along.
        if mode == "starttls"
        else {"ssl_context": context, "auth_require_tls": False}
    )
    sink = SmtpSink(authenticator=authenticator("mailer", "mail-secret"), **options).start()
    settings = {
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": sink.port,
        "MAIL_USE_TLS": mode == "starttls",
        "MAIL_USE_SSL": mode == "ssl",
        "MAIL_USERNAME": "mailer",
        "MAIL_PASSWORD": "mail-secret",
    }
    saved = {key: app.config[key] for key in settings}
    app.config.update(settings)
    try:
        # Not trusted yet: the certificate check fails, the message waits.
        email, _ = make_user()
        request_reset(client, email)
        assert outbox(email)[0].last_error == "SSLCertVerificationError"
        assert sink.to(email) == []

        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # now it is
        runner = app.test_cli_runner()
        deliver_until_sent(runner, email)
        assert len(sink.wait_for(email)) == 1
    finally:
        sink.stop()
        app.config.update(saved)


def worker_env(sink: SmtpSink) -> dict:
    """A `flask mail deliver` process on the test database (TASKAPP_ENV=testing)."""
    return {
        **os.environ,
        "TASKAPP_ENV": "testing",
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(sink.port),
    }


DELIVER = [sys.executable, "-m", "flask", "--app", "wsgi", "mail", "deliver"]


@pytest.mark.committing
def test_the_worker_delivers_as_messages_come_and_stops_on_sigterm(app):
    sink = SmtpSink().start()
    worker = subprocess.Popen(
        [*DELIVER, "--interval", "0.2"],
        cwd=PROJECT,
        env=worker_env(sink),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(2):  # the second arrives while the worker is idle
            email = unique_email()
            queue_mail(email, "password_reset_unknown", subject="Reset your taskapp password")
            db.session.commit()
            sink.wait_for(email)
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
        assert worker.returncode == 0
        assert output.count("delivered: 1 sent") == 2
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        sink.stop()


@pytest.mark.committing
def test_two_workers_never_send_the_same_message(app):
    sink = SmtpSink(delay=0.02).start()  # slow enough for the workers to overlap
    try:
        recipients = [unique_email() for _ in range(30)]
        for recipient in recipients:
            queue_mail(recipient, "password_reset_unknown", subject="Reset your taskapp password")
        db.session.commit()

        workers = [
            subprocess.Popen(
                [*DELIVER, "--once"],
                cwd=PROJECT,
                env=worker_env(sink),
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [worker.communicate(timeout=120)[0] for worker in workers]
        assert [worker.returncode for worker in workers] == [0, 0]

        received = sorted(r for item in sink.received for r in item.recipients)
        assert received == sorted(recipients)  # each exactly once
        sent = [int(output.split("delivered: ")[1].split(" sent")[0]) for output in outputs]
        assert sum(sent) == 30 and min(sent) > 0, outputs  # both took part
        assert (
            db.session.scalar(
                select(func.count(OutboxMessage.id)).where(OutboxMessage.sent_at.is_(None))
            )
            == 0
        )
    finally:
        sink.stop()


def test_the_worker_skips_messages_not_yet_due(app, runner, smtp):
    email = unique_email()
    queue_mail(email, "password_reset_unknown", subject="Reset your taskapp password")
    db.session.execute(
        update(OutboxMessage).values(next_attempt_at=datetime.now(UTC) + timedelta(hours=1))
    )
    db.session.commit()
    result = runner.invoke(args=["mail", "deliver", "--once"])
    assert "0 sent" in result.output
    assert smtp.to(email) == []


@pytest.mark.gunicorn
@pytest.mark.committing
def test_under_gunicorn_the_response_does_not_wait_for_the_smtp_server(app, tmp_path):
    email = unique_email()
    with socket.socket() as silent:  # connects, then never sends the SMTP greeting
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        env = {
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": str(silent.getsockname()[1]),
            "MAIL_IMMEDIATE_TIMEOUT": "25",
        }
        with gunicorn(tmp_path, workers=1, env=env) as server:
            # Had the worker sent before answering, it would wait 25 s for the greeting.
            response = call(server, "POST", "/password-reset", json={"email": email})
            assert response.status_code == 202
            # The attempt started after the answer and is still waiting for the greeting.
            silent.settimeout(10)
            connection, _ = silent.accept()
            connection.close()  # the server hangs up: the attempt fails, the message stays

            deadline = time.monotonic() + 15
            # (Its claim counts the attempt at once; its outcome comes with the hang-up.)
            while not (outbox(email) and outbox(email)[0].last_error):
                assert time.monotonic() < deadline, "the attempt was not recorded"
                time.sleep(0.05)
            [message] = outbox(email)
            assert (message.sent_at, message.attempts) == (None, 1)
            assert message.last_error == "SMTPServerDisconnected"
            assert call(server, "GET", "/healthz").status_code == 200


def test_production_warns_when_mail_would_not_reach_anyone(build_app, caplog):
    with caplog.at_level(logging.WARNING, logger="taskapp.mail.service"):
        build_app(ENV_NAME="production", MAIL_SERVER=None, PUBLIC_BASE_URL_SET=False)
    assert "MAIL_SERVER is not set" in caplog.text
    assert "PUBLIC_BASE_URL is not set" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="taskapp.mail.service"):
        build_app(ENV_NAME="production", MAIL_SERVER="smtp.example", PUBLIC_BASE_URL_SET=True)
    assert caplog.text == ""


@pytest.mark.parametrize(
    "variables, message",
    [
        ({"MAIL_USE_TLS": "true", "MAIL_USE_SSL": "true"}, "exclude each other"),
        ({"PUBLIC_BASE_URL": "javascript:alert(1)"}, "PUBLIC_BASE_URL"),
        ({"MAIL_TIMEOUT": "0"}, "MAIL_TIMEOUT"),
        ({"MAIL_FROM": "nobody"}, "MAIL_FROM"),
        ({"MAIL_TIMEOUT": "soon"}, "MAIL_TIMEOUT"),
        ({"PASSWORD_RESET_MINUTES": "-1"}, "PASSWORD_RESET_MINUTES"),
        ({"RATELIMIT_EMAIL_SEND_TARGET": "lots"}, "RATELIMIT_EMAIL_SEND_TARGET"),
    ],
)
def test_bad_mail_settings_stop_the_start(monkeypatch, variables, message):
    from config import TestingConfig

    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(RuntimeError, match=message):
        TestingConfig()


def test_mail_settings_from_the_environment(monkeypatch):
    from config import TestingConfig

    monkeypatch.setenv("MAIL_USE_SSL", "true")
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://app.example.com/")
    config = TestingConfig()
    assert (config.MAIL_PORT, config.PUBLIC_BASE_URL) == (465, "https://app.example.com")
    monkeypatch.setenv("MAIL_USE_SSL", "")
    monkeypatch.setenv("MAIL_USE_TLS", "1")
    assert TestingConfig().MAIL_PORT == 587


def test_a_delivered_message_keeps_no_link_and_old_ones_are_purged(
    app, client, runner, smtp, make_user
):
    email, _ = make_user()
    request_reset(client, email)
    token = smtp.wait_for(email)[-1].token
    [message] = outbox(email)
    assert message.sent_at is not None
    assert (message.text_body, message.html_body) == ("", "")
    # The token is now nowhere in the database, in the clear.
    for table in ("mail_outbox", "email_tokens"):
        for row in db.session.execute(db.text(f"SELECT * FROM {table}")):
            assert not any(token in str(value) for value in row), table

    result = runner.invoke(args=["mail", "purge", "--days", "1"])
    assert result.exit_code == 0 and "purged 0 message(s)" in result.output
    db.session.execute(update(OutboxMessage).values(sent_at=datetime.now(UTC) - timedelta(days=2)))
    from taskapp.auth.models import EmailToken

    db.session.execute(update(EmailToken).values(expires_at=datetime.now(UTC) - timedelta(days=2)))
    db.session.commit()
    result = runner.invoke(args=["mail", "purge", "--days", "1"])
    assert result.exit_code == 0, result.output
    # The reset token, and the verification token of signup.
    assert "purged 1 message(s) and 2 emailed token(s)" in result.output
    assert outbox(email) == []


@pytest.mark.committing
def test_a_relay_slower_than_the_idle_timeout_gets_each_message_once(app, build_app):
    """No transaction stays open while the relay takes its time (DB_IDLE_IN_TRANSACTION_TIMEOUT_MS
    would end it, and with it the record of a message the relay has): the immediate attempt and
    the worker's pass after it send the message once, and the outbox says so."""
    sink = SmtpSink(delay=1.0).start()  # answers DATA after a second: the idle timeout's triple
    timeouts = replace(
        app.config["DATABASE_TIMEOUTS"],
        idle_in_transaction_ms=300,
        command_idle_in_transaction_ms=300,
    )
    slow = build_app(DATABASE_TIMEOUTS=timeouts, MAIL_SERVER="127.0.0.1", MAIL_PORT=sink.port)
    email = unique_email()
    try:
        request_reset(slow.test_client(), email)  # the immediate attempt, after the response
        sink.wait_for(email)
        db.session.execute(update(OutboxMessage).values(next_attempt_at=func.now()))
        db.session.commit()  # were it still unsent, the worker's pass would take it now
        with slow.app_context():  # else the command runs in the test's app (its context)
            result = slow.test_cli_runner().invoke(args=["mail", "deliver", "--once"])
        assert result.exit_code == 0, result.output
        [message] = outbox(email)
        assert (message.attempts, message.last_error) == (1, None)
        assert message.sent_at is not None and message.text_body == ""
        assert len(sink.to(email)) == 1
    finally:
        sink.stop()


def test_an_attempt_that_outlived_its_lease_records_nothing_over_the_next_claim(
    app, runner, smtp, monkeypatch, caplog
):
    """A deliverer stalled past its lease (paused, or a clock gone wrong) while another claimed
    the message again and sent it: the late outcome (here a failure) is not recorded over it."""
    from taskapp.mail import service, transport

    email = unique_email()
    queue_mail(email, "password_reset_unknown", subject="Reset your taskapp password")
    db.session.commit()
    monkeypatch.setattr(service, "delivery_lease", lambda _timeout: timedelta(0))
    real_send = transport.send

    def stalled_send(message, **kwargs):
        monkeypatch.setattr(transport, "send", real_send)
        assert service.deliver_one() == "sent"  # another deliverer, once the lease is out
        raise ConnectionResetError  # this one's attempt then fails

    monkeypatch.setattr(transport, "send", stalled_send)
    with caplog.at_level(logging.WARNING, logger="taskapp.mail.service"):
        assert service.deliver_one() == "retry"
    [message] = outbox(email)
    assert (message.attempts, message.last_error, message.text_body) == (2, None, "")
    assert message.sent_at is not None
    assert "attempt 1 outlived its lease" in caplog.text
    assert len(smtp.to(email)) == 1
