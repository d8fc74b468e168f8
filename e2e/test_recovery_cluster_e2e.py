"""Issue 22 §4 with two nodes on one PostgreSQL: a subscriber that was on node 1 re-subscribes on
node 2 with `recover-offset`/`recover-epoch` and gets exactly what it missed (chat from the
database, products from node 2's history ring: the same outbox ids and the cluster's one epoch)."""
import json
import time

import pytest
import requests

from cluster import Cluster, PostgresServer, postgres_available
from stomp_client import StompWS

pytestmark = pytest.mark.skipif(not postgres_available(), reason="PostgreSQL's server binaries are not installed (apt-get install postgresql)")


@pytest.fixture(scope="module")
def postgres():
    server = PostgresServer()
    yield server
    server.stop()


def ws(node, token_value=None):
    return StompWS(f"ws://127.0.0.1:{node.http_port}/ws/live", token=token_value)


def until_marker(client, destination):
    missed = []
    while True:
        _, headers, body = client.expect("MESSAGE", where=lambda h, b: h.get("destination") == destination)
        if "recovered" in headers:
            return missed, headers
        missed.append((headers, json.loads(body)))


def test_a_subscriber_of_node_1_recovers_on_node_2(postgres, tmp_path):
    cluster = Cluster(postgres, tmp_path, count=2).start()
    one, two = cluster.nodes
    try:
        room = requests.post(f"{one.api}/rooms", json={"title": "recover across nodes"}, headers=one.headers()).json()
        rid = room["id"]
        chat, product = f"/topic/live/{rid}/chat", f"/topic/live/{rid}/product"
        owner = ws(one, one.tokens["owner"])
        witness = ws(two)
        away = ws(one)
        for client in (witness, away):
            client.subscribe(chat, "c")
            client.subscribe(product, "p", receipt="ready")
        owner.send_json(f"/app/live/{rid}/chat", {"message": "before"})
        requests.post(f"{one.api}/rooms/{rid}/products", json={"productId": 1, "livePrice": 5, "productName": "A"}, headers=one.headers())
        last = {dest: away.messages(dest, 1)[-1][0] for dest in (chat, product)}
        witness.messages(chat, 1)
        witness.messages(product, 1)
        away.close()
        for i in range(3):
            owner.send_json(f"/app/live/{rid}/chat", {"message": f"missed {i}"})
            time.sleep(0.25)
        for n in (2, 3):
            assert requests.post(f"{two.api}/rooms/{rid}/products", json={"productId": n, "livePrice": 5, "productName": f"P{n}"},
                                 headers=two.headers()).status_code == 201
        seen_chat = witness.messages(chat, 3)
        seen_products = witness.messages(product, 2)
        back = ws(two)
        for dest, sub in ((chat, "c"), (product, "p")):
            back.send_frame("SUBSCRIBE", {"destination": dest, "id": sub, "recover-offset": last[dest]["offset"], "recover-epoch": last[dest]["epoch"]})
        got_chat, chat_marker = until_marker(back, chat)
        got_products, product_marker = until_marker(back, product)
        assert chat_marker["recovered"] == "true" and product_marker["recovered"] == "true"
        assert [(h["offset"], b["message"]) for h, b in got_chat] == [(h["offset"], b["message"]) for h, b in seen_chat]
        assert [(h["offset"], b) for h, b in got_products] == [(h["offset"], b) for h, b in seen_products]
        assert chat_marker["epoch"] == last[chat]["epoch"], "one epoch for the cluster"
        for client in (owner, witness, back):
            client.close()
    finally:
        cluster.stop()
