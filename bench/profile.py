#!/usr/bin/env python3
"""Where a request's time goes: in-process timings of its parts, against the bench database.

Runs requests through Flask's test client (no gunicorn, no network to the app) as the heavy
user of ``taskapp_bench`` (seed it first with ``bench/run.py``), with a timer around each
part of the request path, and prints microseconds per request for each, and the request's
SQL round trips (bench/roundtrips.py). With
``--pyinstrument`` (``pip install pyinstrument``), prints a call-tree profile instead.

    .venv/bin/python -m bench.profile                     # GET /tasks?page_size=20
    .venv/bin/python -m bench.profile "/tasks?search=nosono" --requests 500
"""

import argparse
import collections
import functools
import logging
import os
import sys
import time

from bench.run import PASSWORD  # the password of the users bench/run.py seeds


def timed(totals: collections.Counter, label: str, function):
    """``function``, adding the seconds each call takes to ``totals[label]``."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            totals[label] += time.perf_counter() - started

    return wrapper


def instrument(app, totals: collections.Counter) -> list[str]:
    """Put timers around the parts of the request path (the attributes their callers read,
    so each timer sees every call); returns their labels, in the order of the path."""
    import flask_jwt_extended.view_decorators as jwt_views
    from sqlalchemy.orm import scoped_session

    from taskapp.auth import session_check
    from taskapp.tasks import queries as task_queries
    from taskapp.tasks import schemas as task_schemas
    from taskapp.tasks import totals as task_totals

    # flask-jwt-extended keeps the user loader it was given: time it there.
    manager = app.extensions["flask-jwt-extended"]
    parts = [
        (jwt_views, "verify_jwt_in_request", "JWT check (the session's, deferred, included)"),
        (jwt_views, "decode_token", "  token decoding"),
        (manager, "_user_lookup_callback", "  user loader (notes the ids: no query)"),
        (session_check, "check_now", "session check on its own (none carried it)"),
        (task_totals, "change_stamp", "change stamp on its own (If-None-Match only)"),
        (task_queries, "list_tasks", "page query (session check, total, stamp in it)"),
        (task_schemas.TaskPageSchema, "dump", "marshmallow: dump the page"),
        (task_schemas.TaskQuerySchema, "load", "marshmallow: load the query string"),
        (scoped_session, "remove", "session teardown"),
    ]
    for owner, name, label in parts:
        setattr(owner, name, timed(totals, label, getattr(owner, name)))
    return [label for _owner, _name, label in parts]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("path", nargs="?", default="/tasks?page_size=20")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--user", default="heavy", help="light or heavy")
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/taskapp_bench"
    )
    parser.add_argument("--pyinstrument", action="store_true")
    args = parser.parse_args()

    os.environ.update(
        DATABASE_URL=args.database_url,
        TASKAPP_ENV="production",
        JWT_SECRET_KEY=os.urandom(32).hex(),
        RATELIMIT_ENABLED="false",
        MAX_TASKS_PER_USER="0",  # the heavy user is seeded past the default quota
    )
    os.environ.pop("REDIS_URL", None)
    from bench.roundtrips import round_trips
    from taskapp import create_app

    app = create_app()
    logging.getLogger("taskapp.access").disabled = True  # as quiet as gunicorn's stderr
    client = app.test_client()
    login = client.post(
        "/login", json={"email": f"{args.user}-0@example.com", "password": PASSWORD}
    )
    if login.status_code != 200:
        raise SystemExit(
            f"login failed ({login.status_code}): run python -m bench.run to seed first"
        )
    headers = {"Authorization": f"Bearer {login.json['access_token']}"}

    def run(path: str, count: int, with_token: bool) -> float:
        started = time.perf_counter()
        for _ in range(count):
            response = client.get(path, headers=headers if with_token else {})
            if response.status_code != 200:
                raise SystemExit(f"{path} answered {response.status_code}")
        return (time.perf_counter() - started) / count * 1e6

    run(args.path, 200, True)  # warm up: connections, caches
    if args.pyinstrument:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0002)
        profiler.start()
        run(args.path, args.requests, True)
        profiler.stop()
        print(profiler.output_text(unicode=False, color=False))
        return 0

    health = run("/healthz", args.requests, False)
    totals: collections.Counter = collections.Counter()
    labels = instrument(app, totals)
    whole = run(args.path, args.requests, True)
    trips = round_trips(app, client, "GET", args.path, headers=headers)
    print(f"{'GET ' + args.path:50s} {whole:8.0f} us per request, {trips} SQL round trip(s)")
    for label in labels:
        print(f"  {label:48s} {totals[label] / args.requests * 1e6:8.0f} us")
    print(f"{'GET /healthz':50s} {health:8.0f} us per request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
