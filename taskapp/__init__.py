"""taskapp: a multi-user task manager REST API. ``create_app`` builds the WSGI application."""

import logging
import os
import secrets
import tempfile

from flask import Blueprint, Flask
from swagger_ui_bundle import swagger_ui_path
from werkzeug.middleware.proxy_fix import ProxyFix

from config import Config, config_from_env
from taskapp import account, admin, auth, cli, database, health, labels, lists, recovery, tasks
from taskapp.auth import session_check
from taskapp.auth.jwt_callbacks import register_jwt_callbacks
from taskapp.browser import register_cors, register_security_headers
from taskapp.clientaddr import canonical_client_address
from taskapp.edges import register_edges
from taskapp.errors import register_error_handlers
from taskapp.extensions import api, db, jwt, limiter, migrate
from taskapp.mail import register_mail
from taskapp.observability import configure_logging, register_metrics, register_request_logging

log = logging.getLogger(__name__)

MIN_JWT_SECRET_BYTES = 32
# How many functions TaskApp.ensure_sync remembers: the hooks and views (about a hundred);
# past it, a function (one made per request, say) is looked at each time, as by Flask.
ENSURE_SYNC_MEMORY = 512


class TaskApp(Flask):
    """Flask, remembering ensure_sync's answer per function: Flask asks it of every hook and
    the view on every request (14 times for /healthz, about 8 % of that request), and whether
    a function is a coroutine function never changes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._sync_functions: dict = {}

    def ensure_sync(self, func):
        try:
            return self._sync_functions[func]
        except (KeyError, TypeError):  # TypeError: an unhashable callable
            sync = super().ensure_sync(func)
        if len(self._sync_functions) < ENSURE_SYNC_MEMORY:
            try:
                self._sync_functions[func] = sync
            except TypeError:
                pass
        return sync


def create_app(config: Config | None = None) -> Flask:
    """Build the app from ``config`` (default: the class chosen by TASKAPP_ENV)."""
    # No /static route: the API serves no files of its own (Swagger UI's come from a package).
    app = TaskApp(__name__, instance_relative_config=True, static_folder=None)
    # Else "//tasks" redirects to a URL built from the client's Host header. Set before any
    # rule is added: each rule takes the map's setting when added.
    app.url_map.merge_slashes = False
    app.config.from_object(config or config_from_env())
    configure_logging()
    os.makedirs(app.instance_path, exist_ok=True)
    _check_jwt_secret(app)
    # Inside ProxyFix: whatever address it takes from X-Forwarded-For is canonicalised too.
    app.wsgi_app = canonical_client_address(app.wsgi_app)
    if app.config["TRUSTED_PROXIES"] > 0:
        # Only then is X-Forwarded-For believed, and only the last N hops of it.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["TRUSTED_PROXIES"])
    # First, so the request id and start time exist before any extension can answer early,
    # and the access line and headers are added last, to the final response.
    register_request_hooks(app)
    register_extensions(app)
    database.init_app(app)
    session_check.init_app(app)
    register_mail(app)
    register_jwt_callbacks(jwt)
    register_blueprints(app)
    register_error_handlers(app)
    register_commands(app)
    # Last, so they know every route's methods, and outermost: they act before all else.
    register_edges(app)
    return app


def register_request_hooks(app: Flask) -> None:
    """Request ids and the access log, security headers, CORS, metrics."""
    register_request_logging(app)
    register_security_headers(app)
    register_cors(app)
    register_metrics(app)


def _check_jwt_secret(app: Flask) -> None:
    key = app.config.get("JWT_SECRET_KEY")
    if not key:
        if app.config.get("REQUIRE_JWT_SECRET"):
            raise RuntimeError("JWT_SECRET_KEY must be set in production")
        app.config["JWT_SECRET_KEY"] = _instance_secret(app)
        log.warning(
            "JWT_SECRET_KEY is not set: using a generated development key kept in %s",
            app.instance_path,
        )
    elif len(key.encode()) < MIN_JWT_SECRET_BYTES:
        raise RuntimeError(f"JWT_SECRET_KEY must be at least {MIN_JWT_SECRET_BYTES} bytes")


def _instance_secret(app: Flask) -> str:
    """A random key created once in the instance folder, shared by all local workers."""
    path = os.path.join(app.instance_path, "dev-jwt-secret")
    if not os.path.exists(path):
        # Written aside then linked into place: concurrent workers all end up with one key.
        fd, draft = tempfile.mkstemp(dir=app.instance_path)
        try:
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_urlsafe(48))
            try:
                os.link(draft, path)
            except FileExistsError:
                pass
        finally:
            os.unlink(draft)
    with open(path) as file:
        return file.read().strip()


def register_extensions(app: Flask) -> None:
    """Bind the extension instances to the app."""
    db.init_app(app)
    migrate.init_app(app, db)
    jwt.init_app(app)
    limiter.init_app(app)
    api.init_app(app)


def register_blueprints(app: Flask) -> None:
    """The API blueprints (documented in the spec) and Swagger UI's local assets."""
    areas = (auth.blp, account.blp, recovery.blp, tasks.blp, lists.blp, labels.blp)
    for blueprint in (*areas, admin.blp, health.blp):
        api.register_blueprint(blueprint)
    app.register_blueprint(
        Blueprint(
            "swagger_ui_assets",
            __name__,
            static_folder=str(swagger_ui_path),
            static_url_path="/docs/static",
        )
    )


def register_commands(app: Flask) -> None:
    """Flask CLI commands."""
    cli.register(app)
