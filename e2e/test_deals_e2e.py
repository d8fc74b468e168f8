"""Issue 22 §1 end to end: flash deals on the real binary — 1,000 real HTTP buyers with their own
JWTs claiming at once, the per-buyer limit, reservations confirmed by the order endpoint or
expiring (their units return, broadcast), `started`/`ended` on time with the server's clock, and
hostile numbers refused next to a healthy deal. Subscribers are stomp.py and the websocket-client
STOMP client."""
import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
import requests
import stomp

from conftest import LiveHubProcess
from jwt_helper import sign
from stomp_client import StompWS

SHORT_RESERVATION_SECONDS = 2


def iso(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def run_hub(env):
    with tempfile.TemporaryDirectory(prefix="livehub-e2e-deals-") as directory:
        server = LiveHubProcess(Path(directory) / "data", env={"LIVEHUB_DEAL_SWEEP_SECONDS": "0.2", "LIVEHUB_LOG_LEVEL": "warning", **env}).start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def hub():
    """The default reservation lifetime (10 minutes): nothing expires during a test."""
    yield from run_hub({})


@pytest.fixture(scope="module")
def short_hub():
    """Reservations expire after 2 s."""
    yield from run_hub({"LIVEHUB_DEAL_RESERVATION_SECONDS": str(SHORT_RESERVATION_SECONDS)})


def buyer_token(hub, user_id):
    secret = (hub.data_dir / "jwt-secret").read_text().strip()
    return sign(secret, {"sub": user_id, "username": user_id, "roles": ["USER"], "exp": int(time.time()) + 3600})


def room_with_product(hub, price=100):
    room = hub.create_room("deals")
    product = requests.post(
        f"{hub.api}/rooms/{room['id']}/products", headers=hub.headers(),
        json={"productId": "sneaker", "livePrice": price, "originalPrice": price * 2, "productName": "Sneaker"})
    assert product.status_code == 201, product.text
    return room["id"], product.json()["id"]


def create_deal(hub, room_id, product_id, **fields):
    body = {"liveProductId": product_id, "dealPrice": 49, "quantity": 100, "perBuyerLimit": 1, "durationSeconds": 120}
    body.update(fields)
    response = requests.post(f"{hub.api}/rooms/{room_id}/deals", headers=hub.headers(), json=body)
    assert response.status_code == 201, response.text
    return response.json()


class DealListener(stomp.ConnectionListener):
    def __init__(self):
        self.events = []
        self.lock = threading.Lock()

    def on_message(self, frame):
        with self.lock:
            self.events.append((time.time(), json.loads(frame.body)))

    def of(self, kind, deal_id):
        with self.lock:
            return [(at, event) for at, event in self.events if event["type"] == kind and event["deal"]["id"] == deal_id]


def subscribe(hub, room_id):
    listener = DealListener()
    conn = stomp.WSStompConnection([("127.0.0.1", hub.http_port)], ws_path="/ws/live")
    conn.set_listener("deals", listener)
    conn.connect(wait=True)
    conn.subscribe(f"/topic/live/{room_id}/deal", id="deal", headers={"receipt": "subscribed"})
    time.sleep(0.3)
    return conn, listener


def claim_all(hub, room_id, deal_id, tokens, quantity=1, workers=200):
    """Every token claims once, all at once (a barrier releases the threads together)."""
    local = threading.local()
    start = threading.Barrier(min(workers, len(tokens)))

    def claim(token):
        if not hasattr(local, "session"):
            local.session = requests.Session()
            try:
                start.wait(timeout=30)
            except threading.BrokenBarrierError:
                pass
        response = local.session.post(
            f"{hub.api}/rooms/{room_id}/deals/{deal_id}/claims", json={"quantity": quantity},
            headers={"Authorization": f"Bearer {token}"}, timeout=60)
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(claim, tokens))


def test_1000_buyers_at_once_get_exactly_the_100_units_and_the_order_confirms_a_reservation(hub):
    room_id, product_id = room_with_product(hub)
    conn, listener = subscribe(hub, room_id)
    try:
        deal = create_deal(hub, room_id, product_id, quantity=100, perBuyerLimit=1)
        assert deal["status"] == "live" and deal["remaining"] == 100 and deal["originalPrice"] == 200
        tokens = [buyer_token(hub, f"buyer-{index}") for index in range(1000)]
        began = time.time()
        results = claim_all(hub, room_id, deal["id"], tokens)
        print(f"1,000 concurrent claims answered in {time.time() - began:.2f} s")
        won = [body for status, body in results if status == 201]
        refused = [body for status, body in results if status != 201]
        assert len(won) == 100, f"{len(won)} successes"
        assert all(body["error"] == "SOLD_OUT" for body in refused), {body.get("error") for body in refused}
        assert len(refused) == 900
        assert sorted(body["remaining"] for body in won) == list(range(100)), "each success took one unit"
        assert all(iso(body["expiresAt"]) > began + 590 for body in won), "reserved for 10 minutes"
        assert requests.get(f"{hub.api}/rooms/{room_id}/deals").json()[0]["remaining"] == 0

        # The order service pays for one reservation: confirmed (idempotently).
        internal = {"Authorization": f"Bearer {hub.tokens['internal']}"}
        order = {"orderId": "deal-order-1", "roomId": room_id, "amount": 49, "productId": "sneaker", "reservationId": won[0]["reservationId"]}
        assert requests.post(f"{hub.api}/orders", json=order, headers=internal).status_code == 201
        assert requests.post(f"{hub.api}/orders", json=order, headers=internal).status_code == 200
        unknown = dict(order, orderId="deal-order-x", reservationId="not-a-reservation")
        refusal = requests.post(f"{hub.api}/orders", json=unknown, headers=internal)
        assert refusal.status_code == 409 and refusal.json()["error"] == "RESERVATION_NOT_FOUND"
        assert hub.room(room_id)["totalOrders"] == 1, "the refused order was not applied"

        # Events: scheduled, started, sold-out once; `stock` at most 10 per second.
        hub.wait_for(lambda: listener.of("sold-out", deal["id"]), timeout=5, what="sold-out")
        time.sleep(0.3)
        assert len(listener.of("scheduled", deal["id"])) == 1 and len(listener.of("started", deal["id"])) == 1
        assert len(listener.of("sold-out", deal["id"])) == 1
        stock_times = [at for at, _ in listener.of("stock", deal["id"])]
        assert stock_times, "stock events while the units went"
        window = max(stock_times) - min(stock_times)
        assert len(stock_times) <= window * 10 + 2, f"{len(stock_times)} stock events in {window:.2f}s"
        for _, event in listener.events:
            assert {"type", "deal", "serverTime"} <= set(event) and event["deal"]["startsAt"].endswith("Z")
            assert len(event["serverTime"]) == len("2026-01-01T00:00:00.000Z")
    finally:
        conn.disconnect()


def test_expired_reservations_return_their_units_once_with_a_stock_event(short_hub):
    hub = short_hub
    room_id, product_id = room_with_product(hub)
    conn, listener = subscribe(hub, room_id)
    try:
        deal = create_deal(hub, room_id, product_id, quantity=5, perBuyerLimit=1)
        users = [f"s-{i}" for i in range(6)]
        won = claim_all(hub, room_id, deal["id"], [buyer_token(hub, user) for user in users], workers=6)
        reserved = [body for status, body in won if status == 201]
        reserved_by = [user for user, (status, _) in zip(users, won) if status == 201]
        assert len(reserved) == 5 and [body["error"] for status, body in won if status != 201] == ["SOLD_OUT"]
        internal = {"Authorization": f"Bearer {hub.tokens['internal']}"}
        order = {"orderId": "short-1", "roomId": room_id, "amount": 49, "reservationId": reserved[0]["reservationId"]}
        assert requests.post(f"{hub.api}/orders", json=order, headers=internal).status_code == 201
        # The other four expire: their units come back, once, and a `stock` event says so.
        sold_out_at = hub.wait_for(lambda: listener.of("sold-out", deal["id"]), timeout=5, what="sold-out")[0][0]
        hub.wait_for(lambda: [e for at, e in listener.of("stock", deal["id"]) if at > sold_out_at and e["deal"]["remaining"] == 4],
                     timeout=SHORT_RESERVATION_SECONDS + 5, what="the stock event of the returned units")
        time.sleep(0.5)
        assert requests.get(f"{hub.api}/rooms/{room_id}/deals").json()[0]["remaining"] == 4, "returned once (twice would be 5)"
        assert [e["deal"]["remaining"] for at, e in listener.of("stock", deal["id"]) if at > sold_out_at][-1] == 4
        late = dict(order, orderId="short-2", reservationId=reserved[1]["reservationId"])
        expired = requests.post(f"{hub.api}/orders", json=late, headers=internal)
        assert expired.status_code == 409 and expired.json()["error"] == "RESERVATION_EXPIRED"
        assert hub.room(room_id)["totalOrders"] == 1, "the expired reservation's order was not applied"
        again = requests.post(f"{hub.api}/rooms/{room_id}/deals/{deal['id']}/claims", json={},
                              headers={"Authorization": f"Bearer {buyer_token(hub, reserved_by[1])}"})
        assert again.status_code == 201, "a buyer whose reservation expired may claim again"
    finally:
        conn.disconnect()


def test_the_per_buyer_limit_holds_when_one_buyer_claims_50_times_at_once(hub):
    room_id, product_id = room_with_product(hub)
    deal = create_deal(hub, room_id, product_id, quantity=100, perBuyerLimit=3)
    token = buyer_token(hub, "greedy")
    results = claim_all(hub, room_id, deal["id"], [token] * 50, workers=50)
    assert sum(1 for status, _ in results if status == 201) == 3
    assert [body["error"] for status, body in results if status != 201] == ["OVER_LIMIT"] * 47
    other = requests.post(f"{hub.api}/rooms/{room_id}/deals/{deal['id']}/claims", json={"quantity": 4},
                          headers={"Authorization": f"Bearer {buyer_token(hub, 'other')}"})
    assert other.status_code == 409 and other.json()["error"] == "OVER_LIMIT"
    guest = requests.post(f"{hub.api}/rooms/{room_id}/deals/{deal['id']}/claims", json={"quantity": 1})
    assert guest.status_code == 401
    assert requests.get(f"{hub.api}/rooms/{room_id}/deals").json()[0]["remaining"] == 97


def test_started_and_ended_arrive_on_time_and_claims_outside_are_refused(hub):
    room_id, product_id = room_with_product(hub)
    viewer = StompWS(f"ws://127.0.0.1:{hub.http_port}/ws/live")
    try:
        viewer.subscribe(f"/topic/live/{room_id}/deal", "d", receipt="ready")
        deal = create_deal(hub, room_id, product_id, quantity=5, startsInSeconds=1, durationSeconds=10)
        later = create_deal(hub, room_id, product_id, quantity=5, startsInSeconds=600, durationSeconds=10)
        buyer = {"Authorization": f"Bearer {buyer_token(hub, 'early-bird')}"}
        early = requests.post(f"{hub.api}/rooms/{room_id}/deals/{deal['id']}/claims", json={}, headers=buyer)
        assert early.status_code == 409 and early.json()["error"] == "NOT_STARTED"
        assert requests.delete(f"{hub.api}/rooms/{room_id}/deals/{later['id']}", headers=hub.headers()).json()["status"] == "cancelled"
        topic = f"/topic/live/{room_id}/deal"
        events = {}
        deadline = time.time() + 16
        while "ended" not in events and time.time() < deadline:
            _, _, body = viewer.expect("MESSAGE", timeout=max(0.1, deadline - time.time()), where=lambda h, b: h.get("destination") == topic)
            event = json.loads(body)
            if event["deal"]["id"] == deal["id"]:
                events[event["type"]] = (time.time(), event)
            elif event["type"] == "cancelled":
                events["cancelled-later"] = (time.time(), event)
        assert {"scheduled", "started", "ended", "cancelled-later"} <= set(events), sorted(events)
        starts, ends = iso(deal["startsAt"]), iso(deal["endsAt"])
        assert abs(ends - starts - 10) < 0.01
        started_at = iso(events["started"][1]["serverTime"])
        ended_at = iso(events["ended"][1]["serverTime"])
        assert starts <= started_at < starts + 1.5, "started fires at startsAt (server clock)"
        assert ends <= ended_at < ends + 1.5, "ended fires at endsAt (server clock)"
        assert events["started"][1]["deal"]["status"] == "live" and events["ended"][1]["deal"]["status"] == "ended"
        assert events["started"][1]["deal"]["startsAt"] == deal["startsAt"] and events["ended"][1]["deal"]["endsAt"] == deal["endsAt"]
        after = requests.post(f"{hub.api}/rooms/{room_id}/deals/{deal['id']}/claims", json={}, headers=buyer)
        assert after.status_code == 409 and after.json()["error"] == "DEAL_ENDED"
        started_deal = requests.delete(f"{hub.api}/rooms/{room_id}/deals/{deal['id']}", headers=hub.headers())
        assert started_deal.status_code == 409 and started_deal.json()["error"] == "DEAL_STARTED"
    finally:
        viewer.close()


def test_hostile_numbers_get_400_next_to_a_healthy_deal(hub):
    room_id, product_id = room_with_product(hub)
    healthy = create_deal(hub, room_id, product_id, quantity=10, perBuyerLimit=2)
    url = f"{hub.api}/rooms/{room_id}/deals"
    headers = dict(hub.headers(), **{"Content-Type": "application/json"})
    valid = f'"liveProductId": "{product_id}", "durationSeconds": 60'
    for body in [
        f'{{{valid}, "dealPrice": NaN, "quantity": 5}}',
        f'{{{valid}, "dealPrice": 1e309, "quantity": 5}}',
        f'{{{valid}, "dealPrice": -0.01, "quantity": 5}}',
        f'{{{valid}, "dealPrice": 1e12, "quantity": 5}}'.replace("1e12", "1000000000001"),
        f'{{{valid}, "dealPrice": 1, "quantity": 1.5}}',
        f'{{{valid}, "dealPrice": 1, "quantity": 1e400}}',
        f'{{{valid}, "dealPrice": 1, "quantity": 99999999999999999999999}}',
        f'{{{valid}, "dealPrice": 1, "quantity": -5}}',
        f'{{{valid}, "dealPrice": 1, "quantity": 5, "perBuyerLimit": 6}}',
        f'{{{valid}, "dealPrice": 1, "quantity": 5, "startsInSeconds": 3601}}',
        f'{{"liveProductId": "{product_id}", "dealPrice": 1, "quantity": 5, "durationSeconds": 1e-9}}',
        f'{{"liveProductId": "{product_id}", "dealPrice": 1, "quantity": 5, "durationSeconds": 3601}}',
        '{"liveProductId": {"$gt": ""}, "dealPrice": 1, "quantity": 5, "durationSeconds": 60}',
        "not json",
    ]:
        response = requests.post(url, data=body, headers=headers)
        assert response.status_code == 400, (body, response.status_code, response.text)
        assert response.json()["error"] and response.json()["message"]
    for body in ['{"quantity": NaN}', '{"quantity": 1e309}', '{"quantity": 0}', '{"quantity": 2.5}', '{"quantity": -1}']:
        response = requests.post(f"{url}/{healthy['id']}/claims", data=body,
                                 headers={"Authorization": f"Bearer {buyer_token(hub, 'h')}", "Content-Type": "application/json"})
        assert response.status_code == 400, (body, response.text)
    assert requests.post(f"{url}/no-such-deal/claims", json={}, headers={"Authorization": f"Bearer {buyer_token(hub, 'h')}"}).status_code == 404
    ok = requests.post(f"{url}/{healthy['id']}/claims", json={"quantity": 2}, headers={"Authorization": f"Bearer {buyer_token(hub, 'h')}"})
    assert ok.status_code == 201 and ok.json()["remaining"] == 8
    listed = requests.get(url).json()
    assert [d["id"] for d in listed] == [healthy["id"]], "nothing hostile was stored"
    assert requests.get(f"{hub.base}/healthz").status_code == 200
