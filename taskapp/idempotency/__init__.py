"""Idempotency-Key (draft-ietf-httpapi-idempotency-key-header) for non-idempotent writes.

``idempotent(blp)`` goes on a view, anywhere among its decorators: with the header, the first
request's response is stored with the key, in the transaction of the work itself, and a retry
gets it back (``Idempotent-Replayed: true``) without the work being done again; without it,
nothing changes.
"""

import functools
import hashlib
import re
from collections.abc import Callable
from datetime import timedelta

from flask import current_app, request
from flask_jwt_extended import current_user
from flask_smorest import abort

from taskapp.api import IDEMPOTENCY, Blueprint, compose
from taskapp.extensions import db
from taskapp.idempotency import service
from taskapp.transactions import held_commits

HEADER = "Idempotency-Key"
# The draft's key is a Structured Field string ("..."); a bare value is taken too, as most
# clients send one. Either way 1 to 255 printable ASCII characters; a bare one neither starts
# with a quote nor has white space at its ends (HTTP strips it).
_BARE_KEY = r"[\x21\x23-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?"
_QUOTED_KEY = r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\]){1,255})"'
KEY_PATTERN = re.compile(f"{_BARE_KEY}|{_QUOTED_KEY}")
# What a replay gives back of the first response; the rest (request id, rate limits, security
# headers) belongs to each response of its own.
REPLAYED_HEADERS = ("Content-Type", "Location", "ETag", "Content-Location")

KEY_PARAMETER = {
    "in": "header",
    "name": HEADER,
    "required": False,
    "description": "Makes retries of this write safe: 1 to 255 printable ASCII characters "
    '(a bare value or a quoted string, "..."), unique per request, e.g. a UUID. A retry with '
    "the same key and the same request (method, path, query and body bytes) gets the first "
    "response again, with Idempotent-Replayed: true, and nothing is done twice; with another "
    "request it is a 422; while the first is still in flight, a 409. Keys are per user and "
    "kept IDEMPOTENCY_KEY_HOURS (24 by default); a user may have IDEMPOTENCY_KEYS_PER_USER "
    "(1000) in use, and a request with a new key beyond is a 409 naming that limit (without "
    "a key it goes through). A request that fails keeps no key.",
    "schema": {"type": "string", "pattern": f"^(?:{KEY_PATTERN.pattern})$"},
}
REPLAYED_HEADER = {
    "Idempotent-Replayed": {
        "description": "true when this is the stored response of an earlier request with "
        "the same Idempotency-Key",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


def idempotent(blp: Blueprint) -> Callable:
    """Honour an Idempotency-Key header on the view; documents the header, the replay header
    on its success responses, 400, 409 (unless the view has its own) and 422. Runs after
    authentication and the limits, around everything else (``api.IDEMPOTENCY``), so it stores
    the response as sent, whatever the order of the decorators."""
    return compose(
        blp.guard(IDEMPOTENCY, _honour_key),
        blp.header_parameter(KEY_PARAMETER),
        blp.success_headers(REPLAYED_HEADER),
        blp.alt_response(400, response="BAD_REQUEST"),
        # A view with a 409 of its own names the in-flight case in it: one 409 per route.
        blp.unless_documented(409, "CONFLICT"),
        blp.alt_response(422, response="UNPROCESSABLE_ENTITY"),
    )


def _honour_key(view: Callable) -> Callable:
    @functools.wraps(view)
    def with_key(*args, **kwargs):
        key = _parsed_key(request.headers.get(HEADER))
        if key is None:
            return view(*args, **kwargs)
        hours = current_app.config["IDEMPOTENCY_KEY_HOURS"]
        claim = service.claim_key(
            current_user.id,
            key=key,
            fingerprint=_fingerprint(),
            kept_for=timedelta(hours=hours),
        )
        if isinstance(claim, service.StoredResponse):
            return _replay(claim)
        try:
            # The work's commits wait for the response's: a worker that dies between the two
            # would otherwise leave work done and a key that cannot replay it.
            with held_commits(db.session):
                response = current_app.make_response(view(*args, **kwargs))
            headers = response.headers
            kept = {name: headers[name] for name in REPLAYED_HEADERS if name in headers}
            stored = service.StoredResponse(response.status_code, kept, response.get_data())
            service.store_response(claim, stored)
        except BaseException:
            # The reservation goes with the failed work: a retry runs afresh.
            db.session.rollback()
            raise
        return response

    return with_key


def _parsed_key(value: str | None) -> str | None:
    """The key of the header (None without one); 400 for a malformed one."""
    if value is None:
        return None
    match = KEY_PATTERN.fullmatch(value)
    if match:
        quoted = match.group(1)
        return value if quoted is None else re.sub(r"\\(.)", r"\1", quoted)
    abort(
        400,
        message="Malformed Idempotency-Key",
        errors={"headers": {HEADER: ["Must be 1 to 255 printable ASCII characters."]}},
    )


def _fingerprint() -> str:
    """What makes two requests the same one: method, path with query, body bytes."""
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.full_path.encode(), request.get_data()):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def _replay(stored: service.StoredResponse):
    response = current_app.response_class(stored.body, status=stored.status)
    response.headers.update(stored.headers)
    response.headers["Idempotent-Replayed"] = "true"
    return response
