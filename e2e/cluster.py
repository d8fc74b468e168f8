"""Several LiveHub nodes on one real PostgreSQL (issue 20), for the cluster tests and benches.

The PostgreSQL server is `LIVEHUB_TEST_DATABASE_URL` when set (`make test` starts one with
tools/pg-temp.sh), else one this module starts with tools/pg-temp.sh in a temporary directory.
Every cluster gets a new database, and its nodes share the JWT secret and the internal token."""
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

from conftest import REPO, LiveHubProcess, free_port, psql, with_database
from jwt_helper import sign

SECRET = "cluster-e2e-secret-0123456789abcdef0123456789abcdef0123456789abcdef"
INTERNAL_TOKEN = "cluster-e2e-internal-token-0123456789"
PG_TEMP = REPO / "tools" / "pg-temp.sh"


def token(user_id, roles=("USER",), username=None, lifetime=3600):
    return sign(SECRET, {"sub": user_id, "username": username or user_id, "roles": list(roles), "exp": int(time.time()) + lifetime})


def postgres_available():
    return bool(os.environ.get("LIVEHUB_TEST_DATABASE_URL")) or any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))


class PostgresServer:
    """The test PostgreSQL server: the given one, or a throw-away cluster started here."""

    def __init__(self):
        self.directory = None
        url = os.environ.get("LIVEHUB_TEST_DATABASE_URL")
        if not url:
            self.directory = tempfile.mkdtemp(prefix="livehub-pg-e2e-")
            os.chmod(self.directory, 0o755)
            url = subprocess.run([str(PG_TEMP), "start", f"{self.directory}/cluster", str(free_port())],
                                 check=True, capture_output=True, text=True).stdout.strip()
        self.url = url

    def create_database(self):
        """A new empty database; returns its URL."""
        name = "e2e_" + uuid.uuid4().hex[:16]
        self.psql(f"CREATE DATABASE {name}", database="postgres")
        return self.database_url(name)

    def database_url(self, name):
        return with_database(self.url, name)

    def psql(self, sql, database=None):
        """`sql`'s rows as text, one per line, columns `|`-separated."""
        rows = psql(self.database_url(database) if database else self.url, sql)
        return "\n".join("|".join(row) for row in rows)

    def stop(self):
        if self.directory:
            subprocess.run([str(PG_TEMP), "stop", f"{self.directory}/cluster"], check=False)
            shutil.rmtree(self.directory, ignore_errors=True)


class Cluster:
    """`count` nodes named node1…nodeN on one new database."""

    def __init__(self, postgres, root, count=3, env=None):
        self.postgres = postgres
        self.database_url = postgres.create_database()
        self.nodes = []
        for index in range(1, count + 1):
            node = LiveHubProcess(Path(root) / f"node{index}", dev=False, env={
                "LIVEHUB_DATABASE_URL": self.database_url,
                "LIVEHUB_NODE_ID": f"node{index}",
                "LIVEHUB_JWT_SECRET": SECRET,
                "LIVEHUB_INTERNAL_TOKEN": INTERNAL_TOKEN,
                **(env or {}),
            })
            node.env["LIVEHUB_NODE_ADVERTISE_URL"] = node.base
            node.tokens = {"owner": token("owner-1", ("SHOP_OWNER",), "Cluster Shop"), "viewer": token("viewer-1"),
                           "internal": INTERNAL_TOKEN}
            self.nodes.append(node)

    def start(self):
        for node in self.nodes:
            node.start()
            node.tokens.update({"owner": token("owner-1", ("SHOP_OWNER",), "Cluster Shop"), "viewer": token("viewer-1"),
                                "internal": INTERNAL_TOKEN})
        return self

    def sql(self, statement):
        return self.postgres.psql(statement, database=urlparse(self.database_url).path.lstrip("/"))

    def stop(self):
        for node in self.nodes:
            node.stop()
