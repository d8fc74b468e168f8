"""Issue 22 §1 on two nodes and one real PostgreSQL: buyers claim one deal through both nodes at
once — never more than its units, never more than the per-buyer limit; each transition (`started`,
`ended`) is announced once although both nodes run the scheduler; expired reservations give their
units back once although both nodes sweep; subscribers on both nodes see the same events."""
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from cluster import Cluster, PostgresServer, postgres_available, token
from stomp_client import StompWS

pytestmark = pytest.mark.skipif(not postgres_available(), reason="PostgreSQL's server binaries are not installed (apt-get install postgresql)")

RESERVATION_SECONDS = 6


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    postgres = PostgresServer()
    nodes = Cluster(postgres, tmp_path_factory.mktemp("deals-cluster"), count=2, env={
        "LIVEHUB_DEAL_RESERVATION_SECONDS": str(RESERVATION_SECONDS), "LIVEHUB_DEAL_SWEEP_SECONDS": "0.2",
        "LIVEHUB_LOG_LEVEL": "warning"}).start()
    yield nodes
    nodes.stop()
    postgres.stop()


def events_of(client, topic, until, timeout):
    """Deal events on `client` until one satisfies `until` (returned with all before it)."""
    got = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            _, _, body = client.expect("MESSAGE", timeout=max(0.1, deadline - time.time()), where=lambda h, b: h.get("destination") == topic)
        except AssertionError:
            break
        got.append(json.loads(body))
        if until(got[-1]):
            return got
    raise AssertionError(f"timed out; events so far: {[(e['type'], e['deal']['remaining']) for e in got]}")


def test_claims_through_two_nodes_never_oversell_and_each_transition_is_announced_once(cluster):
    node1, node2 = cluster.nodes
    room = requests.post(f"{node1.api}/rooms", json={"title": "cluster deals"}, headers=node1.headers()).json()
    product = requests.post(f"{node1.api}/rooms/{room['id']}/products", headers=node1.headers(),
                            json={"productId": "p", "livePrice": 10, "productName": "Cup"}).json()
    topic = f"/topic/live/{room['id']}/deal"
    watchers = [StompWS(f"ws://127.0.0.1:{node.http_port}/ws/live") for node in (node1, node2)]
    try:
        for index, watcher in enumerate(watchers):
            watcher.subscribe(topic, f"w{index}", receipt="ready")
        deal = requests.post(f"{node1.api}/rooms/{room['id']}/deals", headers=node1.headers(),
                             json={"liveProductId": product["id"], "dealPrice": 5, "quantity": 40, "perBuyerLimit": 2,
                                   "startsInSeconds": 2, "durationSeconds": 14}).json()
        seen = {id(w): events_of(w, topic, lambda e: e["type"] == "started", timeout=10) for w in watchers}

        # 200 buyers (half through each node) and one buyer trying 10 times through both.
        claims = [(f"buyer-{i}", (node1, node2)[i % 2]) for i in range(200)] + [("greedy", (node1, node2)[i % 2]) for i in range(10)]
        tokens = {user: token(user) for user, _ in claims}
        barrier = threading.Barrier(len(claims))

        def claim(item):
            user, node = item
            barrier.wait(timeout=30)
            response = requests.post(f"{node.api}/rooms/{room['id']}/deals/{deal['id']}/claims", json={"quantity": 1},
                                     headers={"Authorization": f"Bearer {tokens[user]}"}, timeout=60)
            return user, response.status_code, response.json()

        with ThreadPoolExecutor(max_workers=len(claims)) as pool:
            results = list(pool.map(claim, claims))
        won = [(user, body) for user, status, body in results if status == 201]
        assert len(won) == 40, f"{len(won)} units reserved of 40"
        assert {body["error"] for _, status, body in results if status != 201} <= {"SOLD_OUT", "OVER_LIMIT"}
        assert sum(1 for user, _ in won if user == "greedy") <= 2, "the per-buyer limit holds across nodes"

        # Ten reservations are paid (through node 2); the other 30 expire and return once.
        internal = {"Authorization": f"Bearer {node2.tokens['internal']}"}
        for index, (_, body) in enumerate(won[:10]):
            order = {"orderId": f"c-{index}", "roomId": room["id"], "amount": 5, "reservationId": body["reservationId"]}
            assert requests.post(f"{node2.api}/orders", json=order, headers=internal).status_code == 201
        for watcher in watchers:
            tail = events_of(watcher, topic, lambda e: e["type"] == "ended", timeout=20)
            seen[id(watcher)] += tail
            assert any(e["type"] == "stock" and e["deal"]["remaining"] == 30 for e in tail), "the expired units came back"
            after_sold_out = tail[[e["type"] for e in tail].index("sold-out"):]
            assert not any(e["type"] == "stock" and e["deal"]["remaining"] > 30 for e in after_sold_out), "…once"
        listed = requests.get(f"{node2.api}/rooms/{room['id']}/deals").json()[0]
        assert listed["remaining"] == 30 and listed["status"] == "ended"
        # Both nodes ran the scheduler and the sweep; each transition was announced once.
        time.sleep(0.5)
        for watcher in watchers:
            events = seen[id(watcher)] + [json.loads(body) for command, headers, body in watcher.drain()
                                          if command == "MESSAGE" and headers.get("destination") == topic]
            kinds = [e["type"] for e in events]
            assert kinds.count("scheduled") == 1 and kinds.count("started") == 1 and kinds.count("ended") == 1, kinds
            assert kinds.count("sold-out") == 1, kinds
    finally:
        for watcher in watchers:
            watcher.close()
