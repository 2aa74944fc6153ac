"""Application configuration, read from the environment when a config object is built."""

import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

from limits import parse_many
from redis.backoff import NoBackoff
from redis.retry import Retry

_POSTGRES_PREFIXES = ("postgres://", "postgresql://")
# The data of the embedded PostgreSQL servers of `make run` and of the test suite (git ignores
# instance/): the defaults of DATABASE_URL and TEST_DATABASE_URL outside production.
EMBEDDED_RUN_DATA = Path(__file__).resolve().parent / "instance" / "postgres"
EMBEDDED_TEST_DATA = EMBEDDED_RUN_DATA.with_name("postgres-test")


# libpq's multi-host form: scheme://[userinfo@]host1:port1,host2:port2/database[?query]
_MULTI_HOST = re.compile(r"(?P<head>[^:/]+://(?:[^@/?#]*@)?)(?P<hosts>[^/?#]*,[^/?#]*)(?P<rest>.*)")


def embedded_database_url(data_dir: Path, database: str) -> str:
    """The URL of ``database`` on the embedded server whose data is ``data_dir``
    (taskapp/embedded.py): it listens on a socket in that directory, on no TCP port."""
    return f"postgresql+psycopg2://postgres@/{database}?host={quote(str(data_dir), safe='/')}"


def database_url(value: str | None, config: "Config") -> str:
    """The SQLAlchemy URL of ``value``, else of the config's embedded default; either must
    name a PostgreSQL database, the one engine taskapp runs on."""
    url = normalise_database_url((value or "").strip() or config.DEFAULT_DATABASE_URL or "")
    if not url:
        raise RuntimeError(f"{config.DATABASE_URL_VAR} must be set in {config.ENV_NAME}")
    if not url.startswith("postgresql+psycopg2://"):
        raise RuntimeError(f"{config.DATABASE_URL_VAR} must be a PostgreSQL URL (postgresql://...)")
    return url


def normalise_database_url(url: str) -> str:
    """Map the URLs users paste (``postgres://``, ``postgresql://``) to our psycopg2 driver.

    libpq's multi-host form (``postgresql://u@h1:5432,h2:5432/db?target_session_attrs=
    read-write``, as ``pg_autoctl show uri`` prints it) becomes SQLAlchemy's spelling of the
    same thing (``postgresql+psycopg2://u@/db?host=h1:5432&host=h2:5432&...``): SQLAlchemy's
    URL parser takes ``h1:5432,h2`` for one host with a port that is not a number.
    """
    for prefix in _POSTGRES_PREFIXES:
        if url.startswith(prefix):
            url = "postgresql+psycopg2://" + url[len(prefix) :]
            break
    match = _MULTI_HOST.fullmatch(url)
    if match is None or not url.startswith("postgresql"):
        return url
    path, _, query = match["rest"].partition("?")
    hosts = "&".join(f"host={host.strip()}" for host in match["hosts"].split(",") if host.strip())
    return f"{match['head']}{path or '/'}?{hosts}" + (f"&{query}" if query else "")


def _env_parsed(name: str, default, parse, kind: str):
    """The variable ``name`` read by ``parse``, ``default`` when unset or empty."""
    value = os.environ.get(name)
    try:
        return parse(value) if value not in (None, "") else default
    except ValueError:
        raise RuntimeError(f"{name} must be {kind}") from None


def _env_int(name: str, default: int) -> int:
    return _env_parsed(name, default, int, "an integer")


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _env_float(name: str, default: float) -> float:
    return _env_parsed(name, default, float, "a number")


def _env_base_url(name: str, default: str) -> str:
    """An absolute http(s) URL without a trailing slash (the front end's, for email links)."""
    value = (os.environ.get(name) or "").strip().rstrip("/") or default
    if not _BASE_URL.fullmatch(value):
        raise RuntimeError(f"{name}: {value!r} is not a URL like https://app.example.com")
    return value


def _env_limit(name: str, default: str) -> str:
    """A rate-limit string ("5 per minute"), checked now: a typo must stop the start-up.

    Flask-Limiter parses limits per request and takes any error there for a storage
    outage, so an unparsable string would otherwise end as 500s on its route.
    """
    value = (os.environ.get(name) or "").strip() or default
    try:
        parse_many(value)
    except ValueError:
        raise RuntimeError(f"{name} must be a rate limit such as {default!r}") from None
    return value


def ratelimit_storage_options(redis_url: str | None) -> dict:
    """redis-py options for the limiter: a dead Redis must cost milliseconds, not seconds."""
    if not redis_url:
        return {}
    return {
        # Past these, the request is counted in per-process memory (the fallback) instead.
        "socket_timeout": 0.2,
        "socket_connect_timeout": 0.2,
        # One immediate retry on a fresh connection rides over a Redis restart or an idle
        # connection a firewall dropped; never a backoff sleep inside a request.
        "retry": Retry(NoBackoff(), 1),
    }


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")
_BASE_URL = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?")


def _env_list(name: str) -> list[str]:
    """A comma-separated list, blanks dropped."""
    return [part.strip() for part in os.environ.get(name, "").split(",") if part.strip()]


def _env_origins(name: str) -> list[str]:
    """Comma-separated browser origins (``https://app.example.com``), or ``*`` for any."""
    origins = _env_list(name)
    for origin in origins:
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise RuntimeError(f"{name}: {origin!r} is not an origin like https://app.example.com")
    return origins


@dataclass(frozen=True)
class DatabaseTimeouts:
    """PostgreSQL timeouts, ordered so that whatever hangs ends as a 503 in the app, fast.

    lock_timeout and statement_timeout < pool timeout: a request queued for a connection
    outlasts a statement of the request holding it (the bulk timeout, for a handful of rare
    writes, may exceed it: a request queued behind one may get a 503). All of them <
    gunicorn's worker timeout (checked by gunicorn.conf.py against ``longest_wait``): a stuck
    query is answered with a 503, never cut short by a killed worker (a 502 at the proxy).

    The keepalive and tcp_user_timeout values bound the wait on a server that vanished
    without closing its sockets (a host lost, a partition): statement_timeout cannot, since
    it is the server that enforces it.
    """

    connect: int  # seconds to open a connection (DB_CONNECT_TIMEOUT)
    statement_ms: int  # DB_STATEMENT_TIMEOUT_MS
    lock_ms: int  # DB_LOCK_TIMEOUT_MS; 0 leaves lock waits to statement_timeout
    pool: int  # seconds to wait for a pooled connection (DB_POOL_TIMEOUT)
    keepalives_idle: int = 5  # DB_KEEPALIVES_IDLE: seconds of silence before the first probe
    keepalives_interval: int = 2  # DB_KEEPALIVES_INTERVAL: seconds between probes
    keepalives_count: int = 3  # DB_KEEPALIVES_COUNT: unanswered probes that end it
    tcp_user_timeout_ms: int = 10000  # DB_TCP_USER_TIMEOUT_MS: unacknowledged data
    # DB_BULK_STATEMENT_TIMEOUT_MS: the statement timeout of the few writes whose cost follows
    # the user's data (deleting a list, an account; renaming or deleting a label)
    bulk_statement_ms: int = 15000
    # DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: a request's transaction left idle this long (its app
    # waiting on Python work between statements) is ended by the server, its locks released
    idle_in_transaction_ms: int = 5000
    # DB_COMMAND_IDLE_IN_TRANSACTION_TIMEOUT_MS: the same, for transactions outside requests
    # (flask commands: the seed builds 50,000-row batches in Python between its COPYs)
    command_idle_in_transaction_ms: int = 60000

    @property
    def dead_server(self) -> float:
        """Seconds until a connection to a server that vanished is given up, at most."""
        probes = self.keepalives_idle + self.keepalives_interval * self.keepalives_count
        return max(probes, self.tcp_user_timeout_ms / 1000)

    @property
    def longest_wait(self) -> float:
        """Seconds one request can wait on the database before it fails: pool, connect, query
        (or a server gone silent)."""
        statement = max(self.statement_ms, self.bulk_statement_ms) / 1000
        return self.pool + self.connect + max(statement, self.dead_server)

    def connect_args(self) -> dict:
        """libpq connection parameters: the connect timeout, TCP keepalives, tcp_user_timeout.

        No ``options`` (startup ``-c`` settings): PgBouncer refuses them, and they would be
        session state; the statement and lock timeouts are set per transaction instead
        (taskapp.database).
        """
        return {
            "connect_timeout": self.connect,
            "keepalives": 1,
            "keepalives_idle": self.keepalives_idle,
            "keepalives_interval": self.keepalives_interval,
            "keepalives_count": self.keepalives_count,
            "tcp_user_timeout": self.tcp_user_timeout_ms,
        }


def database_timeouts() -> DatabaseTimeouts:
    """The DB_* timeouts from the environment; RuntimeError when they are not in order."""
    timeouts = DatabaseTimeouts(
        connect=_env_int("DB_CONNECT_TIMEOUT", 3),
        statement_ms=_env_int("DB_STATEMENT_TIMEOUT_MS", 5000),
        lock_ms=_env_int("DB_LOCK_TIMEOUT_MS", 3000),
        pool=_env_int("DB_POOL_TIMEOUT", 6),
        keepalives_idle=_env_int("DB_KEEPALIVES_IDLE", 5),
        keepalives_interval=_env_int("DB_KEEPALIVES_INTERVAL", 2),
        keepalives_count=_env_int("DB_KEEPALIVES_COUNT", 3),
        tcp_user_timeout_ms=_env_int("DB_TCP_USER_TIMEOUT_MS", 10000),
        bulk_statement_ms=_env_int("DB_BULK_STATEMENT_TIMEOUT_MS", 15000),
        idle_in_transaction_ms=_env_int("DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", 5000),
        command_idle_in_transaction_ms=_env_int("DB_COMMAND_IDLE_IN_TRANSACTION_TIMEOUT_MS", 60000),
    )
    # 0 would mean "wait for ever" to libpq (connect) and PostgreSQL (the others).
    positive = (
        timeouts.connect,
        timeouts.statement_ms,
        timeouts.idle_in_transaction_ms,
        timeouts.command_idle_in_transaction_ms,
    )
    if min(positive) <= 0 or timeouts.lock_ms < 0:
        raise RuntimeError(
            "DB_CONNECT_TIMEOUT, DB_STATEMENT_TIMEOUT_MS, DB_IDLE_IN_TRANSACTION_TIMEOUT_MS and "
            "DB_COMMAND_IDLE_IN_TRANSACTION_TIMEOUT_MS must be positive"
        )
    if max(timeouts.statement_ms, timeouts.lock_ms) >= timeouts.pool * 1000:
        raise RuntimeError(
            "DB_STATEMENT_TIMEOUT_MS and DB_LOCK_TIMEOUT_MS must be below DB_POOL_TIMEOUT"
        )
    if timeouts.bulk_statement_ms < timeouts.statement_ms:
        raise RuntimeError("DB_BULK_STATEMENT_TIMEOUT_MS must not be below DB_STATEMENT_TIMEOUT_MS")
    # 0 would leave the kernel's defaults: two hours of silence before the first probe.
    probes = (timeouts.keepalives_idle, timeouts.keepalives_interval, timeouts.keepalives_count)
    if min(probes) <= 0 or timeouts.tcp_user_timeout_ms <= 0:
        raise RuntimeError(
            "DB_KEEPALIVES_IDLE, DB_KEEPALIVES_INTERVAL, DB_KEEPALIVES_COUNT and "
            "DB_TCP_USER_TIMEOUT_MS must be positive"
        )
    return timeouts


# The per-user limits on stored rows (0: no limit).
QUOTA_SETTINGS = (
    "MAX_TASKS_PER_USER",
    "LISTS_PER_USER",
    "LABELS_PER_USER",
    "IDEMPOTENCY_KEYS_PER_USER",
    "SESSIONS_PER_USER",
)


class Config:
    """Settings shared by every environment; each value can be overridden by the environment."""

    ENV_NAME = "development"
    TESTING = False
    # Production refuses to start without JWT_SECRET_KEY; other environments may generate one.
    REQUIRE_JWT_SECRET = False
    # Where the database and Redis URLs come from (the tests read TEST_* instead); without
    # one, the embedded server that `make run` starts (taskapp/embedded.py).
    DATABASE_URL_VAR = "DATABASE_URL"
    DEFAULT_DATABASE_URL = embedded_database_url(EMBEDDED_RUN_DATA, "taskapp")
    REDIS_URL_VAR = "REDIS_URL"
    DEFAULT_BCRYPT_ROUNDS = 12

    def __init__(self) -> None:
        env = os.environ
        self.SQLALCHEMY_DATABASE_URI = database_url(env.get(self.DATABASE_URL_VAR), self)
        self.SQLALCHEMY_ENGINE_OPTIONS = self._engine_options()
        # Set per transaction (taskapp.database).
        self.DATABASE_TIMEOUTS = database_timeouts()

        self.JWT_SECRET_KEY = env.get("JWT_SECRET_KEY") or None
        self.JWT_ALGORITHM = "HS256"
        self.JWT_TOKEN_LOCATION = ["headers"]
        self.JWT_ACCESS_TOKEN_EXPIRES = timedelta(minutes=_env_int("ACCESS_TOKEN_MINUTES", 15))
        self.JWT_REFRESH_TOKEN_EXPIRES = timedelta(days=_env_int("REFRESH_TOKEN_DAYS", 30))
        # A session not refreshed for this long can no longer refresh (idle expiry).
        self.REFRESH_IDLE_DAYS = _env_int("REFRESH_IDLE_DAYS", 7)
        # Hashes of a lower cost are redone at the user's next successful login.
        self.BCRYPT_ROUNDS = _env_int("BCRYPT_ROUNDS", self.DEFAULT_BCRYPT_ROUNDS)
        # Limits on the rows a user makes the server store (taskapp/quotas.py); 0 for none.
        # Tasks one user may own (subtasks included). Checked against the kept counts (free).
        self.MAX_TASKS_PER_USER = _env_int("MAX_TASKS_PER_USER", 100_000)
        # Task lists and labels a user may have (a write that would make more answers 409).
        self.LISTS_PER_USER = _env_int("LISTS_PER_USER", 100)
        self.LABELS_PER_USER = _env_int("LABELS_PER_USER", 1000)
        # Idempotency-Keys a user may have in use (younger than IDEMPOTENCY_KEY_HOURS).
        self.IDEMPOTENCY_KEYS_PER_USER = _env_int("IDEMPOTENCY_KEYS_PER_USER", 1000)
        # Unrevoked sessions a user may have: a login beyond it revokes the oldest.
        self.SESSIONS_PER_USER = _env_int("SESSIONS_PER_USER", 50)
        if self.REFRESH_IDLE_DAYS <= 0:
            raise RuntimeError("REFRESH_IDLE_DAYS must be positive")
        for name in QUOTA_SETTINGS:
            if getattr(self, name) < 0:
                raise RuntimeError(f"{name} must not be negative (0: no limit)")

        self.REDIS_URL = env.get(self.REDIS_URL_VAR) or None
        self.RATELIMIT_ENABLED = _env_bool("RATELIMIT_ENABLED", True)
        self.RATELIMIT_STORAGE_URI = self.REDIS_URL or "memory://"
        self.RATELIMIT_STORAGE_OPTIONS = ratelimit_storage_options(self.REDIS_URL)
        # Redis unreachable: count in per-process memory, with the same limits, until
        # Flask-Limiter's periodic check finds it again (it logs both transitions, once).
        self.RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
        # The switch is per process, but each thread meets the outage on its own: a request
        # already waiting on Redis when another thread switched fails after the switch, and
        # Flask-Limiter re-raises that error (a 500) unless it swallows it. Swallowed, that
        # request goes uncounted (at most one per other thread, per outage) and is logged.
        self.RATELIMIT_SWALLOW_ERRORS = True
        # Moving window: exact counts, no burst of 2x the limit across a window boundary.
        self.RATELIMIT_STRATEGY = "moving-window"
        self.RATELIMIT_HEADERS_ENABLED = True
        self.RATELIMIT_KEY_PREFIX = "taskapp"
        self.RATELIMIT_SIGNUP = _env_limit("RATELIMIT_SIGNUP", "3 per minute")
        self.RATELIMIT_LOGIN = _env_limit("RATELIMIT_LOGIN", "5 per minute")
        # Per submitted email, from any address: slows credential stuffing of one account.
        self.RATELIMIT_LOGIN_EMAIL = _env_limit("RATELIMIT_LOGIN_EMAIL", "10 per hour")
        self.RATELIMIT_REFRESH = _env_limit("RATELIMIT_REFRESH", "10 per minute")
        # Per client address, across the routes that check the caller's password (which also
        # spend the account's RATELIMIT_LOGIN_EMAIL count): as strict as /login.
        self.RATELIMIT_PASSWORD_CHECK = _env_limit("RATELIMIT_PASSWORD_CHECK", "5 per minute")
        # Per user, across every route that creates, changes or deletes tasks.
        self.RATELIMIT_TASK_WRITES = _env_limit("RATELIMIT_TASK_WRITES", "120 per minute")
        self.TRUSTED_PROXIES = _env_int("TRUSTED_PROXIES", 0)
        # The routes that send mail: per client address, and per target address (any client).
        self.RATELIMIT_EMAIL_SEND = _env_limit("RATELIMIT_EMAIL_SEND", "5 per minute")
        self.RATELIMIT_EMAIL_SEND_TARGET = _env_limit("RATELIMIT_EMAIL_SEND_TARGET", "3 per hour")
        # The routes that take an emailed token, per client address.
        self.RATELIMIT_EMAIL_CONFIRM = _env_limit("RATELIMIT_EMAIL_CONFIRM", "10 per minute")

        self.init_mail(env)

        self.MAX_CONTENT_LENGTH = _env_int("MAX_CONTENT_LENGTH", 1024 * 1024)
        # How long an Idempotency-Key is remembered (and its response replayed) for its user.
        self.IDEMPOTENCY_KEY_HOURS = _env_int("IDEMPOTENCY_KEY_HOURS", 24)
        # How long deleted tasks are kept as tombstones for GET /tasks/changes; a sync token
        # older than this is refused (410) and the client resynchronises in full.
        self.SYNC_RETENTION_DAYS = _env_int("SYNC_RETENTION_DAYS", 30)

        self.CORS_ORIGINS = _env_origins("CORS_ORIGINS")
        # Host names the app answers to (".example.com" for every subdomain); any other Host
        # is a 400. Unset: any Host (the app never builds a URL from it).
        self.TRUSTED_HOSTS = _env_list("TRUSTED_HOSTS") or None
        self.METRICS_ENABLED = _env_bool("METRICS_ENABLED", False)
        # Read only by `flask users create-admin` (automation); it prompts when unset.
        self.ADMIN_PASSWORD = env.get("TASKAPP_ADMIN_PASSWORD") or None

        self.API_TITLE = "taskapp"
        self.API_VERSION = "1.0.0"
        self.OPENAPI_VERSION = "3.0.3"
        self.OPENAPI_URL_PREFIX = "/"
        self.OPENAPI_JSON_PATH = "openapi.json"
        self.OPENAPI_SWAGGER_UI_PATH = "/docs"
        # Swagger UI's assets come from the swagger-ui-bundle package, served by the app itself.
        self.OPENAPI_SWAGGER_UI_URL = "/docs/static/"
        self.API_SPEC_OPTIONS = {
            "info": {
                "description": "Multi-user task manager. Each operation here is its route's "
                "contract; what spans routes (errors, authentication, pagination, conditional "
                "requests, idempotency, sync, rate limits) is docs/api.md.\n\n"
                "Every error is the JSON envelope {code, status, message?, errors?}. A method "
                "the path does not serve is a 405 with Allow (answered before the app when no "
                "route serves it at all). With "
                "TRUSTED_HOSTS set, a request for any other Host is a 400. A 422 lists at most "
                "20 errors per object, names cut to 100 characters."
            },
            "components": {
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
                }
            },
        }

    def init_mail(self, env) -> None:
        """Account email (links, token lifetimes) and SMTP delivery settings."""
        # The front end's address: every link in an email starts with it, never with the
        # request's Host header (which a client chooses).
        self.PUBLIC_BASE_URL = _env_base_url("PUBLIC_BASE_URL", "http://localhost:3000")
        self.PUBLIC_BASE_URL_SET = bool((env.get("PUBLIC_BASE_URL") or "").strip())
        self.PASSWORD_RESET_MINUTES = _env_int("PASSWORD_RESET_MINUTES", 30)
        self.EMAIL_TOKEN_HOURS = _env_int("EMAIL_TOKEN_HOURS", 48)
        self.REQUIRE_VERIFIED_EMAIL = _env_bool("REQUIRE_VERIFIED_EMAIL", False)
        # No MAIL_SERVER: messages are written to the log instead (development).
        self.MAIL_SERVER = (env.get("MAIL_SERVER") or "").strip() or None
        self.MAIL_USE_SSL = _env_bool("MAIL_USE_SSL", False)
        self.MAIL_USE_TLS = _env_bool("MAIL_USE_TLS", False)
        if self.MAIL_USE_SSL and self.MAIL_USE_TLS:
            raise RuntimeError("MAIL_USE_SSL and MAIL_USE_TLS exclude each other")
        default_port = 465 if self.MAIL_USE_SSL else 587 if self.MAIL_USE_TLS else 25
        self.MAIL_PORT = _env_int("MAIL_PORT", default_port)
        self.MAIL_USERNAME = env.get("MAIL_USERNAME") or None
        self.MAIL_PASSWORD = env.get("MAIL_PASSWORD") or None
        self.MAIL_FROM = (env.get("MAIL_FROM") or "").strip() or "taskapp <no-reply@localhost>"
        if "@" not in self.MAIL_FROM or any(char in self.MAIL_FROM for char in "\r\n"):
            raise RuntimeError("MAIL_FROM must be an address such as 'taskapp <no-reply@...>'")
        self.MAIL_TIMEOUT = _env_float("MAIL_TIMEOUT", 10.0)
        # Right after the response, one attempt with a short timeout; the worker retries.
        self.MAIL_SEND_IMMEDIATELY = _env_bool("MAIL_SEND_IMMEDIATELY", True)
        self.MAIL_IMMEDIATE_TIMEOUT = _env_float("MAIL_IMMEDIATE_TIMEOUT", 3.0)
        # Retry n waits MAIL_RETRY_SECONDS * 2**(n-1), at most MAIL_RETRY_MAX_SECONDS.
        self.MAIL_RETRY_SECONDS = _env_float("MAIL_RETRY_SECONDS", 30.0)
        self.MAIL_RETRY_MAX_SECONDS = _env_float("MAIL_RETRY_MAX_SECONDS", 3600.0)
        # A message still unsent this long after it was queued is given up (its bodies, and
        # the link in them, erased): by then the link it carries has expired anyway.
        self.MAIL_MAX_AGE_HOURS = _env_float("MAIL_MAX_AGE_HOURS", 48.0)
        if self.MAIL_MAX_AGE_HOURS <= 0:
            raise RuntimeError("MAIL_MAX_AGE_HOURS must be positive")
        if min(self.MAIL_TIMEOUT, self.MAIL_IMMEDIATE_TIMEOUT) <= 0:
            raise RuntimeError("MAIL_TIMEOUT and MAIL_IMMEDIATE_TIMEOUT must be positive")
        if self.PASSWORD_RESET_MINUTES <= 0 or self.EMAIL_TOKEN_HOURS <= 0:
            raise RuntimeError("PASSWORD_RESET_MINUTES and EMAIL_TOKEN_HOURS must be positive")

    @staticmethod
    def _engine_options() -> dict:
        timeouts = database_timeouts()
        return {
            # A pooled connection the server dropped (restart, pg_terminate_backend) is found
            # and replaced at checkout, unseen by the request: by a poll of its socket
            # (taskapp.database), as a SELECT 1 would cost a round trip per request.
            "pool_pre_ping": False,
            "pool_size": _env_int("DB_POOL_SIZE", 5),
            "max_overflow": _env_int("DB_MAX_OVERFLOW", 5),
            "pool_timeout": timeouts.pool,
            "pool_recycle": 1800,
            "connect_args": {**timeouts.connect_args(), "application_name": "taskapp"},
        }


class DevelopmentConfig(Config):
    """Local development: a generated signing key if none is set."""


class TestingConfig(Config):
    """The test suite: TEST_DATABASE_URL / TEST_REDIS_URL, cheap bcrypt."""

    ENV_NAME = "testing"
    TESTING = True
    DATABASE_URL_VAR = "TEST_DATABASE_URL"
    DEFAULT_DATABASE_URL = embedded_database_url(EMBEDDED_TEST_DATA, "taskapp_test")
    REDIS_URL_VAR = "TEST_REDIS_URL"
    DEFAULT_BCRYPT_ROUNDS = 4


class ProductionConfig(Config):
    """Production: JWT_SECRET_KEY and DATABASE_URL are mandatory."""

    ENV_NAME = "production"
    DEFAULT_DATABASE_URL = None
    REQUIRE_JWT_SECRET = True


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def config_from_env() -> Config:
    """Build the config object selected by TASKAPP_ENV."""
    name = (os.environ.get("TASKAPP_ENV") or "development").strip().lower()
    try:
        return CONFIGS[name]()
    except KeyError:
        raise RuntimeError(f"TASKAPP_ENV must be one of {', '.join(CONFIGS)}") from None
