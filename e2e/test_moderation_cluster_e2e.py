"""Issue 22 §3 across nodes: two LiveHub nodes on one real PostgreSQL. A ban made through node 1
holds for a user chatting on node 2 within about a second (the moderation cache's 1 s TTL), and a
line deleted through node 1 leaves node 2's subscribers as `{"type":"DELETED","id"}`."""
import json
import time

import pytest
import requests

from cluster import Cluster, PostgresServer, postgres_available, token
from stomp_client import StompWS

pytestmark = pytest.mark.skipif(not postgres_available(), reason="PostgreSQL's server binaries are not installed (apt-get install postgresql)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    postgres = PostgresServer()
    nodes = Cluster(postgres, tmp_path_factory.mktemp("mod-cluster"), count=2).start()
    try:
        yield nodes
    finally:
        nodes.stop()
        postgres.stop()


def test_a_ban_on_node_1_holds_on_node_2_within_a_second_and_deletes_cross_nodes(cluster):
    node1, node2 = cluster.nodes
    room = requests.post(f"{node1.api}/rooms", json={"title": "moderated cluster"}, headers=node1.headers(), timeout=5).json()["id"]
    topic = f"/topic/live/{room}/chat"
    user = StompWS(f"ws://127.0.0.1:{node2.http_port}/ws/live", token=token("c-user"))
    watcher = StompWS(f"ws://127.0.0.1:{node2.http_port}/ws/live", token=token("c-watcher"))
    try:
        user.subscribe("/user/queue/errors", "errors")
        user.subscribe(topic, "chat", receipt="ready")
        watcher.subscribe(topic, "chat", receipt="ready")
        user.send_json(f"/app/live/{room}/chat", {"message": "hello from node 2"}, receipt="r0")
        assert user.expect("RECEIPT", where=lambda h, b: h.get("receipt-id") == "r0")[1].get("status") is None
        line = watcher.messages(topic, 1)[0][1]
        # Deleted through node 1: node 2's subscriber sees the DELETED message.
        response = requests.delete(f"{node1.api}/rooms/{room}/chats/{line['id']}", headers=node1.headers(), timeout=5)
        assert response.status_code == 200, response.text
        deleted = watcher.messages(topic, 1)[0][1]
        assert deleted == {"type": "DELETED", "id": line["id"]}
        assert requests.get(f"{node2.api}/rooms/{room}/chats", timeout=5).json() == []
        # Banned through node 1; node 2 refuses within about a second.
        assert requests.post(f"{node1.api}/rooms/{room}/bans", json={"userId": "c-user"}, headers=node1.headers(), timeout=5).status_code == 201
        banned_at = time.time()
        refused_after = None
        for attempt in range(15):
            receipt = f"b{attempt}"
            user.send_json(f"/app/live/{room}/chat", {"message": f"try {attempt}"}, receipt=receipt)
            headers = user.expect("RECEIPT", where=lambda h, b, r=receipt: h.get("receipt-id") == r)[1]
            if headers.get("status") == "refused":
                assert headers.get("error-code") == "banned", headers
                refused_after = time.time() - banned_at
                break
            time.sleep(0.2)
        assert refused_after is not None and refused_after < 1.6, f"node 2 enforced the ban after {refused_after}"
        print(f"ban on node 1 enforced on node 2 after {refused_after:.2f} s")
    finally:
        user.close()
        watcher.close()
