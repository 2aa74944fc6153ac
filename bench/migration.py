#!/usr/bin/env python3
"""Time the migrations to head on a tasks table of 1,000,000 rows while the previous release
serves.

Builds a database at revision 0005 (the schema before lists, labels, due dates ...), loads one
user's tasks with a set-based INSERT, then runs ``flask db upgrade`` to head while three probes,
each on a connection of its own, do what the release before 0006 does against the table, one
after the other, for the whole migration: insert a task (without a position), update a task
among the rows the backfill rewrites, and read a first page. It prints how long the migration
took and the longest wait of each probe (the lock a request would have queued behind), then one
JSON line. Afterwards every task, the probes' included, must have a position.

    .venv/bin/python -m bench.migration                # 1,000,000 tasks
    .venv/bin/python -m bench.migration --tasks 100000   # quicker

With ``--existing --before REV``, it takes a database already seeded at head instead (the
benchmark's, whose tasks have lists, labels, due dates and priorities), downgrades it to REV,
and times the upgrade from there (``--existing --before 0006``: migration 0007 alone). Only
revisions from 0006 on downgrade without losing the seeded data.
"""

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg2

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BEFORE = "0005"  # the revision whose schema the previous release serves, by default
PROBE_TITLE = "during the migration"  # the title of the tasks the insert probe adds


def log(message: str) -> None:
    print(f"[migration {time.strftime('%H:%M:%S')}] {message}", flush=True)


def connect(args, database: str | None = None):
    connection = psycopg2.connect(
        host=args.pg_host, port=args.pg_port, user="postgres", dbname=database or args.database
    )
    connection.autocommit = True
    return connection


def flask_db(args, *command: str) -> float:
    """Run ``flask db COMMAND`` on the bench database; its wall time in seconds."""
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://postgres@{args.pg_host}:{args.pg_port}/{args.database}",
        "TASKAPP_ENV": "production",
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
    }
    env.pop("REDIS_URL", None)
    started = time.monotonic()
    subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", "db", *command], cwd=PROJECT, env=env, check=True
    )
    return time.monotonic() - started


def existing(args) -> int:
    """The seeded database downgraded to ``args.before``; the id of its heaviest user (whose
    task count becomes ``args.tasks``)."""
    flask_db(args, "downgrade", args.before)
    connection = connect(args)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT user_id, count(*) FROM tasks GROUP BY user_id ORDER BY 2 DESC LIMIT 1"
        )
        user_id, args.tasks = cursor.fetchone()
        cursor.execute("VACUUM ANALYZE")
    connection.close()
    log(f"{args.database} at {args.before}: {args.tasks:,} tasks for user {user_id}")
    return user_id


def load(args) -> int:
    """A user with ``args.tasks`` tasks at revision ``args.before``; the user's id."""
    admin = connect(args, "postgres")
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{args.database}"')
    admin.close()
    flask_db(args, "upgrade", args.before)
    connection = connect(args)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO users (email, password_hash) VALUES ('migration@example.com', 'x') "
            "RETURNING id"
        )
        user_id = cursor.fetchone()[0]
        started = time.monotonic()
        cursor.execute("SET statement_timeout = 0")
        cursor.execute(
            "INSERT INTO tasks (user_id, title, description, completed, created_at, updated_at) "
            "SELECT %(user)s, 'Task ' || n, "
            "CASE WHEN n %% 3 = 0 THEN NULL ELSE 'Notes of ' || n END, n %% 4 = 0, "
            "now() - make_interval(secs => %(tasks)s - n), "
            "now() - make_interval(secs => %(tasks)s - n) "
            "FROM generate_series(1, %(tasks)s) AS n",
            {"user": user_id, "tasks": args.tasks},
        )
        log(f"loaded {args.tasks:,} tasks in {time.monotonic() - started:.1f} s")
        cursor.execute("VACUUM ANALYZE")
    connection.close()
    return user_id


class Probe(threading.Thread):
    """One statement of the previous release, repeated on its own connection until stopped;
    the latency of each run, in milliseconds."""

    def __init__(self, args, name: str, statement: str, parameters):
        super().__init__(daemon=True)
        self.args, self.label, self.statement, self.parameters = args, name, statement, parameters
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        connection = connect(self.args)
        try:
            with connection.cursor() as cursor:
                while not self.stop.is_set():
                    started = time.perf_counter()
                    try:
                        cursor.execute(self.statement, self.parameters())
                    except psycopg2.Error as error:
                        self.errors.append(type(error).__name__)
                    self.latencies.append((time.perf_counter() - started) * 1000)
                    time.sleep(0.01)
        finally:
            connection.close()

    def summary(self) -> dict:
        ordered = sorted(self.latencies) or [0.0]
        return {
            "runs": len(self.latencies),
            "p50_ms": round(statistics.median(ordered), 2),
            "max_ms": round(ordered[-1], 1),
            "over_1s": sum(latency > 1000 for latency in ordered),
            "errors": len(self.errors),
        }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pg-host", default="127.0.0.1")
    parser.add_argument("--pg-port", default="5432")
    parser.add_argument("--database", default="taskapp_bench_migration")
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--before", default=BEFORE, help="the revision to upgrade from")
    parser.add_argument(
        "--existing", action="store_true", help="downgrade a seeded database (kept) to --before"
    )
    args = parser.parse_args()

    user_id = existing(args) if args.existing else load(args)
    rows = iter(range(1, 10**9))
    connection = connect(args)
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id) FROM tasks WHERE user_id = %s", (user_id,))
        first_id = cursor.fetchone()[0]
    connection.close()
    probes = [
        Probe(
            args,
            "insert",
            "INSERT INTO tasks (user_id, title, completed) VALUES (%s, %s, false)",
            lambda: (user_id, PROBE_TITLE),
        ),
        Probe(
            args,
            "update",
            "UPDATE tasks SET title = title, updated_at = now() WHERE id = %s",
            # Rows spread over the table: every backfill batch holds some of them.
            lambda: ((next(rows) * 7919) % args.tasks + first_id,),
        ),
        Probe(
            args,
            "first page",
            "SELECT * FROM tasks WHERE user_id = %s ORDER BY created_at DESC, id DESC LIMIT 20",
            lambda: (user_id,),
        ),
    ]
    for probe in probes:
        probe.start()
    time.sleep(1)
    log(f"flask db upgrade ({args.before} to head), the probes running")
    seconds = flask_db(args, "upgrade")
    time.sleep(1)
    for probe in probes:
        probe.stop.set()
    for probe in probes:
        probe.join(timeout=30)

    connection = connect(args)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(*) FILTER (WHERE position IS NULL) FROM tasks")
        total, without_position = cursor.fetchone()
        if args.existing:
            # The seeded database keeps its sizes (bench/run.py reseeds on any other count).
            cursor.execute("DELETE FROM tasks WHERE title = %s", (PROBE_TITLE,))
    connection.close()
    if not (args.keep or args.existing):
        admin = connect(args, "postgres")
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        admin.close()

    print(f"\nmigrations from {args.before} to head on {args.tasks:,} tasks: {seconds:.1f} s\n")
    print("| probe (previous release) | runs | p50 ms | longest wait ms | over 1 s | errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    summaries = {probe.label: probe.summary() for probe in probes}
    for label, summary in summaries.items():
        print(
            f"| {label} | {summary['runs']} | {summary['p50_ms']} | {summary['max_ms']} | "
            f"{summary['over_1s']} | {summary['errors']} |"
        )
    print(f"\ntasks afterwards: {total:,}; without a position: {without_position}\n")
    print(
        json.dumps(
            {
                "before": args.before,
                "tasks": args.tasks,
                "migration_s": round(seconds, 1),
                "probes": summaries,
                "without_position": without_position,
            }
        )
    )
    return 0 if without_position == 0 and not any(p.errors for p in probes) else 1


if __name__ == "__main__":
    sys.exit(main())
