"""Issue 19 items 3-5 end to end: the old Spring service's REST shapes, its stock and user lookups
against a real HTTP server (Python's http.server, started here), and its Kafka `LiveOrderEvent`
posted as Jackson serialised it (README "Differences from the old service", "API summary")."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import pytest
import requests

from jwt_helper import sign
from stomp_client import StompWS

SERVICE_TOKEN = "e2e-service-token"


class Services(BaseHTTPRequestHandler):
    """The site's stock service (`/v1/products/{id}`) and user service (`/v1/users/{id}`)."""
    seen = []  # (path, Authorization) of every request
    products = {
        "tea": (200, {"id": 7, "name": "Green tea", "price": 299000, "imageUrl": "https://img.example/tea.png", "stock": 12}),
        "cup": (200, {"data": {"productName": "Cup", "originalPrice": 1000.0, "productImageUrl": "https://img.example/cup.png",
                               "stockQuantity": 3}}),
        "missing": (404, {"message": "no such product"}),
        "broken": (500, {"message": "boom"}),
    }
    users = {"e2e-user": (200, {"id": 1, "username": "Kim", "avatarUrl": "https://img.example/kim.png"})}

    def do_GET(self):
        Services.seen.append((self.path, self.headers.get("Authorization")))
        kind, _, ident = self.path.removeprefix("/v1/").partition("/")
        ident = unquote(ident)
        if ident.startswith("slow"):
            time.sleep(4)
        if ident == "garbage":
            return self.answer(200, b"<html>not json</html>")
        table = self.products if kind == "products" else self.users
        status, body = table.get(ident, (404, {}))
        self.answer(status, json.dumps(body).encode())

    def answer(self, status, data):
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # LiveHub gave up (the timeout case)

    def log_message(self, *args):
        pass


@pytest.fixture
def services():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Services)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Services.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def hub(make_livehub, services):
    return make_livehub(env={
        "LIVEHUB_STOCK_SERVICE_URL": services, "LIVEHUB_USER_SERVICE_URL": services, "LIVEHUB_SERVICE_TOKEN": SERVICE_TOKEN,
        "LIVEHUB_LOOKUP_TIMEOUT": "1", "LIVEHUB_ORDER_EVENT_TIMEZONE": "Asia/Seoul",
    }).start()


def internal(hub, **extra):
    return {"Authorization": f"Bearer {hub.tokens['internal']}", **extra}


def test_start_end_and_products_answer_the_old_shapes(hub):
    room = hub.create_room("old shapes")
    api = f"{hub.api}/rooms/{room['id']}"
    observer = StompWS(f"ws://127.0.0.1:{hub.http_port}/ws/live")
    try:
        observer.subscribe(f"/topic/live/{room['id']}/product", "p", receipt="ready")
        started = requests.put(f"{api}/start", headers=hub.headers())
        assert started.status_code == 200
        body = started.json()
        assert body["message"] == "Live room started. Start streaming with your stream key."
        assert body["id"] == room["id"] and body["status"] == "WAITING_STREAM" and body["streamKey"] == room["streamKey"]

        # Only {productId, livePrice}: the details come from the stock service.
        created = requests.post(f"{api}/products", json={"productId": "tea", "livePrice": 149000}, headers=hub.headers())
        assert created.status_code == 201, created.text
        tea = created.json()
        assert isinstance(tea, dict), "the created LiveProductDto, not the list"
        assert (tea["productName"], tea["originalPrice"], tea["productImageUrl"], tea["stockAvailable"]) == \
            ("Green tea", 299000, "https://img.example/tea.png", 12)
        assert tea["discountPercent"] == 50.17 and tea["createdAt"].endswith("Z")
        # Given fields win; the `data` wrapper and aliases are read.
        cup = requests.post(f"{api}/products", json={"productId": "cup", "livePrice": 250, "productName": "Mine"}, headers=hub.headers()).json()
        assert (cup["productName"], cup["originalPrice"], cup["stockAvailable"], cup["discountPercent"]) == ("Mine", 1000, 3, 75)
        lists = [message for _, message in observer.messages(f"/topic/live/{room['id']}/product", 2)]
        assert [p["productId"] for p in lists[-1]] == ["tea", "cup"], "the whole list is still broadcast"
        assert Services.seen == [("/v1/products/tea", f"Bearer {SERVICE_TOKEN}"), ("/v1/products/cup", f"Bearer {SERVICE_TOKEN}")]

        # LIVE through the nginx-rtmp callback (loopback callers are trusted in dev mode), then ended.
        assert requests.post(f"{hub.api}/callback/start", params={"name": room["streamKey"]}).status_code == 200
        ended = requests.put(f"{api}/end", headers=hub.headers())
        assert ended.status_code == 200
        end = ended.json()
        assert end["id"] == end["roomId"] == room["id"] and end["status"] == "ENDED" and end["message"] == "Live room ended."
        assert end["duration"] == "0m" and isinstance(end["durationSeconds"], int), end
        assert {"startedAt", "endedAt", "peakViewers", "totalOrders", "totalRevenue", "viewerCount"} <= set(end)
        assert isinstance(requests.get(f"{api}/stats").json()["duration"], int), "stats keep the seconds"
    finally:
        observer.close()


def test_a_failing_stock_service_is_a_clear_error_and_stores_nothing(hub):
    room = hub.create_room("stock failures")
    api = f"{hub.api}/rooms/{room['id']}"
    for product_id, status, code in [("missing", 404, "STOCK_PRODUCT_NOT_FOUND"), ("broken", 502, "STOCK_SERVICE_UNAVAILABLE"),
                                     ("garbage", 502, "STOCK_SERVICE_UNAVAILABLE"), ("slow-1", 504, "STOCK_SERVICE_TIMEOUT")]:
        began = time.monotonic()
        response = requests.post(f"{api}/products", json={"productId": product_id, "livePrice": 1}, headers=hub.headers(), timeout=10)
        assert response.status_code == status, (product_id, response.text)
        assert response.json()["error"] == code and response.json()["message"]
        assert time.monotonic() - began < 3, f"{product_id}: the 1 s lookup timeout cut the 4 s answer short"
    assert "was not found in the stock service" in requests.post(
        f"{api}/products", json={"productId": "missing", "livePrice": 1}, headers=hub.headers()).json()["message"]
    assert requests.get(f"{api}/products").json() == []
    # Healthy afterwards, and a complete product needs no lookup.
    seen = len(Services.seen)
    complete = {"productId": "own", "livePrice": 1, "productName": "n", "originalPrice": 3, "productImageUrl": "https://x.example/a.png",
                "stockAvailable": 1}
    assert requests.post(f"{api}/products", json=complete, headers=hub.headers()).json()["discountPercent"] == 66.67
    assert len(Services.seen) == seen


def test_chat_names_come_from_the_user_service_and_never_hold_a_line(hub):
    room = hub.create_room("names")
    secret = (hub.data_dir / "jwt-secret").read_text().strip()
    exp = int(time.time()) + 600
    bare = sign(secret, {"sub": "e2e-user", "exp": exp})  # no username, no avatarUrl claim
    slow = sign(secret, {"sub": "slow-user", "exp": exp})
    topic = f"/topic/live/{room['id']}/chat"
    observer = StompWS(f"ws://127.0.0.1:{hub.http_port}/ws/live")
    user = StompWS(f"ws://127.0.0.1:{hub.http_port}/ws/live", token=bare)
    slow_user = StompWS(f"ws://127.0.0.1:{hub.http_port}/ws/live", token=slow)
    try:
        observer.subscribe(topic, "o", receipt="ready")
        user.send_json(f"/app/live/{room['id']}/chat", {"message": "first"})
        first = observer.messages(topic, 1)[0][1]
        assert first["username"] == "e2e-user" and first.get("avatarUrl") is None, "a miss goes out with the token's claims"
        hub.wait_for(lambda: any(path == "/v1/users/e2e-user" for path, _ in Services.seen), what="the user lookup")
        time.sleep(0.3)
        user.send_json(f"/app/live/{room['id']}/chat", {"message": "second"})
        second = observer.messages(topic, 1)[0][1]
        assert (second["username"], second["avatarUrl"]) == ("Kim", "https://img.example/kim.png")
        # The user service takes 4 s for this user (longer than the lookup timeout): the lines go out at once all the same.
        began = time.monotonic()
        for index in range(3):
            slow_user.send_json(f"/app/live/{room['id']}/chat", {"message": f"slow {index}"})
        lines = [body for _, body in observer.messages(topic, 3, timeout=5)]
        assert time.monotonic() - began < 1.5
        assert [line["username"] for line in lines] == ["slow-user"] * 3
        lookups = [path for path, _ in Services.seen if path.startswith("/v1/users/")]
        assert lookups == ["/v1/users/e2e-user", "/v1/users/slow-user"], "one lookup per user while cached or pending"
        assert all(auth == f"Bearer {SERVICE_TOKEN}" for _, auth in Services.seen)
    finally:
        for ws in (observer, user, slow_user):
            ws.close()


def test_the_kafka_order_event_is_accepted_as_jackson_wrote_it(hub):
    room = hub.create_room("orders")
    api = f"{hub.api}/rooms/{room['id']}"
    own = {"productId": "coat", "livePrice": 149000, "productName": "Coat", "originalPrice": 299000, "productImageUrl": "https://x.example/c.png",
           "stockAvailable": 5}
    assert requests.post(f"{api}/products", json=own, headers=hub.headers()).status_code == 201
    # Raw bodies, exactly as Spring Kafka's JsonSerializer wrote them.
    iso = ('{"orderId":9001,"roomId":"%s","userId":5,"username":"kim","productId":"coat","productName":"Coat",'
           '"amount":149000.0,"timestamp":"2026-12-07T14:03:22.123"}' % room["id"])
    response = requests.post(f"{hub.api}/orders", data=iso, headers=internal(hub, **{"Content-Type": "application/json"}))
    assert response.status_code == 201, response.text
    assert response.json()["orderedAt"] == "2026-12-07T05:03:22.123Z", "read in LIVEHUB_ORDER_EVENT_TIMEZONE=Asia/Seoul"
    array = ('{"orderId":9002,"roomId":"%s","productId":"coat","amount":1.49E5,"timestamp":[2026,12,7,14,3,22,123000000]}' % room["id"])
    response = requests.post(f"{hub.api}/orders", data=array, headers=internal(hub, **{"Content-Type": "application/json"}))
    assert response.status_code == 201 and response.json()["totalRevenue"] == 298000
    # No orderId: the Idempotency-Key names the order, once.
    keyed = {"roomId": room["id"], "productId": "coat", "amount": 10, "timestamp": "2026-12-07T14:03"}
    first = requests.post(f"{hub.api}/orders", json=keyed, headers=internal(hub, **{"Idempotency-Key": "offset-42"}))
    again = requests.post(f"{hub.api}/orders", json=keyed, headers=internal(hub, **{"Idempotency-Key": "offset-42"}))
    assert (first.status_code, first.json()["orderId"], again.status_code, again.json()["applied"]) == (201, "offset-42", 200, False)

    def figures():
        stats = requests.get(f"{api}/stats").json()
        return (stats["totalOrders"], stats["totalRevenue"], requests.get(f"{api}/products").json()[0]["soldCount"],
                len(requests.get(f"{api}/chats").json()))

    before = figures()
    assert before == (3, 298010, 3, 3)
    malformed = [
        {"roomId": room["id"], "amount": 1},  # no id at all
        {"orderId": "b1", "roomId": room["id"], "productId": "coat", "amount": 1, "timestamp": "07/12/2026 14:03"},
        {"orderId": "b2", "roomId": room["id"], "productId": "coat", "amount": 1, "timestamp": "2026-02-30T10:00:00"},
        {"orderId": "b3", "roomId": room["id"], "productId": "coat", "amount": 1, "timestamp": [2026, 12, 7]},
        {"orderId": "b4", "roomId": room["id"], "productId": "coat", "amount": 1, "timestamp": 1765116202000},
        {"orderId": "b5", "roomId": room["id"], "productId": "coat", "amount": "149000.0"},
        {"orderId": "b6", "productId": "coat", "amount": 1},
    ]
    for event in malformed:
        response = requests.post(f"{hub.api}/orders", json=event, headers=internal(hub))
        assert response.status_code == 400, (event, response.text)
        assert response.json()["error"] == "BAD_REQUEST" and response.json()["message"]
    raw = '{"orderId":"b7","roomId":"%s","productId":"coat","amount":1e400}' % room["id"]
    response = requests.post(f"{hub.api}/orders", data=raw, headers=internal(hub, **{"Content-Type": "application/json"}))
    assert response.status_code == 400 and "JSON" in response.json()["message"], response.text
    assert requests.post(f"{hub.api}/orders", json={"orderId": "b8", "roomId": room["id"], "amount": -1}, headers=internal(hub)).status_code == 422
    assert figures() == before, "nothing of a refused event was applied"
    assert requests.get(f"{hub.base}/healthz").status_code == 200
