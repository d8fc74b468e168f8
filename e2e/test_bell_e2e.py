"""Issue 7 end to end: the notification bell with real python-socketio clients (websocket
transport) against the real binary: three tabs of one user and another user."""
import threading
import time

import requests
import socketio

from conftest import LiveHubProcess


class Tab:
    """One browser tab: a python-socketio client that records what it receives."""

    def __init__(self, hub, token, name):
        self.name = name
        self.events = []
        self.lock = threading.Lock()
        self.client = socketio.Client(reconnection=False)
        for event in ("notification:new", "notification:updated", "unreadCount:updated", "error"):
            self.client.on(event, self._recorder(event))
        self.client.connect(f"http://127.0.0.1:{hub.http_port}", transports=["websocket"], auth={"token": token}, wait_timeout=5)

    def _recorder(self, event):
        def record(data=None):
            with self.lock:
                self.events.append((event, data))
        return record

    def of(self, event):
        with self.lock:
            return [data for name, data in self.events if name == event]

    def wait(self, event, count=1, timeout=5):
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = self.of(event)
            if len(got) >= count:
                return got
            time.sleep(0.02)
        raise AssertionError(f"{self.name}: {count}× {event} not received; got {self.events}")

    def wait_last(self, event, expected, timeout=5):
        """Waits until the latest `event` received equals `expected` (pushes may still be in flight)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = self.of(event)
            if got and got[-1] == expected:
                return got
            time.sleep(0.02)
        raise AssertionError(f"{self.name}: last {event} is not {expected}; got {self.events}")

    def clear(self):
        with self.lock:
            self.events.clear()

    def close(self):
        self.client.disconnect()


def create(hub, user_id, title):
    response = requests.post(f"{hub.base}/internal/notifications", json={"userId": user_id, "type": "INFO", "title": title},
                             headers={"Authorization": f"Bearer {hub.tokens['internal']}"})
    assert response.status_code == 201, response.text
    return response.json()


def test_three_tabs_stay_in_sync_and_other_users_see_nothing(livehub):
    viewer = livehub.tokens["viewer"]
    tabs = [Tab(livehub, viewer, name) for name in "ABC"]
    other = Tab(livehub, livehub.tokens["owner"], "other")
    try:
        for tab in tabs + [other]:
            tab.wait("unreadCount:updated")  # the current count on connect
            tab.clear()
        first = create(livehub, "dev-viewer", "Your order shipped")
        second = create(livehub, "dev-viewer", "Flash sale at 8")
        for tab in tabs:
            news = tab.wait("notification:new", 2)
            assert [n["title"] for n in news] == ["Your order shipped", "Flash sale at 8"]
            assert news[1]["unreadCount"] == 2 and news[0]["notificationId"] == first["id"]
        time.sleep(0.3)
        assert other.of("notification:new") == []

        for tab in tabs:
            tab.clear()
        ack = tabs[0].client.call("notification:read", {"notificationId": first["id"]}, timeout=5)
        assert ack["ok"] is True and ack["unreadCount"] == 1
        for tab in tabs:
            updated = tab.wait("notification:updated")[0]
            assert updated == {"action": "read", "notificationId": first["id"], "unreadCount": 1}
            tab.wait_last("unreadCount:updated", {"count": 1})

        # A repeated read is idempotent: same count, no new push.
        for tab in tabs:
            tab.clear()
        again = tabs[1].client.call("notification:read", {"notificationId": first["id"]}, timeout=5)
        assert again["unreadCount"] == 1
        time.sleep(0.3)
        assert all(tab.of("notification:updated") == [] for tab in tabs)

        ack = tabs[2].client.call("notification:read-all", None, timeout=5)
        assert ack["unreadCount"] == 0
        for tab in tabs:
            assert tab.wait("notification:updated")[-1]["action"] == "read-all"
            tab.wait_last("unreadCount:updated", {"count": 0})
        # REST reads push the same way.
        third = create(livehub, "dev-viewer", "Restock")
        for tab in tabs:
            assert tab.wait("notification:new")[-1]["title"] == "Restock"
            tab.wait_last("unreadCount:updated", {"count": 1})
            tab.clear()
        r = requests.post(f"{livehub.base}/v1/notifications/{third['id']}/read", headers=livehub.headers("viewer"))
        assert r.status_code == 200
        for tab in tabs:
            tab.wait_last("unreadCount:updated", {"count": 0})
        assert other.of("notification:updated") == []
    finally:
        for tab in tabs + [other]:
            tab.close()


def test_a_bad_token_gets_connect_error(livehub, data_dir):
    import jwt_helper
    forged = jwt_helper.expired_like(livehub.tokens["viewer"])
    expired = jwt_helper.expired_token(data_dir)
    cases = [("garbage", "jwt"), (livehub.tokens["viewer"][:-4] + "AAAA", "signature"), (forged, "signature"),
             (expired, "expired")]
    for token, expected in cases:
        client = socketio.Client(reconnection=False)
        reasons = []
        client.on("connect_error", lambda data: reasons.append(data))
        try:
            client.connect(f"http://127.0.0.1:{livehub.http_port}", transports=["websocket"], auth={"token": token} if token else None, wait_timeout=5)
            raise AssertionError("a bad token must be refused")
        except socketio.exceptions.ConnectionError:
            pass
        finally:
            client.disconnect()
        assert reasons and expected in str(reasons[0]).lower(), (token, reasons)


def test_a_bad_payload_gets_an_error_ack_and_the_connection_stays(livehub):
    tab = Tab(livehub, livehub.tokens["viewer"], "A")
    try:
        for payload in [None, {"notificationId": 42.5}, {"wrong": 1}, "text"]:
            ack = tab.client.call("notification:read", payload, timeout=5)
            assert ack.get("error"), payload
        ack = tab.client.call("notification:read", {"notificationId": "does-not-exist"}, timeout=5)
        assert ack["error"] == "not-found"
        ack = tab.client.call("no:such:event", {}, timeout=5)
        assert ack["error"]
        assert tab.client.connected
        assert tab.client.call("notification:read-all", None, timeout=5)["ok"] is True
    finally:
        tab.close()


def test_a_flood_is_rate_limited_and_the_connection_stays(livehub):
    tab = Tab(livehub, livehub.tokens["viewer"], "A")
    try:
        acks = []
        done = threading.Event()
        for _ in range(30):
            tab.client.emit("notification:read-all", None, callback=lambda *a: acks.append(a[0] if a else None))
        deadline = time.time() + 5
        while len(acks) < 30 and time.time() < deadline:
            time.sleep(0.02)
        limited = [a for a in acks if isinstance(a, dict) and a.get("error")]
        assert len(acks) == 30 and 0 < len(limited) <= 25
        time.sleep(1.1)
        assert tab.client.call("notification:read-all", None, timeout=5)["ok"] is True
    finally:
        tab.close()


def test_after_disconnects_the_per_user_registry_is_empty(livehub):
    tabs = [Tab(livehub, livehub.tokens["viewer"], str(i)) for i in range(3)]
    metrics = requests.get(f"{livehub.base}/metrics").text
    assert any(line.startswith("livehub_hub_users") and not line.endswith(" 0") for line in metrics.splitlines() if "socketio" in line), metrics
    for tab in tabs:
        tab.close()
    deadline = time.time() + 5
    while time.time() < deadline:
        lines = [l for l in requests.get(f"{livehub.base}/metrics").text.splitlines() if l.startswith("livehub_hub_users") and "socketio" in l]
        if lines and all(l.endswith(" 0") or l.endswith(" 0.0") for l in lines):
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"users still online: {lines}")
    # Reconnect works.
    again = Tab(livehub, livehub.tokens["viewer"], "again")
    again.wait("unreadCount:updated")
    again.close()


def test_an_order_and_going_live_notify_the_shop_owner(livehub):
    owner = Tab(livehub, livehub.tokens["owner"], "owner")
    try:
        room = livehub.create_room("notify me")
        requests.post(f"{livehub.api}/callback/start?name={room['streamKey']}")
        live = owner.wait("notification:new")[0]
        assert live["title"] == "You are live"
        order = {"orderId": "n-1", "roomId": room["id"], "username": "kim", "productName": "Tea", "amount": 900}
        requests.post(f"{livehub.api}/orders", json=order, headers={"Authorization": f"Bearer {livehub.tokens['internal']}"})
        news = owner.wait("notification:new", 2)
        assert "order" in news[1]["title"].lower() and "kim" in (news[1]["body"] or "")
    finally:
        owner.close()


def test_a_client_that_connects_first_authenticates_with_an_auth_event(livehub):
    client = socketio.Client(reconnection=False)
    received = []
    client.on("notification:new", lambda data: received.append(data))
    client.connect(f"http://127.0.0.1:{livehub.http_port}", transports=["websocket"], wait_timeout=5)
    try:
        refused = client.call("notification:read-all", None, timeout=5)
        assert refused.get("error"), "events before AUTH are refused"
        bad = client.call("AUTH", {"token": "garbage"}, timeout=5)
        assert bad.get("error")
        ok = client.call("AUTH", {"token": livehub.tokens["viewer"]}, timeout=5)
        assert ok.get("ok") is True and ok.get("userId") == "dev-viewer"
        create(livehub, "dev-viewer", "after AUTH")
        deadline = time.time() + 5
        while not received and time.time() < deadline:
            time.sleep(0.02)
        assert received and received[0]["title"] == "after AUTH"
    finally:
        client.disconnect()


def test_a_socket_that_never_authenticates_is_disconnected(make_livehub):
    hub = make_livehub(env={"LIVEHUB_SOCKETIO_AUTH_TIMEOUT": "1"}).start()
    client = socketio.Client(reconnection=False)
    gone = threading.Event()
    client.on("disconnect", lambda *args: gone.set())
    client.connect(f"http://127.0.0.1:{hub.http_port}", transports=["websocket"], wait_timeout=5)
    assert gone.wait(5), "no AUTH within the time-out: the server disconnects the socket"
    client.disconnect()


def test_a_silent_client_is_dropped_after_ping_interval_plus_timeout(make_livehub):
    """A raw Engine.IO client that never answers pings is dropped; one that answers stays."""
    import websocket
    hub = make_livehub(env={"LIVEHUB_SOCKETIO_PING_INTERVAL": "0.5", "LIVEHUB_SOCKETIO_PING_TIMEOUT": "0.5"}).start()
    url = f"ws://127.0.0.1:{hub.http_port}/socket.io/?transport=websocket&EIO=4"
    silent = websocket.create_connection(url, timeout=5)
    open_packet = silent.recv()
    assert open_packet.startswith("0{") and '"pingInterval":500' in open_packet
    silent.send("40" + '{"token":"%s"}' % hub.tokens["viewer"])
    assert silent.recv().startswith('40{"sid"')
    start = time.time()
    closed = False
    while time.time() - start < 5:
        try:
            message = silent.recv()
        except Exception:
            closed = True
            break
        if message == "" or message is None:
            closed = True
            break
    assert closed and time.time() - start < 4
    # An Engine.IO v3 handshake is refused with 400 before any upgrade.
    response = requests.get(f"{hub.base}/socket.io/?EIO=3&transport=websocket", headers={"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert response.status_code == 400
