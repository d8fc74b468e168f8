"""Issue 19: the bell's Engine.IO v4 long-polling transport and its upgrade to WebSocket, with real
python-socketio clients (default options: polling first, then the upgrade; polling only; WebSocket
only) and raw HTTP requests against the real binary."""
import json
import logging
import threading
import time

import requests
import socketio
import websocket

from conftest import LiveHubProcess

SEP = "\x1e"


def create(hub, user_id, title):
    response = requests.post(f"{hub.base}/internal/notifications", json={"userId": user_id, "type": "INFO", "title": title},
                             headers={"Authorization": f"Bearer {hub.tokens['internal']}"})
    assert response.status_code == 201, response.text
    return response.json()


class Recorder(logging.Handler):
    """python-engineio's log lines: they say which transport was opened and whether the upgrade worked."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


class Bell:
    """A python-socketio client that records its events."""

    def __init__(self, hub, token, **options):
        self.events = []
        self.lock = threading.Lock()
        self.log = Recorder()
        logger = logging.getLogger(f"engineio.e2e.{id(self)}")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger.addHandler(self.log)
        self.client = socketio.Client(reconnection=False, engineio_logger=logger)
        for event in ("notification:new", "unreadCount:updated", "error"):
            self.client.on(event, self._recorder(event))
        self.client.connect(hub.base, auth={"token": token}, wait_timeout=10, **options)

    def _recorder(self, event):
        def record(data=None):
            with self.lock:
                self.events.append((event, data))
        return record

    def wait(self, event, predicate=lambda data: True, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                found = [data for name, data in self.events if name == event and predicate(data)]
            if found:
                return found
            time.sleep(0.02)
        raise AssertionError(f"{event} not received; got {self.events}")

    def close(self):
        self.client.disconnect()


def metric(hub, name):
    """The value of the socketio series of `name` on /metrics (0 if absent)."""
    for line in requests.get(f"{hub.base}/metrics").text.splitlines():
        if line.startswith(name) and 'protocol="socketio"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class Raw:
    """One long-polling session driven by hand (requests), as engine.io-client's polling transport does."""

    def __init__(self, hub, headers=None):
        self.url = f"{hub.base}/socket.io/?EIO=4&transport=polling"
        self.http = requests.Session()
        r = self.http.get(self.url + "&t=a", headers=headers or {}, timeout=10)
        self.handshake = r
        if r.status_code != 200:
            self.sid = None
            return
        assert r.headers["Content-Type"] == "text/plain; charset=UTF-8", r.headers
        assert r.text.startswith("0{"), r.text
        opened = json.loads(r.text[1:])
        assert opened["upgrades"] == ["websocket"] and opened["maxPayload"] > 0, opened
        self.sid = opened["sid"]
        self.url += f"&sid={self.sid}"

    def post(self, *packets, body=None):
        return self.http.post(self.url, data=(body if body is not None else SEP.join(packets)).encode(),
                              headers={"Content-Type": "text/plain;charset=UTF-8"}, timeout=10)

    def get(self, timeout=30):
        return self.http.get(self.url, timeout=timeout)

    def packets(self):
        r = self.get()
        assert r.status_code == 200, r.text
        return r.text.split(SEP)

    def join(self, token):
        """`40{token}`, then polls until the join's `40{"sid"}` and the unread count pushed on join
        have arrived (nothing is left waiting)."""
        assert self.post(f'40{{"token":"{token}"}}').text == "ok"
        reply = self.packets()
        assert reply[0].startswith('40{"sid":'), reply
        while not any("unreadCount:updated" in p for p in reply):
            reply += self.packets()
        return reply


def test_a_default_client_polls_then_upgrades_and_receives_pushes(livehub):
    bell = Bell(livehub, livehub.tokens["viewer"])
    try:
        assert any(line.startswith("Polling connection accepted") for line in bell.log.lines), bell.log.lines
        assert "WebSocket upgrade was successful" in bell.log.lines, bell.log.lines
        assert bell.client.transport() == "websocket"
        bell.wait("unreadCount:updated")  # the current count, pushed on join
        sent = create(livehub, "dev-viewer", "Polled, then upgraded")
        news = bell.wait("notification:new")
        assert news[0]["notificationId"] == sent["id"] and news[0]["title"] == "Polled, then upgraded"
        ack = bell.client.call("notification:read", {"notificationId": sent["id"]}, timeout=5)
        assert ack["ok"] is True
        assert metric(livehub, "livehub_hub_users_online") == 1
    finally:
        bell.close()
    livehub.wait_for(lambda: metric(livehub, "livehub_hub_users_online") == 0, timeout=10, what="the user to leave")


def test_a_polling_only_client_receives_pushes_and_acks(livehub):
    bell = Bell(livehub, livehub.tokens["viewer"], transports=["polling"])
    other = Bell(livehub, livehub.tokens["owner"], transports=["polling"])
    try:
        assert bell.client.transport() == "polling"
        bell.wait("unreadCount:updated")
        titles = [f"polled {i}" for i in range(5)]
        for title in titles:
            create(livehub, "dev-viewer", title)
        bell.wait("notification:new", lambda n: n["title"] == titles[-1])
        with bell.lock:
            got = [data["title"] for name, data in bell.events if name == "notification:new"]
        assert got == titles  # nothing lost or reordered
        ack = bell.client.call("notification:read-all", None, timeout=5)
        assert ack["ok"] is True and ack["unreadCount"] == 0
        time.sleep(0.3)
        with other.lock:
            assert not [e for e in other.events if e[0] == "notification:new"]
        assert bell.client.transport() == "polling"
    finally:
        bell.close()
        other.close()
    livehub.wait_for(lambda: metric(livehub, "livehub_hub_connections") == 0, timeout=10, what="the sessions to close")


def test_the_websocket_only_option_still_works(livehub):
    bell = Bell(livehub, livehub.tokens["viewer"], transports=["websocket"])
    try:
        assert not any(line.startswith("Polling connection") for line in bell.log.lines)
        assert bell.client.transport() == "websocket"
        create(livehub, "dev-viewer", "straight over the WebSocket")
        bell.wait("notification:new", lambda n: n["title"] == "straight over the WebSocket")
    finally:
        bell.close()


def test_an_abandoned_polling_session_is_cleaned_up(make_livehub):
    hub = make_livehub(env={"LIVEHUB_SOCKETIO_PING_INTERVAL": "1", "LIVEHUB_SOCKETIO_PING_TIMEOUT": "1"}).start()
    raw = Raw(hub)
    raw.join(hub.tokens["viewer"])
    hub.wait_for(lambda: metric(hub, "livehub_hub_users_online") == 1, timeout=5, what="the user online")
    # The client stops polling (a closed tab): no pong, no poll. Gone within interval + timeout (+ a tick).
    started = time.time()
    hub.wait_for(lambda: metric(hub, "livehub_hub_users_online") == 0 and metric(hub, "livehub_hub_connections") == 0,
                 timeout=10, interval=0.1, what="the abandoned session to be closed")
    assert time.time() - started < 5
    r = raw.get()
    assert r.status_code == 400 and r.json() == {"code": 1, "message": "Session ID unknown"}


def test_a_handshake_that_never_joins_is_closed_at_the_connect_timeout(make_livehub):
    hub = make_livehub(env={"LIVEHUB_SOCKETIO_CONNECT_TIMEOUT": "1"}).start()
    idle = Raw(hub)
    joined = Raw(hub)
    joined.join(hub.tokens["viewer"])
    hub.wait_for(lambda: metric(hub, "livehub_hub_connections") == 1, timeout=10, interval=0.1,
                 what="the session that never sent 40 to be closed")
    r = idle.get(timeout=10)
    assert r.status_code == 400 or r.text.split(SEP)[-1] == "1", (r.status_code, r.text)
    # The session next to it, which joined, is untouched.
    create(hub, "dev-viewer", "still here")
    assert any("still here" in p for p in joined.packets())


def test_a_polling_session_that_answers_pings_stays(make_livehub):
    hub = make_livehub(env={"LIVEHUB_SOCKETIO_PING_INTERVAL": "1", "LIVEHUB_SOCKETIO_PING_TIMEOUT": "1"}).start()
    raw = Raw(hub)
    raw.join(hub.tokens["viewer"])
    pings = 0
    deadline = time.time() + 4
    while time.time() < deadline:
        packets = raw.packets()
        if "2" in packets:
            pings += 1
            assert raw.post("3").text == "ok"
    assert pings >= 3
    assert metric(hub, "livehub_hub_users_online") == 1
    assert raw.post("41", "1").text == "ok"
    # A ping queued just before the close may come with it; the close is last.
    last = raw.packets()
    assert last[-1] == "1" and set(last[:-1]) <= {"2"}, last


def test_an_oversized_post_gets_413_and_the_session_next_to_it_is_unharmed(make_livehub):
    hub = make_livehub(env={"LIVEHUB_SOCKETIO_MAX_PAYLOAD": "4096"}).start()
    victim, neighbour = Raw(hub), Raw(hub)
    victim.join(hub.tokens["viewer"])
    neighbour.join(hub.tokens["owner"])
    assert json.loads(neighbour.handshake.text[1:])["maxPayload"] == 4096
    big = victim.post(body='42["notification:read",{"notificationId":"' + "x" * 5000 + '"}]')
    assert big.status_code == 413 and big.json()["error"] == "PAYLOAD_TOO_LARGE"
    after = victim.get()
    assert (after.status_code == 200 and after.text == "1") or after.status_code == 400, after.text
    # The neighbour still receives and sends.
    create(hub, "dev-owner", "next door")
    deadline = time.time() + 10
    seen = []
    while time.time() < deadline and not any("next door" in p for p in seen):
        seen += neighbour.packets()
    assert any(p.startswith('42["notification:new"') and "next door" in p for p in seen), seen
    assert neighbour.post('421["notification:read-all"]').text == "ok"
    assert any(p.startswith("431[") for p in neighbour.packets())


def test_bad_requests_get_engine_io_errors_and_cors(livehub):
    base = f"{livehub.base}/socket.io/"
    r = requests.get(base, params={"EIO": "4", "transport": "polling", "sid": "no-such-sid"})
    assert r.status_code == 400 and r.json() == {"code": 1, "message": "Session ID unknown"}
    r = requests.post(base, params={"EIO": "4", "transport": "polling", "sid": "no-such-sid"}, data=b"40")
    assert r.status_code == 400 and r.json()["code"] == 1
    r = requests.get(base, params={"EIO": "3", "transport": "polling"})
    assert r.status_code == 400 and r.json() == {"code": 5, "message": "Unsupported protocol version"}
    r = requests.get(base, params={"EIO": "4", "transport": "carrier-pigeon"})
    assert r.status_code == 400 and r.json() == {"code": 0, "message": "Transport unknown"}
    r = requests.post(base, params={"EIO": "4", "transport": "polling"}, data=b"40")
    assert r.status_code == 400 and r.json() == {"code": 2, "message": "Bad handshake method"}
    # Browsers on another origin may poll (the REST API's CORS policy).
    raw = Raw(livehub, headers={"Origin": "https://shop.example"})
    assert raw.handshake.headers.get("Access-Control-Allow-Origin") == "*"
    pre = requests.options(raw.url, headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
                                             "Access-Control-Request-Headers": "content-type"})
    assert pre.status_code == 204 and "POST" in pre.headers["Access-Control-Allow-Methods"]
    # A malformed payload closes the session with a 400; a binary packet is dropped (the bell is text-only).
    assert raw.post("bAQID").text == "ok"
    bad = raw.post(body="40" + SEP + SEP + "2")
    assert bad.status_code == 400 and bad.json() == {"code": 3, "message": "Bad request"}
    assert raw.packets() == ["1"]
    # Two GETs at once close the session, as engine.io does.
    twice = Raw(livehub)
    twice.join(livehub.tokens["viewer"])
    first = {}
    waiter = threading.Thread(target=lambda: first.update(r=twice.get()))
    waiter.start()
    time.sleep(0.5)
    second = requests.get(twice.url, timeout=10)
    waiter.join(10)
    assert second.status_code == 400 and second.json()["code"] == 3
    assert first["r"].status_code == 200 and first["r"].text.endswith("1")


def test_polling_sessions_share_the_per_address_limit_and_have_a_total_cap(make_livehub):
    hub = make_livehub(env={"LIVEHUB_WS_MAX_CONNECTIONS_PER_IP": "3", "LIVEHUB_SOCKETIO_MAX_POLLING_SESSIONS": "2"}).start()
    a, b = Raw(hub), Raw(hub)
    assert a.sid and b.sid
    c = Raw(hub)
    assert c.handshake.status_code == 503 and c.handshake.json()["error"] == "TOO_MANY_SESSIONS"
    ws = websocket.create_connection(f"ws://127.0.0.1:{hub.http_port}/socket.io/?EIO=4&transport=websocket", timeout=5)
    assert ws.recv().startswith("0{")
    try:
        # Two polling sessions and one WebSocket: the address is full for both kinds.
        try:
            websocket.create_connection(f"ws://127.0.0.1:{hub.http_port}/socket.io/?EIO=4&transport=websocket", timeout=5)
            raise AssertionError("a fourth session from the address was accepted")
        except websocket.WebSocketBadStatusException as refused:
            assert refused.status_code == 429
        assert a.post("41", "1").text == "ok" and a.packets() == ["1"]
        # The closed polling session's place is free again: polling (and the total) has room.
        d = Raw(hub)
        assert d.sid, d.handshake.text
    finally:
        ws.close()


def test_a_raw_upgrade_keeps_the_session_and_its_queued_packets(livehub):
    raw = Raw(livehub)
    reply = raw.join(livehub.tokens["viewer"])
    socket_sid = json.loads(reply[0][2:])["sid"]
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{livehub.http_port}/socket.io/?EIO=4&transport=websocket&sid={raw.sid}", timeout=5)
    try:
        ws.send("2probe")
        assert ws.recv() == "3probe"
        # Pushed between the probe and `5`: they wait for the WebSocket, in order.
        create(livehub, "dev-viewer", "during the upgrade")
        time.sleep(0.3)
        ws.send("5")
        received = []
        deadline = time.time() + 10
        while time.time() < deadline and not any("during the upgrade" in m for m in received):
            received.append(ws.recv())
        news = [m for m in received if m.startswith('42["notification:new"')]
        assert news and "during the upgrade" in news[0], received
        ws.send('421["notification:read-all"]')
        while True:
            message = ws.recv()
            if message.startswith("431"):
                break
        assert '"ok":true' in message
        # The same Socket.IO session, and no longer a polling one.
        assert metric(livehub, "livehub_hub_connections") == 1
        r = raw.get()
        assert r.status_code == 400 and r.json()["code"] == 1
        assert socket_sid
    finally:
        ws.close()
