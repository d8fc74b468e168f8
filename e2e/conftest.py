"""End-to-end fixtures: run the real `livehub` binary on free ports with a temporary data dir."""
import hashlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent
BIN = os.environ.get("LIVEHUB_BIN", str(REPO / ".build" / "debug" / "livehub"))
FIXTURES = REPO / "media-fixtures"

# Storage backend of the servers (issue 20): `sqlite` (the default: a file in the data dir) or
# `postgres`, where every data dir gets its own database on the server at LIVEHUB_TEST_DATABASE_URL
# (a restart on the same data dir reuses it). `make e2e-test` runs the suite once for each.
BACKEND = os.environ.get("LIVEHUB_E2E_BACKEND", "sqlite")
if BACKEND not in ("sqlite", "postgres"):
    raise RuntimeError(f"LIVEHUB_E2E_BACKEND must be sqlite or postgres, not {BACKEND!r}")
if BACKEND == "postgres" and not os.environ.get("LIVEHUB_TEST_DATABASE_URL"):
    raise RuntimeError("LIVEHUB_E2E_BACKEND=postgres needs LIVEHUB_TEST_DATABASE_URL (tools/pg-temp.sh start prints one)")
sqlite_only = pytest.mark.skipif(BACKEND != "sqlite", reason="about the SQLite file itself")
_created_databases = set()


def with_database(url, name):
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def psql(url, sql):
    """Runs `sql` with the `psql` client; returns the rows, `|`-separated."""
    done = subprocess.run(["psql", url, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql],
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"psql failed: {done.stderr}")
    return [line.split("|") for line in done.stdout.splitlines() if line]


def database_url_for(data_dir):
    """The PostgreSQL database of `data_dir`, created on first use."""
    name = "e2e_" + hashlib.sha1(str(Path(data_dir).resolve()).encode()).hexdigest()[:20]
    server = os.environ["LIVEHUB_TEST_DATABASE_URL"]
    if name not in _created_databases:
        psql(with_database(server, "postgres"), f"CREATE DATABASE {name}")
        _created_databases.add(name)
    return with_database(server, name)


def db_rows(data_dir, sql):
    """Rows of `sql` on the database the servers of `data_dir` use, whichever the backend (the
    same table names on both; columns differ: camelCase on SQLite, snake_case on PostgreSQL)."""
    if BACKEND == "postgres":
        return psql(database_url_for(data_dir), sql)
    with sqlite3.connect(Path(data_dir) / "livehub.sqlite") as db:
        return [[str(value) for value in row] for row in db.execute(sql).fetchall()]


@pytest.fixture(scope="session", autouse=True)
def _drop_e2e_databases():
    yield
    if BACKEND == "postgres":
        admin = with_database(os.environ["LIVEHUB_TEST_DATABASE_URL"], "postgres")
        for name in sorted(_created_databases):
            try:
                psql(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            except Exception:
                pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


AUTH_VARIABLES = [
    "LIVEHUB_DEV", "LIVEHUB_JWT_SECRET", "LIVEHUB_JWT_PUBLIC_KEY", "LIVEHUB_JWT_JWKS_FILE", "LIVEHUB_JWT_LEEWAY",
    "LIVEHUB_JWT_ISSUER", "LIVEHUB_JWT_AUDIENCE", "LIVEHUB_INTERNAL_TOKEN", "LIVEHUB_CALLBACK_TRUST_LOOPBACK",
]


class LiveHubProcess:
    """One running `livehub`. Output is captured to a log file; tokens are parsed from the banner.

    Dev mode (`LIVEHUB_DEV=1`: generated secrets, sample tokens in the banner, loopback callbacks)
    unless `dev=False`; then `env` must give the JWT keys and `LIVEHUB_INTERNAL_TOKEN`."""

    def __init__(self, data_dir, env=None, dev=True, args=()):
        self.data_dir = Path(data_dir)
        self.http_port = free_port()
        self.rtmp_port = free_port()
        self.env = dict(os.environ)
        self.env.update({
            "LIVEHUB_HTTP_HOST": "127.0.0.1",
            "LIVEHUB_HTTP_PORT": str(self.http_port),
            "LIVEHUB_RTMP_HOST": "127.0.0.1",
            "LIVEHUB_RTMP_PORT": str(self.rtmp_port),
            "LIVEHUB_DATA_DIR": str(self.data_dir),
            "LIVEHUB_LOG_LEVEL": "info",
        })
        for name in AUTH_VARIABLES:
            self.env.pop(name, None)
        if dev:
            self.env["LIVEHUB_DEV"] = "1"
        if env:
            self.env.update(env)
        if BACKEND == "postgres" and not (env and "LIVEHUB_DATABASE_URL" in env):
            self.env["LIVEHUB_DATABASE_URL"] = database_url_for(self.data_dir)
        self.log_path = self.data_dir.parent / f"livehub-{self.http_port}.log"
        self.args = list(args)
        self.proc = None
        self.tokens = {}

    @property
    def base(self):
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def api(self):
        return f"{self.base}/v1/notifications/live"

    def rtmp_url(self, key):
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{key}"

    def start(self, timeout=30):
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([BIN, *self.args], env=self.env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"livehub exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if requests.get(f"{self.base}/healthz", timeout=1).status_code == 200 and "listening on rtmp" in self.output():
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"livehub did not become healthy:\n{self.output()}")
        text = self.output()
        for name, pattern in [("owner", r"shop-owner token: (\S+)"), ("viewer", r"viewer token:\s+(\S+)"), ("internal", r"internal token:\s+(\S+)")]:
            match = re.search(pattern, text)
            if match:
                self.tokens[name] = match.group(1)
        return self

    def output(self):
        try:
            return self.log_path.read_text()
        except FileNotFoundError:
            return ""

    def headers(self, who="owner"):
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
        return self.proc.returncode if self.proc else None

    def create_room(self, title="e2e room"):
        response = requests.post(f"{self.api}/rooms", json={"title": title}, headers=self.headers())
        assert response.status_code == 201, response.text
        return response.json()

    def room(self, room_id):
        response = requests.get(f"{self.api}/rooms/{room_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for(self, predicate, timeout=20, interval=0.1, what="condition"):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(f"timed out waiting for {what}; last={last!r}\n--- server log ---\n{self.output()[-4000:]}")


@pytest.fixture
def data_dir():
    with tempfile.TemporaryDirectory(prefix="livehub-e2e-") as directory:
        yield Path(directory) / "data"


@pytest.fixture
def livehub(data_dir):
    server = LiveHubProcess(data_dir).start()
    yield server
    server.stop()


@pytest.fixture
def make_livehub(data_dir):
    """Factory for tests that need custom env or several runs over one data directory."""
    servers = []

    def make(env=None, directory=None, dev=True, args=()):
        server = LiveHubProcess(directory or data_dir, env=env, dev=dev, args=args)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
