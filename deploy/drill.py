"""The failover drill (issue 18): the production topology of deploy/ on loopback, a steady
write load through nginx, three failures in turn, and the proof that no acknowledged write was
lost or written twice.

    make drill                      # or: .venv/bin/python -m deploy.drill [--short]

Topology (private directory and loopback ports; no system service is touched): a
pg_auto_failover monitor and two data nodes with synchronous replication
(deploy/pg_auto_failover.sh), Redis, two gunicorn instances (gunicorn.conf.py, production
settings, a multi-host DATABASE_URL with target_session_attrs=read-write) and nginx
(deploy/nginx.conf). Writers create tasks through nginx, each logical write with a unique title
and an Idempotency-Key, retrying on 502 and 503 as a well-behaved client does. Then, in turn:
the primary's postmaster is SIGKILLed, one gunicorn instance is SIGKILLed (then started again),
Redis is stopped (then started again). Missing Debian packages are installed first (root).

Prints a table, then one JSON line: acknowledged, found, lost, duplicates, unexpected,
db_failover_s, app_failover_s, redis_5xx, restarts (and a few more). Exits 1 when a target is
missed. Everything is torn down at the end, on an error, on Ctrl-C or SIGTERM.
"""

import argparse
import atexit
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import requests

from tests.support import PROJECT, wait_for
from tests.support.servers import free_port, render_deploy_file

DEPLOY = PROJECT / "deploy"
BIN = Path(sys.executable).parent  # the project's .venv/bin
# What the drill runs, and the Debian package that brings it.
PACKAGES = {
    "/usr/bin/pg_autoctl": "pg-auto-failover-cli",
    "/usr/lib/postgresql/15/lib/pgautofailover.so": "postgresql-15-auto-failover",
    "/usr/sbin/nginx": "nginx",
    "/usr/bin/redis-server": "redis-server",
}
INSTANCES = 2  # gunicorn instances behind nginx
TARGETS = {"db_failover_s": 30, "app_failover_s": 1}


def log(message: str) -> None:
    print(f"[drill {time.strftime('%H:%M:%S')}] {message}", flush=True)


def ensure_packages() -> None:
    """Install the Debian packages whose programs are missing, without starting their
    system services (a policy-rc.d that says no, for the length of the install)."""
    missing = sorted({package for path, package in PACKAGES.items() if not Path(path).exists()})
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"missing Debian packages {', '.join(missing)}: run as root to install")
    log(f"installing {', '.join(missing)}")
    policy = Path("/usr/sbin/policy-rc.d")
    ours = not policy.exists()
    if ours:
        policy.write_text(
            "#!/bin/sh\n# deploy/drill.py: no service starts during its install\nexit 101\n"
        )
        policy.chmod(0o755)
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        apt = ["apt-get", "-o", "DPkg::Lock::Timeout=300"]
        subprocess.run([*apt, "update", "-qq"], check=True, env=env)
        subprocess.run([*apt, "install", "-y", "-qq", *missing], check=True, env=env)
    finally:
        if ours:
            policy.unlink()


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log_path: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signum)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM to its process group; SIGKILL if it has not exited in ``timeout``."""
        if self.alive():
            self.signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)


class Topology:
    """Every server of the drill, each in its own process group, all under one directory."""

    def __init__(self, *, workers: int):
        self.root = Path(tempfile.mkdtemp(prefix="taskapp-drill-"))
        self.root.chmod(0o755)
        self.workers = workers
        self.processes: dict[str, Process] = {}
        self.starts: dict[str, int] = {}
        self.ports = {
            name: free_port()
            for name in ("monitor", "node1", "node2", "redis", "nginx", "app0", "app1")
        }
        self.jwt_secret = secrets.token_urlsafe(48)
        self.sync_standbys = ""  # the primary's synchronous_standby_names, once it runs
        self._torn_down = False
        for sub in ("pg", "home", "home/run", "sock", "logs", "redis", "nginx/logs", "nginx/tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            postgres = pwd.getpwnam("postgres")
            for sub in ("pg", "home", "home/run", "sock"):
                os.chown(self.root / sub, postgres.pw_uid, postgres.pw_gid)
            (self.root / "home/run").chmod(0o700)

    # -- processes ---------------------------------------------------------------------
    def spawn(self, name: str, command: list[str], *, env=None, cwd=None) -> Process:
        log_path = self.root / "logs" / f"{name}.log"
        with open(log_path, "ab") as out:
            popen = subprocess.Popen(
                command,
                cwd=cwd or self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killed as one
            )
        process = Process(name, popen, log_path)
        self.processes[name] = process
        self.starts[name] = self.starts.get(name, 0) + 1
        return process

    def script(self, *args: str, first: bool = False) -> None:
        """deploy/pg_auto_failover.sh, with this drill's private directories."""
        env = {**os.environ, **self.pgaf_env(), "PGAF_FIRST": "1" if first else ""}
        result = subprocess.run(
            ["bash", str(DEPLOY / "pg_auto_failover.sh"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        with open(self.root / "logs" / "setup.log", "a") as setup_log:
            setup_log.write(result.stdout + result.stderr)
        if result.returncode != 0:
            raise RuntimeError(f"pg_auto_failover.sh {args[0]} failed:\n{result.stderr[-3000:]}")

    def pgaf_env(self) -> dict:
        return {
            "PGAF_HOME": str(self.root / "home"),
            "PGAF_SOCKETS": str(self.root / "sock"),
            "PGAF_HOSTNAME": "127.0.0.1",
            "PGAF_MONITOR": f"postgres://autoctl_node@127.0.0.1:{self.ports['monitor']}"
            "/pg_auto_failover?sslmode=require",
        }

    def keeper(self, name: str) -> Process:
        env = {**os.environ, **self.pgaf_env()}
        pgdata = str(self.root / "pg" / name)
        return self.spawn(
            name, ["bash", str(DEPLOY / "pg_auto_failover.sh"), "run", pgdata], env=env
        )

    # -- PostgreSQL ----------------------------------------------------------------------
    def sql(self, port: int, query: str, *, dbname: str = "postgres") -> list[tuple]:
        connection = psycopg2.connect(
            host="127.0.0.1", port=port, user="postgres", dbname=dbname, connect_timeout=2
        )
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(query)
                return cursor.fetchall() if cursor.description else []
        finally:
            connection.close()

    def formation(self) -> dict[str, tuple[str, str]]:
        """node name -> (reported state, goal state), from the monitor."""
        rows = self.sql(
            self.ports["monitor"],
            "SELECT nodename, reportedstate, goalstate FROM pgautofailover.node",
            dbname="pg_auto_failover",
        )
        return {name: (reported, goal) for name, reported, goal in rows}

    def settled(self) -> str | None:
        """The primary's name once one node is primary and the other secondary, all settled."""
        try:
            states = self.formation()
        except psycopg2.Error:
            return None
        if len(states) != 2 or any(reported != goal for reported, goal in states.values()):
            return None
        roles = {reported: name for name, (reported, _goal) in states.items()}
        if set(roles) == {"primary", "secondary"}:
            return roles["primary"]
        return None

    def start_postgres(self) -> None:
        log("PostgreSQL: monitor and two data nodes (pg_auto_failover)")
        pg = self.root / "pg"
        self.script("monitor", str(pg / "monitor"), str(self.ports["monitor"]))
        self.keeper("monitor")
        wait_for(self._monitor_ready, timeout=60, message="the monitor")
        self.script("tune", str(self.ports["monitor"]))
        self.script("node", str(pg / "node1"), str(self.ports["node1"]), "node1", first=True)
        self.keeper("node1")
        wait_for(
            lambda: self.formation().get("node1", ("",))[0] == "single",
            timeout=60,
            message="node1 to run as a single node",
        )
        self.script("node", str(pg / "node2"), str(self.ports["node2"]), "node2")
        self.keeper("node2")
        primary = wait_for(self.settled, timeout=90, message="a primary and a secondary")
        port = self.ports[primary]
        self.sql(port, "CREATE DATABASE taskapp")
        (standbys,) = self.sql(port, "SHOW synchronous_standby_names")[0]
        if not standbys:
            raise RuntimeError("the primary has no synchronous standby")
        self.sync_standbys = standbys
        log(f"primary {primary}, synchronous_standby_names = {standbys!r}")

    def _monitor_ready(self) -> bool:
        try:
            self.formation()
            return True
        except psycopg2.Error:
            return False

    @property
    def database_url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{self.ports[n]}" for n in ("node1", "node2"))
        return f"postgresql://postgres@{hosts}/taskapp?target_session_attrs=read-write"

    def primary_postmaster(self, name: str) -> int:
        return int((self.root / "pg" / name / "postmaster.pid").read_text().split()[0])

    # -- Redis, the app, nginx -------------------------------------------------------------
    def start_redis(self) -> None:
        port = str(self.ports["redis"])
        command = ["redis-server", "--port", port, "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.root / "redis")]
        self.spawn("redis", command)
        wait_for(self._redis_answers, timeout=20, message="Redis")

    def _redis_answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.ports["redis"]), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def app_env(self, port: int) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "GUNICORN_"))}
        env.update(
            TASKAPP_ENV="production",
            DATABASE_URL=self.database_url,
            REDIS_URL=f"redis://127.0.0.1:{self.ports['redis']}/0",
            JWT_SECRET_KEY=self.jwt_secret,
            TRUSTED_PROXIES="1",
            BCRYPT_ROUNDS="4",
            GUNICORN_BIND=f"127.0.0.1:{port}",
            GUNICORN_WORKERS=str(self.workers),
            # Loopback: a dead server is noticed in 3 s (the defaults allow 11 s).
            DB_CONNECT_TIMEOUT="2",
            DB_KEEPALIVES_IDLE="1",
            DB_KEEPALIVES_INTERVAL="1",
            DB_KEEPALIVES_COUNT="2",
            DB_TCP_USER_TIMEOUT_MS="3000",
            # A load test from one address: the limits are beside the point here (Redis is
            # still used, and stopped, all the same).
            RATELIMIT_SIGNUP="1000 per minute",
            RATELIMIT_LOGIN="1000 per minute",
            RATELIMIT_TASK_WRITES="1000000 per minute",
            MAX_TASKS_PER_USER="0",
        )
        return env

    def migrate(self) -> None:
        env = self.app_env(0)
        subprocess.run(
            [str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"],
            cwd=PROJECT,
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start_app(self, index: int) -> None:
        port = self.ports[f"app{index}"]
        command = [str(BIN / "gunicorn"), "-c", str(PROJECT / "gunicorn.conf.py"), "wsgi:app"]
        self.spawn(f"app{index}", command, env=self.app_env(port), cwd=PROJECT)
        wait_for(
            lambda: self._answers(f"http://127.0.0.1:{port}/readyz"),
            timeout=60,
            message=f"gunicorn app{index}",
        )

    @staticmethod
    def _answers(url: str) -> bool:
        try:
            return requests.get(url, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def start_nginx(self) -> None:
        prefix = self.root / "nginx"
        servers = " ".join(
            f"server 127.0.0.1:{self.ports[f'app{i}']} max_fails=1 fail_timeout=2s;"
            for i in range(INSTANCES)
        )
        config = render_deploy_file(
            "nginx.conf",
            listen=f"127.0.0.1:{self.ports['nginx']}",
            upstream_servers=servers,
            max_body=str(1024 * 1024),
        )
        (prefix / "nginx.conf").write_text(config)
        command = ["nginx", "-p", str(prefix), "-c", "nginx.conf", "-e", "logs/error.log"]
        subprocess.run([*command, "-t"], check=True, capture_output=True, timeout=30)
        self.spawn("nginx", command)
        wait_for(lambda: self._answers(f"{self.url}/healthz"), timeout=20, message="nginx")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['nginx']}"

    def worker_boots(self) -> dict[str, tuple[int, int]]:
        """Per instance: (workers booted, workers the drill's starts account for)."""
        counts = {}
        for i in range(INSTANCES):
            name = f"app{i}"
            booted = (self.root / "logs" / f"{name}.log").read_text().count("Booting worker")
            counts[name] = (booted, self.starts.get(name, 0) * self.workers)
        return counts

    def app_errors(self, limit: int = 20) -> list[str]:
        """The app instances' ERROR log lines (tracebacks included), for a failed drill:
        the teardown deletes the logs."""
        lines = []
        for i in range(INSTANCES):
            log_path = self.root / "logs" / f"app{i}.log"
            for line in log_path.read_text(errors="replace").splitlines():
                if '"level": "ERROR"' in line or '"level": "CRITICAL"' in line:
                    lines.append(f"app{i}: {line[:4000]}")
        return lines[:limit]

    # -- teardown ------------------------------------------------------------------------
    def teardown(self) -> None:
        """Stop everything, by its process group, whatever state the drill is in."""
        if self._torn_down:
            return
        self._torn_down = True
        log("teardown")
        for name in ("nginx", *(f"app{i}" for i in range(INSTANCES)), "redis"):
            if name in self.processes:
                self.processes[name].stop()
        for name in ("node2", "node1", "monitor"):
            if name in self.processes and self.processes[name].alive():
                with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
                    self.script("stop", str(self.root / "pg" / name))
                self.processes[name].stop(timeout=20)
        self._sweep()
        shutil.rmtree(self.root, ignore_errors=True)

    def _sweep(self) -> None:
        """SIGKILL any process still running from the drill's directory (a postmaster the
        keeper restarted, its backends), until there is none."""
        root = str(self.root)
        for _ in range(50):
            left = []
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit() or int(entry.name) == os.getpid():
                    continue
                try:
                    cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                    cwd = os.readlink(entry / "cwd")
                except OSError:
                    continue
                if root in cmdline or cwd.startswith(root):
                    left.append(int(entry.name))
            if not left:
                return
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        log(f"WARNING: processes left running: {left}")


@dataclass
class Load:
    """Writers creating tasks through nginx until told to stop; every response recorded."""

    url: str
    headers: list[dict]
    lookup: bool  # no Idempotency-Key support: look a write up before retrying it
    writers: int = 4
    pause: float = 0.02
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    responses: list[tuple[float, int, str]] = field(default_factory=list)  # (time, status, kind)
    acked: dict[str, float] = field(default_factory=dict)  # title -> when
    sent_at: dict[str, float] = field(default_factory=dict)  # title -> first attempt
    attempted: set[str] = field(default_factory=set)
    confirmed_by_lookup: int = 0
    unexpected: list[str] = field(default_factory=list)

    def __post_init__(self):
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._write_loop, args=(n,), daemon=True)
            for n in range(self.writers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)

    def _record(self, status: int, kind: str) -> None:
        with self._lock:
            self.responses.append((time.monotonic(), status, kind))
            if not (200 <= status < 300 or status in (429, 502, 503)):
                self.unexpected.append(f"{kind} {status}")

    def _request(self, session, method, path, kind, **kwargs) -> requests.Response | None:
        try:
            response = session.request(method, self.url + path, timeout=40, **kwargs)
        except requests.RequestException as error:
            self._record(0, f"{kind} {type(error).__name__}")  # nginx never went away
            return None
        self._record(response.status_code, kind)
        return response

    def _write_loop(self, writer: int) -> None:
        session = requests.Session()
        headers = self.headers[writer % len(self.headers)]
        sequence = 0
        while not self._stop.is_set():
            sequence += 1
            self._write(session, headers, f"drill-{self.run}-{writer}-{sequence}")
            time.sleep(self.pause)

    def _write(self, session, headers, title: str) -> None:
        """One logical write: until acknowledged, retried with the same key; a write begun
        before the stop is finished (give up only after a minute)."""
        key = str(uuid.uuid4())
        with self._lock:
            self.attempted.add(title)
        started = time.monotonic()
        while time.monotonic() - started < 60:
            sent = time.monotonic()
            response = self._request(
                session,
                "POST",
                "/tasks",
                "write",
                json={"title": title},
                headers={**headers, "Idempotency-Key": key},
            )
            status = response.status_code if response is not None else 0
            if 200 <= status < 300:
                with self._lock:
                    self.acked[title] = time.monotonic()
                    self.sent_at[title] = sent
                return
            if status == 429:
                time.sleep(min(float(response.headers.get("Retry-After", "1")), 5))
                continue
            if status in (502, 503, 0) and self.lookup and self._exists(session, headers, title):
                with self._lock:
                    self.acked[title] = time.monotonic()
                    self.sent_at[title] = sent
                    self.confirmed_by_lookup += 1
                return
            if status not in (502, 503, 0):
                return  # unexpected, recorded: not retried
            time.sleep(0.1)

    def _exists(self, session, headers, title: str) -> bool:
        """Whether a write whose answer was lost landed after all (until the API answers)."""
        while True:
            response = self._request(
                session, "GET", "/tasks", "lookup", params={"search": title}, headers=headers
            )
            if response is not None and response.status_code == 200:
                return any(task["title"] == title for task in response.json()["data"])
            time.sleep(0.2)

    def recovered_after(self, moment: float, timeout: float) -> float:
        """Seconds from ``moment`` until a write sent after it was acknowledged."""

        def first():
            with self._lock:
                done = [self.acked[t] for t, sent in self.sent_at.items() if sent > moment]
            return min(done) if done else None

        return wait_for(first, timeout=timeout, message="a write acknowledged", every=0.02) - moment

    def count(self, since: float, until: float, predicate) -> int:
        with self._lock:
            return sum(
                1 for t, status, _ in self.responses if since <= t < until and predicate(status)
            )


def sign_in(url: str, users: int) -> list[dict]:
    headers = []
    for n in range(users):
        body = {
            "email": f"drill-{uuid.uuid4().hex[:8]}-{n}@example.com",
            "password": "drill password 1",
        }
        assert requests.post(f"{url}/signup", json=body, timeout=30).status_code == 201
        login = requests.post(f"{url}/login", json=body, timeout=30)
        login.raise_for_status()
        headers.append({"Authorization": f"Bearer {login.json()['access_token']}"})
    return headers


def idempotency_supported(url: str) -> bool:
    """Whether POST /tasks documents an Idempotency-Key header (issue 16)."""
    spec = requests.get(f"{url}/openapi.json", timeout=10).json()
    parameters = spec["paths"]["/tasks"]["post"].get("parameters", [])
    return any(p.get("name", "").lower() == "idempotency-key" for p in parameters)


def drill(topology: Topology, *, short: bool) -> dict:
    steady = 3 if short else 8  # seconds of load before and between the failures
    topology.start_postgres()
    topology.start_redis()
    topology.migrate()
    for i in range(INSTANCES):
        topology.start_app(i)
    topology.start_nginx()

    lookup = not idempotency_supported(topology.url)
    load = Load(topology.url, sign_in(topology.url, 4), lookup=lookup)
    retries = "a lookup before each retry" if lookup else "an Idempotency-Key"
    log(f"load: {load.writers} writers through nginx, {retries}")
    phases = []
    load.start()
    began = time.monotonic()
    time.sleep(steady)
    phases.append(("steady", began, time.monotonic(), None))

    # 1. the primary's postmaster, SIGKILL
    primary = topology.settled()
    pid = topology.primary_postmaster(primary)
    log(f"1. SIGKILL the primary's postmaster ({primary}, pid {pid})")
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    db_failover = load.recovered_after(killed, timeout=120)
    new_primary = wait_for(topology.settled, timeout=120, message="the formation to settle")
    time.sleep(steady)
    phases.append(("postgres primary killed", killed, time.monotonic(), db_failover))
    log(f"   writes again after {db_failover:.2f} s; primary now {new_primary}")

    # 2. one gunicorn instance, SIGKILL (master and workers), then started again
    log("2. SIGKILL gunicorn instance app0")
    killed = time.monotonic()
    topology.processes["app0"].signal_group(signal.SIGKILL)
    app_failover = load.recovered_after(killed, timeout=60)
    time.sleep(steady)
    topology.processes["app0"].popen.wait(timeout=10)
    topology.start_app(0)
    time.sleep(1)
    phases.append(("gunicorn instance killed", killed, time.monotonic(), app_failover))
    log(f"   writes again after {app_failover:.3f} s; app0 restarted")

    # 3. Redis stopped, then started again
    log("3. stop Redis, then start it again")
    stopped = time.monotonic()
    topology.processes["redis"].stop()
    time.sleep(steady)
    topology.start_redis()
    time.sleep(steady)
    phases.append(("redis stopped and started", stopped, time.monotonic(), None))
    redis_5xx = load.count(stopped, time.monotonic(), lambda status: status >= 500)

    load.stop()
    ended = time.monotonic()
    final_primary = wait_for(topology.settled, timeout=120, message="the formation to settle")
    rows = topology.sql(
        topology.ports[final_primary],
        f"SELECT title, count(*) FROM tasks WHERE title LIKE 'drill-{load.run}-%' GROUP BY title",
        dbname="taskapp",
    )
    stored = dict(rows)
    acknowledged = set(load.acked)
    found = sum(1 for title in acknowledged if title in stored)
    boots = topology.worker_boots()
    restarts = sum(max(booted - expected, 0) for booted, expected in boots.values())
    # Every server the drill did not kill last is still the one it started.
    down = sorted(name for name, process in topology.processes.items() if not process.alive())

    print_table(load, phases)
    for line in load.unexpected[:10]:
        log(f"unexpected: {line}")
    if load.unexpected or redis_5xx:
        for line in topology.app_errors():
            log(line)

    return {
        "acknowledged": len(acknowledged),
        "found": found,
        "lost": len(acknowledged) - found,
        "duplicates": sum(count - 1 for count in stored.values() if count > 1),
        "unexpected": len(load.unexpected),
        "db_failover_s": round(db_failover, 3),
        "app_failover_s": round(app_failover, 3),
        "redis_5xx": redis_5xx,
        "restarts": restarts,
        "processes_down": down,
        "attempted": len(load.attempted),
        "confirmed_by_lookup": load.confirmed_by_lookup,
        "retry_mode": "lookup" if lookup else "idempotency-key",
        "primary_before": primary,
        "primary_after": final_primary,
        "synchronous_standby_names": topology.sync_standbys,
        "load_seconds": round(ended - began, 1),
        "short": short,
    }


COLUMNS = {
    "2xx": lambda status: 200 <= status < 300,
    "429": lambda status: status == 429,
    "502": lambda status: status == 502,
    "503": lambda status: status == 503,
    "other": lambda status: not (200 <= status < 300 or status in (429, 502, 503)),
}


def print_table(load: Load, phases: list) -> None:
    """Responses by phase and status, and how long writes took to come back."""
    print(f"\n{'phase':<28}{'seconds':>8}" + "".join(f"{c:>7}" for c in COLUMNS) + "  recovered in")
    for name, start, end, recovery in phases:
        counts = "".join(f"{load.count(start, end, test):>7}" for test in COLUMNS.values())
        recovered = f"{recovery:.3f} s" if recovery is not None else "-"
        print(f"{name:<28}{end - start:>8.1f}{counts}  {recovered}")
    print(flush=True)


def failures(summary: dict) -> list[str]:
    must_be_zero = ("lost", "duplicates", "unexpected", "redis_5xx", "restarts", "processes_down")
    missed = [key for key in must_be_zero if summary[key]]
    missed += [key for key, limit in TARGETS.items() if summary[key] >= limit]
    if summary["acknowledged"] == 0:
        missed.append("acknowledged")
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="shorter phases (CI)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per instance")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the drill runs PostgreSQL as the postgres user and nginx: run it as root")
    ensure_packages()

    started = time.monotonic()
    topology = Topology(workers=args.workers)
    atexit.register(topology.teardown)
    # SIGTERM and SIGHUP unwind like Ctrl-C does, through the teardown.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda signum, _frame: sys.exit(128 + signum))
    try:
        summary = drill(topology, short=args.short)
    finally:
        topology.teardown()
    summary["total_seconds"] = round(time.monotonic() - started, 1)
    missed = failures(summary)
    summary["passed"] = not missed
    if missed:
        log(f"FAILED: {', '.join(missed)}")
    print(json.dumps(summary), flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
