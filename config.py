"""Application configuration, read from the environment when a config object is built."""

import os
from datetime import timedelta

_POSTGRES_PREFIXES = ("postgres://", "postgresql://")


def normalise_database_url(url: str) -> str:
    """Map the URLs users paste (``postgres://``, ``postgresql://``) to our psycopg2 driver."""
    for prefix in _POSTGRES_PREFIXES:
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        raise RuntimeError(f"{name} must be an integer") from None


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


class Config:
    """Settings shared by every environment; each value can be overridden by the environment."""

    ENV_NAME = "development"
    TESTING = False
    # Production refuses to start without JWT_SECRET_KEY; other environments may generate one.
    REQUIRE_JWT_SECRET = False
    DEFAULT_DATABASE_URL = "sqlite:///taskapp.db"  # relative to the instance folder

    def __init__(self) -> None:
        env = os.environ
        self.SQLALCHEMY_DATABASE_URI = normalise_database_url(
            env.get("DATABASE_URL") or self.DEFAULT_DATABASE_URL
        )
        self.SQLALCHEMY_ENGINE_OPTIONS = self._engine_options(self.SQLALCHEMY_DATABASE_URI)

        self.JWT_SECRET_KEY = env.get("JWT_SECRET_KEY") or None
        self.JWT_ALGORITHM = "HS256"
        self.JWT_TOKEN_LOCATION = ["headers"]
        self.JWT_ACCESS_TOKEN_EXPIRES = timedelta(minutes=_env_int("ACCESS_TOKEN_MINUTES", 15))
        self.JWT_REFRESH_TOKEN_EXPIRES = timedelta(days=_env_int("REFRESH_TOKEN_DAYS", 30))
        self.BCRYPT_ROUNDS = _env_int("BCRYPT_ROUNDS", 12)

        self.REDIS_URL = env.get("REDIS_URL") or None
        self.RATELIMIT_ENABLED = _env_bool("RATELIMIT_ENABLED", True)
        self.RATELIMIT_STORAGE_URI = self.REDIS_URL or "memory://"
        # Short socket timeouts so a dead Redis costs milliseconds, then the memory fallback.
        self.RATELIMIT_STORAGE_OPTIONS = (
            {"socket_timeout": 0.2, "socket_connect_timeout": 0.2} if self.REDIS_URL else {}
        )
        self.RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
        # Moving window: exact counts, no burst of 2x the limit across a window boundary.
        self.RATELIMIT_STRATEGY = "moving-window"
        self.RATELIMIT_HEADERS_ENABLED = True
        self.RATELIMIT_KEY_PREFIX = "taskapp"
        self.RATELIMIT_SIGNUP = env.get("RATELIMIT_SIGNUP") or "3 per minute"
        self.RATELIMIT_LOGIN = env.get("RATELIMIT_LOGIN") or "5 per minute"
        self.RATELIMIT_REFRESH = env.get("RATELIMIT_REFRESH") or "10 per minute"
        self.TRUSTED_PROXIES = _env_int("TRUSTED_PROXIES", 0)

        self.MAX_CONTENT_LENGTH = _env_int("MAX_CONTENT_LENGTH", 1024 * 1024)

        self.API_TITLE = "taskapp"
        self.API_VERSION = "1.0.0"
        self.OPENAPI_VERSION = "3.0.3"
        self.OPENAPI_URL_PREFIX = "/"
        self.OPENAPI_JSON_PATH = "openapi.json"
        self.OPENAPI_SWAGGER_UI_PATH = "/docs"
        # Swagger UI's assets come from the swagger-ui-bundle package, served by the app itself.
        self.OPENAPI_SWAGGER_UI_URL = "/docs/static/"
        self.API_SPEC_OPTIONS = {
            "info": {"description": "Multi-user task manager. See README.md for the flows."},
            "components": {
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
                }
            },
        }

    @staticmethod
    def _engine_options(url: str) -> dict:
        if not url.startswith("postgresql"):
            return {"pool_pre_ping": True}
        return {
            "pool_pre_ping": True,
            "pool_size": _env_int("DB_POOL_SIZE", 5),
            "max_overflow": _env_int("DB_MAX_OVERFLOW", 5),
            "pool_timeout": _env_int("DB_POOL_TIMEOUT", 5),
            "pool_recycle": 1800,
            "connect_args": {
                "connect_timeout": _env_int("DB_CONNECT_TIMEOUT", 3),
                "application_name": "taskapp",
                # Below the pool and gunicorn timeouts: a stuck query ends as a 503, not a kill.
                "options": "-c statement_timeout={} -c lock_timeout={}".format(
                    _env_int("DB_STATEMENT_TIMEOUT_MS", 5000),
                    _env_int("DB_LOCK_TIMEOUT_MS", 3000),
                ),
            },
        }


class DevelopmentConfig(Config):
    """Local development: embedded SQLite by default, a generated key if none is set."""


class TestingConfig(Config):
    """The test suite: TEST_DATABASE_URL / TEST_REDIS_URL, cheap bcrypt."""

    ENV_NAME = "testing"
    TESTING = True

    def __init__(self) -> None:
        super().__init__()
        env = os.environ
        self.SQLALCHEMY_DATABASE_URI = normalise_database_url(
            env.get("TEST_DATABASE_URL") or "sqlite:///:memory:"
        )
        self.SQLALCHEMY_ENGINE_OPTIONS = self._engine_options(self.SQLALCHEMY_DATABASE_URI)
        self.BCRYPT_ROUNDS = _env_int("BCRYPT_ROUNDS", 4)
        self.REDIS_URL = env.get("TEST_REDIS_URL") or None
        self.RATELIMIT_STORAGE_URI = self.REDIS_URL or "memory://"
        self.RATELIMIT_STORAGE_OPTIONS = (
            {"socket_timeout": 0.2, "socket_connect_timeout": 0.2} if self.REDIS_URL else {}
        )


class ProductionConfig(Config):
    """Production: JWT_SECRET_KEY is mandatory."""

    ENV_NAME = "production"
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
