"""Issue 20 end to end: a node that loses its PostgreSQL refuses writes with 503
`DATABASE_UNAVAILABLE` in bounded time, and serves again by itself once the database is back (the
pool reconnects). A cluster of its own (tools/pg-temp.sh), stopped and started under the node."""
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from conftest import BACKEND, REPO, free_port

pytestmark = pytest.mark.skipif(BACKEND != "postgres", reason="runs in the PostgreSQL pass (LIVEHUB_E2E_BACKEND=postgres)")
PG_TEMP = str(REPO / "tools" / "pg-temp.sh")


def pg_temp(*args):
    done = subprocess.run([PG_TEMP, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def own_cluster():
    base = Path(tempfile.mkdtemp(prefix="livehub-pg-outage-"))
    os.chmod(base, 0o755)
    cluster, port = str(base / "cluster"), str(free_port())
    url = pg_temp("start", cluster, port)
    yield url, cluster, port
    pg_temp("stop", cluster)
    subprocess.run(["rm", "-rf", str(base)], check=False)


def test_a_node_that_loses_postgresql_answers_503_and_recovers(make_livehub, own_cluster):
    url, cluster, port = own_cluster
    hub = make_livehub(env={"LIVEHUB_DATABASE_URL": url}).start()
    kept = hub.create_room("before the outage")

    pg_temp("stop", cluster)
    started = time.time()
    refused = requests.post(f"{hub.api}/rooms", json={"title": "during the outage"}, headers=hub.headers(), timeout=30)
    elapsed = time.time() - started
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"] == "DATABASE_UNAVAILABLE" and refused.json()["message"]
    assert elapsed < 10, f"the refusal took {elapsed:.1f} s"
    assert requests.get(f"{hub.base}/healthz", timeout=30).status_code == 503
    assert hub.proc.poll() is None, "the node keeps running without its database"

    assert pg_temp("start", cluster, port) == url
    created = hub.wait_for(
        lambda: requests.post(f"{hub.api}/rooms", json={"title": "after the outage"}, headers=hub.headers(), timeout=30).status_code == 201,
        timeout=30, interval=0.5, what="a write after the database came back")
    assert created
    assert requests.get(f"{hub.base}/healthz", timeout=10).status_code == 200
    assert hub.room(kept["id"])["title"] == "before the outage"
    titles = {room["title"] for room in requests.get(f"{hub.api}/rooms/mine", headers=hub.headers(), timeout=10).json()}
    assert {"before the outage", "after the outage"} <= titles and "during the outage" not in titles
