"""Liveness and readiness probes."""

import logging

from flask import current_app, request
from flask.views import MethodView
from marshmallow import Schema, fields
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from taskapp.api import Blueprint
from taskapp.extensions import db, limiter

log = logging.getLogger(__name__)

LIVE = {"status": "ok"}
READY = {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}

blp = Blueprint("health", __name__, description="Liveness and readiness probes")
PROBES = frozenset({"health.Liveness", "health.Readiness"})


@limiter.request_filter
def _is_probe() -> bool:
    """Probes are never limited (they declare no limit); filtered first, they also skip the
    limiter's resolution of the limits that apply: /healthz stays the cheapest route."""
    return request.endpoint in PROBES


class LivenessSchema(Schema):
    status = fields.String(required=True, metadata={"example": "ok"})


class ReadinessSchema(Schema):
    status = fields.String(required=True, metadata={"description": "ready or unready"})
    checks = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={
            "description": "database: ok|down; redis: ok|degraded|not configured|disabled "
            "(degraded: rate limits are counted per process until Redis answers again)"
        },
    )


def check_dependencies() -> dict:
    """Probe PostgreSQL (required) and Redis (optional: down means per-process limits)."""
    checks = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except SQLAlchemyError as error:
        log.warning("readiness: database check failed: %s", type(error).__name__)
        checks["database"] = "down"
    finally:
        db.session.rollback()
    if not limiter.enabled:
        # RATELIMIT_ENABLED=false: nothing reads Redis, so its state is beside the point.
        checks["redis"] = "disabled"
    elif current_app.config.get("REDIS_URL"):
        try:
            healthy = limiter.storage.check()
        except Exception:  # noqa: BLE001 - any storage failure means degraded
            healthy = False
        checks["redis"] = "ok" if healthy else "degraded"
    else:
        checks["redis"] = "not configured"
    return checks


@blp.route("/healthz")
class Liveness(MethodView):
    @blp.response(200, LivenessSchema, example=LIVE)
    @blp.doc(operationId="check_liveness")
    def get(self):
        """Liveness: 200 while the process serves

        No authentication, no rate limit; it touches neither the database nor Redis.
        """
        # The JSON of LIVE, as the schema would dump it: a constant needs no dumping.
        return current_app.json.response(LIVE)


@blp.route("/readyz")
class Readiness(MethodView):
    @blp.response(200, ReadinessSchema, example=READY)
    @blp.alt_response(
        503,
        schema=ReadinessSchema,
        description="PostgreSQL is unreachable: take the instance out of rotation",
        example={"status": "unready", "checks": {"database": "down", "redis": "ok"}},
    )
    @blp.doc(operationId="check_readiness")
    def get(self):
        """Readiness: 503 when the database does not answer

        No authentication, no rate limit. `redis` is `ok`, `degraded` (Redis unreachable: rate
        limits are counted per process until it answers again; still 200), `not configured`
        or `disabled` (`RATELIMIT_ENABLED=false`).
        """
        checks = check_dependencies()
        ready = checks["database"] == "ok"
        body = {"status": "ready" if ready else "unready", "checks": checks}
        return body, 200 if ready else 503
