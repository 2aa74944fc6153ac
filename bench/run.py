#!/usr/bin/env python3
"""Benchmark taskapp under gunicorn against a seeded PostgreSQL database.

Seeds (once) a light user with 1,000 tasks and a heavy user with 1,000,000, starts gunicorn
as gunicorn.conf.py configures it (2 workers) with rate limiting on, then measures
requests/s and p50/p99 latency per
endpoint with wrk (or a built-in closed-loop client when wrk is not installed) and prints a
table with each endpoint's throughput as a share of /healthz, the CPU time one request costs
the gunicorn workers, PostgreSQL and the load generator, plus worker memory.

    .venv/bin/python -m bench.run                     # full run (seeding 1M tasks: ~11 min here)
    .venv/bin/python -m bench.run --heavy 100000 --duration 5   # quicker
    .venv/bin/python -m bench.run --soak 600          # and a 10-minute memory soak
    .venv/bin/python -m bench.run --floor             # and bench/floor.py's bare list route
    .venv/bin/python -m bench.run --only 'inbox|label'   # only the rows whose label matches
    .venv/bin/python -m bench.run --compare REV       # and the default GET /tasks of REV beside
                                                      # this tree's, alternated, same database

Besides the original rows, each filter and sort of lists, labels, priorities, due dates and
manual order is measured for both users, with its total (the count of the matches) and
without it (``include_total=false``). ``--writes`` adds the light user's writes (wrk only):
create, toggle ``completed`` of one task, and delete (create and delete pairs). Rate limiting
is on, counted in Redis (``--redis``; its limits raised above the benchmark's rate), as
production runs. Each row also shows the SQL round trips one request makes (counted
in-process: bench/roundtrips.py) and how the load spread over the workers (each worker's
share of the row's worker CPU, and of wrk's connections at mid-row).
"""

import argparse
import functools
import http.client
import json
import logging
import os
import re
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2

from tests.support import PROJECT
from tests.support.servers import free_port

BIN = Path(sys.executable).parent
PASSWORD = "benchmark-password"
FLOOR_PATH = "/floor/tasks"  # bench/floor.py: the list with none of the libraries between
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Limits far above any rate a 2-core benchmark reaches: counted (in Redis), never exceeded.
RAISED_LIMIT = "100000000 per minute"
WRITE_TITLES = ("wrk create", "wrk pair")
# wrk scripts of the write rows (-H adds Authorization to wrk.headers; wrk.format with nil
# headers keeps them).
CREATE_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"title": "wrk create", "description": "written by the benchmark"}'
"""
TOGGLE_LUA = """
wrk.headers["Content-Type"] = "application/json"
local done = false
request = function()
  done = not done
  local body = done and '{"completed": true}' or '{"completed": false}'
  return wrk.format("PATCH", nil, nil, body)
end
"""
PAIRS_LUA = """
wrk.headers["Content-Type"] = "application/json"
local pending = nil
request = function()
  if pending then
    local path = "/tasks/" .. pending
    pending = nil
    return wrk.format("DELETE", path, nil, "")
  end
  return wrk.format("POST", "/tasks", nil, '{"title": "wrk pair"}')
end
response = function(status, headers, body)
  local id = body:match('"id":%s*(%d+)')
  if status == 201 and id then pending = id end
end
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def database_url(args) -> str:
    return f"postgresql://postgres@{args.pg_host}:{args.pg_port}/{args.database}"


def seeded_counts(args) -> dict[str, int]:
    """{prefix: task count} of the bench users already in the database, {} if none."""
    try:
        conn = psycopg2.connect(database_url(args))
    except psycopg2.OperationalError:
        return {}
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "SELECT split_part(u.email, '-', 1), count(t.id) FROM users u "
                "LEFT JOIN tasks t ON t.user_id = u.id WHERE u.email LIKE '%%-0@example.com' "
                "GROUP BY 1"
            )
            return dict(cur.fetchall())
    except psycopg2.Error:
        return {}
    finally:
        conn.close()


def prepare_database(args, env: dict) -> None:
    """(Re)create and seed the bench database unless it already holds the wanted sizes."""
    wanted = {"light": args.light, "heavy": args.heavy}
    if not args.reseed and seeded_counts(args) == wanted:
        log(f"database {args.database} already seeded: {wanted}")
        return
    admin = psycopg2.connect(f"postgresql://postgres@{args.pg_host}:{args.pg_port}/postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{args.database}"')
    admin.close()
    flask = [str(BIN / "flask"), "--app", "wsgi"]
    subprocess.run([*flask, "db", "upgrade"], cwd=PROJECT, env=env, check=True)
    for prefix, count in wanted.items():
        started = time.monotonic()
        subprocess.run(
            [
                *flask,
                "seed",
                "--users",
                "1",
                "--tasks",
                str(count),
                "--prefix",
                prefix,
                "--password",
                PASSWORD,
            ],
            cwd=PROJECT,
            env=env,
            check=True,
        )
        log(f"seeded {prefix}: {count} tasks in {time.monotonic() - started:.1f} s")
    conn = psycopg2.connect(database_url(args))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    conn.close()


class Server:
    """gunicorn serving wsgi:app with the benchmark settings, from this tree or another
    checkout (``project``: its code first on the path, this tree's virtualenv)."""

    def __init__(self, args, env: dict, project: Path = PROJECT, name: str = "bench-gunicorn"):
        self.port = free_port()
        self.log_path = Path(args.log_dir) / f"{name}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if project != PROJECT:
            env = {**env, "PYTHONPATH": str(project)}
        command = [
            str(BIN / "gunicorn"),
            "-c",
            str(project / "gunicorn.conf.py"),
            "-w",
            str(args.workers),
            "-b",
            f"127.0.0.1:{self.port}",
            "bench.floor:app" if args.floor else "wsgi:app",
        ]
        self.log_file = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            command, cwd=project, env=env, stdout=self.log_file, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn exited; see {self.log_path}")
            try:
                if request(self.port, "GET", "/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("gunicorn did not start")

    def worker_pids(self) -> list[str]:
        """The gunicorn workers: the master's children."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return children.read_text().split()

    def worker_rss_mb(self) -> list[float]:
        """Resident memory of each worker, in MB."""
        sizes = []
        for pid in self.worker_pids():
            status = Path(f"/proc/{pid}/status").read_text()
            kb = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))
            sizes.append(kb / 1024)
        return sizes

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        finally:
            self.log_file.close()


def cpu_seconds(pid: str) -> tuple[str, float] | None:
    """(command name, user + system CPU seconds) of a process, or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    return name, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_snapshot(server: "Server") -> dict:
    """CPU seconds used so far by the workers, by each ``postgres`` process of this host (by
    pid), and by this script with its children (the load generator)."""
    each = {pid: used[1] for pid in server.worker_pids() if (used := cpu_seconds(pid))}
    workers = sum(each.values())
    postgres = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        used = cpu_seconds(pid)
        if used is not None and used[0] == "postgres":
            postgres[pid] = used[1]
    client = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        client += usage.ru_utime + usage.ru_stime
    return {"workers": workers, "each": each, "postgres": postgres, "client": client}


def cpu_per_request(before: dict, after: dict, requests: int) -> dict[str, float]:
    """Milliseconds of CPU per request between two snapshots, for the workers, PostgreSQL
    and the client.

    A PostgreSQL process that started in between counts from zero; one that ended is lost
    (the pool keeps its connections, so under load neither happens).
    """
    postgres = sum(
        seconds - before["postgres"].get(pid, 0.0) for pid, seconds in after["postgres"].items()
    )
    spent = {
        "workers": after["workers"] - before["workers"],
        "postgres": postgres,
        "client": after["client"] - before["client"],
    }
    per_request = {part: seconds * 1000 / max(requests, 1) for part, seconds in spent.items()}
    # Each worker's share of the row's worker CPU: how the load spread over them.
    each = {pid: seconds - before["each"].get(pid, 0.0) for pid, seconds in after["each"].items()}
    total = sum(each.values()) or 1.0
    per_request["shares"] = sorted((used / total for used in each.values()), reverse=True)
    return per_request


def connection_split(port: int) -> list[int]:
    """How many of the clients' connections each worker holds now (by ``ss``), most first."""
    output = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    held: dict[str, int] = {}
    for pid in re.findall(r"pid=(\d+)", output):
        held[pid] = held.get(pid, 0) + 1
    return sorted(held.values(), reverse=True)


def measured_row(server: "Server", measure, path: str, token, args, script=None) -> dict:
    """One row: a 1-second warm-up, then the row, with its CPU per request, the workers'
    shares of it, and the connection split sampled at mid-row."""
    warm_up = argparse.Namespace(**{**vars(args), "duration": 1})
    measure(server.port, path, token, warm_up, script)
    split: list[list[int]] = []
    sampler = threading.Timer(
        args.duration / 2, lambda: split.append(connection_split(server.port))
    )
    before = cpu_snapshot(server)
    sampler.start()
    result = measure(server.port, path, token, args, script)
    sampler.join()
    result["cpu"] = cpu_per_request(before, cpu_snapshot(server), result["requests"])
    result["split"] = split[0] if split else []
    return result


def request(port: int, method: str, path: str, body=None, headers=None, *, full=False):
    """(status, body), with ``full`` (status, body, ETag header)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        conn.request(
            method,
            path,
            body=payload,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        response = conn.getresponse()
        answer = response.status, response.read()
        return (*answer, response.getheader("ETag")) if full else answer
    finally:
        conn.close()


def login(port: int, prefix: str) -> str:
    status, body = request(
        port, "POST", "/login", {"email": f"{prefix}-0@example.com", "password": PASSWORD}
    )
    if status != 200:
        raise SystemExit(f"login of {prefix} failed: {status} {body[:200]!r}")
    return json.loads(body)["access_token"]


def run_wrk(port: int, path: str, token: str | None, args, script: str | None = None) -> dict:
    command = [
        "wrk",
        "-t",
        str(args.threads),
        "-c",
        str(args.connections),
        "-d",
        f"{args.duration}s",
        "--latency",
        f"http://127.0.0.1:{port}{path}",
    ]
    if token:
        command[1:1] = ["-H", f"Authorization: Bearer {token}"]
    if script:
        script_path = Path(args.log_dir) / "bench-row.lua"
        script_path.write_text(script)
        command[1:1] = ["-s", str(script_path)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)

    def pct(p):
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", output).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {
        "rps": rps,
        "requests": requests,
        "p50": pct(50),
        "p99": pct(99),
        "errors": int(non_2xx.group(1)) if non_2xx else 0,
    }


def run_builtin(port: int, path: str, token: str | None, args, script: str | None = None) -> dict:
    """Closed loop: each connection sends its next request when the last one answered (GET
    only: the write rows need wrk)."""
    if script:
        raise SystemExit("the write rows (--writes) need wrk")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop_at = time.monotonic() + args.duration

    def worker():
        nonlocal errors
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, bad = [], 0
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            mine.append((time.perf_counter() - started) * 1000)
            bad += response.status >= 400
        conn.close()
        with lock:
            latencies.extend(mine)
            errors += bad

    threads = [threading.Thread(target=worker) for _ in range(args.connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()
    return {
        "rps": len(latencies) / args.duration,
        "requests": len(latencies),
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99) - 1],
        "errors": errors,
    }


def domain_queries(port: int, token: str) -> list[tuple[str, str]]:
    """(label, query) of each filter and sort of lists, labels, priorities, due dates and
    manual order, for the user of ``token`` (its first list), counted and not."""
    status, body = request(port, "GET", "/lists", headers={"Authorization": f"Bearer {token}"})
    if status != 200 or not json.loads(body)["data"]:
        raise SystemExit(f"the user has no lists ({status}): reseed (--reseed)")
    work = json.loads(body)["data"][0]["id"]
    now = datetime.now(UTC).replace(microsecond=0)
    week_ago = now - timedelta(days=7)
    instant = "%Y-%m-%dT%H:%M:%SZ"
    queries = [
        ("list_id=<list>", f"list_id={work}"),
        ("list_id=<list> sort=position", f"list_id={work}&sort=position&order=asc"),
        ("inbox", "list_id=null"),
        ("inbox sort=position", "list_id=null&sort=position&order=asc"),
        ("label", "label=urgent"),
        ("priority=high", "priority=high"),
        (
            "due in the last 7 days",
            f"due_after={week_ago.strftime(instant)}&due_before={now.strftime(instant)}",
        ),
        ("overdue", "overdue=true"),
        ("sort=due_at asc", "sort=due_at&order=asc"),
        ("sort=priority desc", "sort=priority&order=desc"),
    ]
    counted = [(label, f"{query}&page_size=20") for label, query in queries]
    uncounted = [
        (f"{label}, no total", f"{query}&include_total=false&page_size=20")
        for label, query in queries
    ]
    return counted + uncounted


def toggle_target(args) -> int:
    """The light user's task that the toggle row completes and reopens: an open one that
    does not recur (the seed makes about 3 % of the dated tasks recur)."""
    with psycopg2.connect(database_url(args)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT t.id FROM tasks t JOIN users u ON u.id = t.user_id "
            "WHERE u.email = 'light-0@example.com' AND t.recurrence IS NULL "
            "AND NOT t.completed ORDER BY t.id OFFSET 100 LIMIT 1"
        )
        return cur.fetchone()[0]


def write_rows(args) -> list[tuple[str, str, str, str]]:
    """(label, method counted, path, wrk script) of the light user's write rows."""
    target = toggle_target(args)
    return [
        ("create [light]", "POST", "/tasks", CREATE_LUA),
        ("toggle completed [light]", "PATCH", f"/tasks/{target}", TOGGLE_LUA),
        ("delete+create pairs [light]", "DELETE", "/tasks", PAIRS_LUA),
    ]


def clean_up_writes(args) -> None:
    """Delete the write rows' tasks, so the light user is back to its seeded tasks."""
    conn = psycopg2.connect(database_url(args))
    try:
        with conn, conn.cursor() as cur:
            cur.execute("DELETE FROM tasks WHERE title = ANY(%s)", (list(WRITE_TITLES),))
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE tasks")
    finally:
        conn.close()


class RoundTrips:
    """The SQL round trips one request of a row makes, counted in-process (Flask's test client
    on the same database and config: bench/roundtrips.py)."""

    def __init__(self, env: dict, args):
        os.environ.update({key: value for key, value in env.items() if isinstance(value, str)})
        if args.floor:
            from bench.floor import app
        else:
            from taskapp import create_app

            app = create_app()
        logging.getLogger("taskapp.access").disabled = True  # its lines are not the rows'
        self.app, self.client = app, app.test_client()
        self.headers = {}
        for user in ("light", "heavy"):
            token = self.client.post(
                "/login", json={"email": f"{user}-0@example.com", "password": PASSWORD}
            ).json["access_token"]
            self.headers[user] = {"Authorization": f"Bearer {token}"}

    def get(self, method: str, path: str, user: str | None) -> int:
        from bench.roundtrips import round_trips

        headers = self.headers.get(user, {})
        count = functools.partial(round_trips, self.app, self.client, headers=headers)
        if method == "POST":
            return count("POST", path, json={"title": WRITE_TITLES[0]})
        if method == "PATCH":
            trips = count("PATCH", path, json={"completed": True})
            count("PATCH", path, json={"completed": False})
            return trips
        if method == "DELETE":
            created = self.client.post(path, json={"title": WRITE_TITLES[1]}, headers=headers)
            return count("DELETE", f"{path}/{created.json['id']}")
        if path == FLOOR_PATH:
            count("GET", path)  # answers, or raises
            return 1  # its one execute, on a raw connection that SQLAlchemy's events miss
        return count("GET", path)


def endpoints(args, domain: dict[str, list[tuple[str, str]]]) -> list[tuple[str, str, str | None]]:
    """(label, path, user) rows of the table; user None means no token. ``domain``: each
    user's domain_queries."""
    rows = [("healthz", "/healthz", None)]
    queries = [
        ("list", "page_size=20"),
        ("completed=false", "completed=false&page_size=20"),
        ("sort=title asc", "sort=title&order=asc&page_size=20"),
        ("search", "search=" + urllib.parse.quote(args.search) + "&page_size=20"),
    ]
    for user in ("light", "heavy"):
        for label, query in [*queries, *domain[user]]:
            rows.append((f"{label} [{user}]", f"/tasks?{query}", user))
    deep_page = max(1, args.heavy // 20)
    rows.append((f"page={deep_page} [heavy]", f"/tasks?page={deep_page}&page_size=20", "heavy"))
    rows.append(("cursor walk [heavy]", None, "heavy"))
    if args.floor:
        rows += [(f"floor list [{user}]", FLOOR_PATH, user) for user in ("light", "heavy")]
    if args.only:
        rows = [row for row in rows if row[0] == "healthz" or re.search(args.only, row[0])]
    return rows


def check_floor(port: int, tokens: dict) -> None:
    """The floor route must answer what the real list answers, or its row means nothing."""
    for user, token in tokens.items():
        answers = [
            request(port, "GET", path, headers={"Authorization": f"Bearer {token}"}, full=True)
            for path in ("/tasks?page_size=20", FLOOR_PATH)
        ]
        (status, real, real_etag), (floor_status, floor, floor_etag) = answers
        if status != 200 or floor_status != 200 or json.loads(real) != json.loads(floor):
            raise SystemExit(f"{FLOOR_PATH} does not answer as /tasks?page_size=20 for {user}")
        if not real_etag or real_etag != floor_etag:
            raise SystemExit(f"{FLOOR_PATH} gives another ETag than /tasks?page_size=20 ({user})")


def deep_cursor(port: int, token: str, pages: int) -> str | None:
    """Follow meta.next_cursor ``pages`` times; returns a deep cursor, or None if unsupported."""
    path = "/tasks?page_size=100"
    cursor = None
    for _ in range(pages):
        status, body = request(
            port,
            "GET",
            path if cursor is None else f"/tasks?page_size=20&cursor={urllib.parse.quote(cursor)}",
            headers={"Authorization": f"Bearer {token}"},
        )
        if status != 200:
            return None
        cursor = json.loads(body)["meta"].get("next_cursor")
        if cursor is None:
            return None
    return cursor


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pg-host", default="127.0.0.1")
    parser.add_argument("--pg-port", default="5432")
    parser.add_argument("--database", default="taskapp_bench")
    parser.add_argument("--light", type=int, default=1_000)
    parser.add_argument("--heavy", type=int, default=1_000_000)
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=int, default=10, help="seconds per endpoint")
    parser.add_argument("--search", default="nosono", help="a word of the seeded text")
    parser.add_argument("--soak", type=int, default=0, help="seconds of mixed load for memory")
    parser.add_argument("--builtin", action="store_true", help="ignore wrk")
    parser.add_argument(
        "--floor", action="store_true", help="also measure bench/floor.py's bare list route"
    )
    parser.add_argument("--log-dir", default=str(PROJECT / "test-artifacts"))
    parser.add_argument("--only", help="measure only the rows whose label matches this regex")
    parser.add_argument(
        "--compare",
        metavar="REV",
        help="also measure the default GET /tasks of git revision REV beside this tree's",
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternations of --compare")
    parser.add_argument(
        "--writes", action="store_true", help="also measure the light user's writes (wrk)"
    )
    parser.add_argument(
        "--redis",
        default="redis://127.0.0.1:6379/0",
        help="the rate limiter's storage (limits raised above the benchmark's rate)",
    )
    parser.add_argument(
        "--no-limiter", action="store_true", help="rate limiting off (not how production runs)"
    )
    parser.add_argument(
        "--worker-class", default=None, help="GUNICORN_WORKER_CLASS (default: gunicorn.conf.py)"
    )
    args = parser.parse_args()

    env = {
        **os.environ,
        "DATABASE_URL": database_url(args),
        "TASKAPP_ENV": "production",
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        # The heavy user is seeded past the default quota; the benchmark writes for it too.
        "MAX_TASKS_PER_USER": "0",
        "BCRYPT_ROUNDS": "4",
    }
    env.pop("REDIS_URL", None)
    if args.no_limiter:
        env["RATELIMIT_ENABLED"] = "false"
    else:
        env.update(
            RATELIMIT_ENABLED="true",
            REDIS_URL=args.redis,
            RATELIMIT_TASK_WRITES=RAISED_LIMIT,
            RATELIMIT_LOGIN=RAISED_LIMIT,
            RATELIMIT_LOGIN_EMAIL=RAISED_LIMIT,
        )
    if args.worker_class:
        # With more than one thread gunicorn runs gthread whatever the class asked.
        threads = {"GUNICORN_THREADS": "1"} if args.worker_class != "gthread" else {}
        env.update(GUNICORN_WORKER_CLASS=args.worker_class, **threads)
    prepare_database(args, env)

    use_wrk = shutil.which("wrk") and not args.builtin
    measure = run_wrk if use_wrk else run_builtin
    server = Server(args, env)
    try:
        tokens = {user: login(server.port, user) for user in ("light", "heavy")}
        if args.floor:
            check_floor(server.port, tokens)
        counter = RoundTrips(env, args)
        rss_start = server.worker_rss_mb()
        results = []
        domain = {user: domain_queries(server.port, token) for user, token in tokens.items()}
        for label, path, user in endpoints(args, domain):
            if path is None:
                cursor = deep_cursor(server.port, tokens[user], pages=50)
                if cursor is None:
                    continue
                path = f"/tasks?page_size=20&cursor={urllib.parse.quote(cursor)}"
            token = tokens[user] if user else None
            status, _ = request(
                server.port,
                "GET",
                path,
                headers={"Authorization": f"Bearer {token}"} if token else {},
            )
            if status != 200:
                # Measured all the same: the table's errors column counts such answers.
                log(f"warning: {label}: {path} answered {status}")
            result = measured_row(server, measure, path, token, args)
            result["trips"] = counter.get("GET", path, user)
            results.append((label, result))
            log(f"{label}: {results[-1][1]}")
        if args.writes:
            for label, method, path, script in write_rows(args):
                result = measured_row(server, measure, path, tokens["light"], args, script)
                result["trips"] = counter.get(method, path, "light")
                results.append((label, result))
                log(f"{label}: {results[-1][1]}")
            clean_up_writes(args)
        if args.soak:
            soak(server, tokens, args, measure)
        rss_end = server.worker_rss_mb()
        compared = compare(server, tokens, args, env, measure) if args.compare else None
    finally:
        server.stop()

    print_table(results, args, "wrk" if use_wrk else "built-in client")
    print(
        f"\nworker RSS MB at start: {', '.join(f'{r:.0f}' for r in rss_start)}; "
        f"at end: {', '.join(f'{r:.0f}' for r in rss_end)}"
    )
    if compared:
        print_comparison(compared, args)
    return 0


COMPARED_PATH = "/tasks"  # the default page: no parameter at all


def compare(server: Server, tokens: dict, args, env: dict, measure) -> dict:
    """The default GET /tasks of revision ``args.compare`` (a temporary git worktree, on the
    same database) and of this tree, measured in turn ``args.rounds`` times per user:
    {(revision, user): [result, ...]}."""
    checkout = Path(args.log_dir) / f"bench-compare-{args.compare}"
    subprocess.run(
        ["git", "worktree", "add", "--force", "--detach", str(checkout), args.compare],
        cwd=PROJECT,
        check=True,
        capture_output=True,
    )
    results: dict = {}
    try:
        before = Server(args, env, project=checkout, name="bench-gunicorn-compare")
        try:
            servers = {args.compare: before, "this tree": server}
            for round_number in range(args.rounds):
                for revision, measured in servers.items():
                    for user in ("light", "heavy"):
                        token = login(measured.port, user)
                        measure(
                            measured.port,
                            COMPARED_PATH,
                            token,
                            argparse.Namespace(**{**vars(args), "duration": 1}),
                        )
                        result = measure(measured.port, COMPARED_PATH, token, args)
                        results.setdefault((revision, user), []).append(result)
                        log(f"compare round {round_number + 1} {revision} [{user}]: {result}")
        finally:
            before.stop()
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(checkout)], cwd=PROJECT, check=False
        )
    return results


def print_comparison(results: dict, args) -> None:
    print(
        f"\nDefault GET {COMPARED_PATH}: {args.compare} against this tree, "
        f"{args.rounds} alternated rounds of {args.duration} s (median of the rounds)\n"
    )
    print("| user | before req/s | after req/s | change | before p50 ms | after p50 ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for user in ("light", "heavy"):
        old = results[(args.compare, user)]
        new = results[("this tree", user)]
        old_rps = statistics.median(r["rps"] for r in old)
        new_rps = statistics.median(r["rps"] for r in new)
        print(
            f"| {user} | {old_rps:.0f} | {new_rps:.0f} | {new_rps / old_rps - 1:+.1%} | "
            f"{statistics.median(r['p50'] for r in old):.2f} | "
            f"{statistics.median(r['p50'] for r in new):.2f} |"
        )


def soak(server: Server, tokens: dict, args, measure) -> None:
    """Mixed load for ``--soak`` seconds, sampling worker memory every minute."""
    paths = [f"/tasks?page_size=20&page={n}" for n in (1, 2, 50)]
    stop_at = time.monotonic() + args.soak
    minute = 0
    while time.monotonic() < stop_at:
        for path in paths:
            measure(
                server.port,
                path,
                tokens["heavy"],
                argparse.Namespace(**{**vars(args), "duration": 20}),
            )
        minute += 1
        log(f"soak {minute}: worker RSS MB {[round(r) for r in server.worker_rss_mb()]}")


def print_table(results, args, tool: str) -> None:
    health = dict(results)["healthz"]["rps"]
    first_page = {
        label.split(" [")[1][:-1]: r for label, r in results if label.split(" [")[0] == "list"
    }
    print(
        "\np50 ratio: a heavy-user row against the same query for the light user; the deep "
        "page and the cursor against the heavy user's first page.\nCPU ms/req: CPU time per "
        "request of the gunicorn workers, of PostgreSQL (all its processes on this host) and "
        "of the load generator."
    )
    print(
        "round trips: SQL round trips of one request (BEGIN and COMMIT included). workers: "
        "each worker's share of the row's worker CPU; conns: wrk's connections each worker "
        "held at mid-row."
    )
    limiter = "rate limiting off" if args.no_limiter else f"rate limiting on ({args.redis})"
    worker_class = args.worker_class or "gunicorn.conf.py's"
    print(
        f"\n{args.workers} {worker_class} workers, {args.connections} connections, "
        f"{args.duration} s per row, {tool}, {limiter}; light user {args.light:,} tasks, "
        f"heavy user {args.heavy:,}\n"
    )
    print(
        "| endpoint | req/s | p50 ms | p99 ms | vs /healthz | p50 ratio | errors "
        "| CPU ms/req: workers | PostgreSQL | client | round trips | workers | conns |"
    )
    print("| --- " + "| ---: " * 10 + "| --- | --- |")
    by_label = dict(results)
    for label, r in results:
        versus_light = ""
        if label.endswith("[heavy]"):
            light = by_label.get(label.replace("[heavy]", "[light]"))
            if light is None and label.startswith(("page=", "cursor")):
                light = first_page.get("heavy")
            if light:
                versus_light = f"{r['p50'] / light['p50']:.2f}x"
        cpu = r["cpu"]
        print(
            f"| {label} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | "
            f"{r['rps'] / health:.0%} | {versus_light} | {r['errors']} | "
            f"{cpu['workers']:.2f} | {cpu['postgres']:.2f} | {cpu['client']:.2f} | "
            f"{r.get('trips', '')} | {'/'.join(f'{share:.0%}' for share in cpu['shares'])} | "
            f"{'/'.join(map(str, r.get('split', [])))} |"
        )


if __name__ == "__main__":
    sys.exit(main())
