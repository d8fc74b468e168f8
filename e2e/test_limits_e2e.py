"""Issue 17 §3 end to end: the limits on what an outsider can make the server hold, on the real
binary with real clients (raw sockets, websocket-client, STOMP frames, python-socketio), each next
to a healthy client that keeps working. Limits are set low through their LIVEHUB_* variables.

Several tests connect from other loopback addresses (127.0.0.2, 127.0.0.3: Linux routes all of
127/8 to lo) to be a different client address than the healthy client on 127.0.0.1."""
import base64
import json
import os
import socket
import struct
import threading
import time

import pytest
import requests
import socketio

import media
from jwt_helper import sign
from stomp_client import StompWS, frame, parse


# ---------------------------------------------------------------- helpers

def token_for(hub, user_id):
    secret = (hub.data_dir / "jwt-secret").read_text().strip()
    return sign(secret, {"userId": user_id, "username": user_id, "exp": int(time.time()) + 3600})


def ws_url(hub, path="/ws/live"):
    return f"ws://127.0.0.1:{hub.http_port}{path}"


def connect_from(hub, source="127.0.0.1", timeout=10):
    return socket.create_connection(("127.0.0.1", hub.http_port), timeout=timeout, source_address=(source, 0))


def read_response(sock, timeout=10):
    """(status, headers dict, body bytes) of one HTTP/1.1 response with Content-Length."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response: {data!r}")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split(" ")[1]), headers, body[:length]


def get(sock, path="/healthz", extra=""):
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
    return read_response(sock)


def closed_within(sock, seconds):
    """True if the server closes `sock` within `seconds` (EOF or reset)."""
    sock.settimeout(seconds)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


def client_frame(opcode, payload=b""):
    """A masked client WebSocket frame (RFC 6455 §5.2)."""
    first = 0x80 | opcode
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", first, 0x80 | length)
    elif length <= 0xFFFF:
        head = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, length)
    key = os.urandom(4)
    if length and all(b == payload[0] for b in payload[:64]) and len(set(payload)) == 1:
        masked = bytes(b ^ payload[0] for b in key) * (length // 4) + bytes(payload[0] ^ key[i] for i in range(length % 4))
    else:
        masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


class RawWS:
    """A hand-driven WebSocket from a chosen source address."""

    def __init__(self, hub, path="/ws/live", source="127.0.0.1", protocols="v12.stomp"):
        self.sock = connect_from(hub, source)
        key = base64.b64encode(os.urandom(16)).decode()
        extra = f"Sec-WebSocket-Protocol: {protocols}\r\n" if protocols else ""
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            assert chunk, f"closed during the upgrade: {self.buffer!r}"
            self.buffer += chunk
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        self.head = head.decode()
        self.status = int(self.head.split(" ", 2)[1])
        if self.status != 101:
            self.sock.settimeout(5)
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buffer += chunk

    def send_text(self, text):
        self.sock.sendall(client_frame(0x1, text.encode() if isinstance(text, str) else text))

    def next_frame(self, timeout=10):
        """(opcode, payload) of the next server frame; None at EOF."""
        self.sock.settimeout(timeout)
        while True:
            if len(self.buffer) >= 2:
                length, offset = self.buffer[1] & 0x7F, 2
                if length == 126 and len(self.buffer) >= 4:
                    length, offset = struct.unpack("!H", self.buffer[2:4])[0], 4
                elif length == 127 and len(self.buffer) >= 10:
                    length, offset = struct.unpack("!Q", self.buffer[2:10])[0], 10
                if (length < 126 or offset > 2) and len(self.buffer) >= offset + length:
                    opcode, payload = self.buffer[0] & 0x0F, self.buffer[offset:offset + length]
                    self.buffer = self.buffer[offset + length:]
                    return opcode, payload
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            self.buffer += chunk

    def texts_until_close(self, timeout=10):
        """Text payloads up to the server's Close (or EOF); with the time it took."""
        start, texts = time.time(), []
        while True:
            got = self.next_frame(timeout=max(0.1, timeout - (time.time() - start)))
            if got is None or got[0] == 0x8:
                return texts, time.time() - start
            if got[0] == 0x1:
                texts.append(got[1].decode())

    def stomp(self, command, headers=None, body=""):
        self.send_text(frame(command, headers, body))

    def next_stomp(self, timeout=10):
        while True:
            got = self.next_frame(timeout)
            assert got is not None, "closed while waiting for a STOMP frame"
            if got[0] == 0x1 and got[1].strip(b"\r\n"):
                return parse(got[1].decode())[0]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Watcher:
    """A healthy viewer: STOMP on 127.0.0.1, subscribed to a room's chat, seeing every line."""

    def __init__(self, hub, room_id, token=None):
        self.room_id = room_id
        self.client = StompWS(ws_url(hub), token=token)
        self.client.subscribe(f"/topic/live/{room_id}/chat", "watch", receipt="w")

    def sees(self, text, timeout=10):
        _, _, body = self.client.expect(
            "MESSAGE", timeout=timeout, where=lambda h, b: h.get("destination", "").endswith("/chat") and json.loads(b)["message"] == text)
        return json.loads(body)


def chat_check(hub, room_id, speaker, watcher, text):
    """The room still works: a line from `speaker` reaches `watcher`."""
    speaker.send_json(f"/app/live/{room_id}/chat", {"message": text})
    watcher.sees(text)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


# ---------------------------------------------------------------- HTTP

def test_an_idle_http_connection_is_closed_and_busy_ones_and_websockets_are_not(make_livehub):
    hub = make_livehub({"LIVEHUB_HTTP_IDLE_TIMEOUT": "1"}).start()
    room = hub.create_room("idle")
    watcher = Watcher(hub, room["id"], token=hub.tokens["viewer"])
    speaker = StompWS(ws_url(hub), token=hub.tokens["owner"])
    try:
        silent = connect_from(hub)  # connects, sends nothing
        after_one = connect_from(hub)
        assert get(after_one)[0] == 200  # one request, then idle keep-alive
        half_head = connect_from(hub)
        half_head.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # stalls in the middle of a head
        busy = connect_from(hub)
        started = time.time()
        for _ in range(12):  # 3 s of requests on one connection, 0.25 s apart
            assert get(busy)[0] == 200
            time.sleep(0.25)
        for sock in (silent, after_one, half_head):
            assert closed_within(sock, 0.5), "idle for more than 2 s and still open"
        assert time.time() - started >= 3
        assert get(busy)[0] == 200, "the busy keep-alive connection was kept"
        # A WebSocket is not an idle HTTP connection: the viewer silent for 3 s still gets the chat.
        chat_check(hub, room["id"], speaker, watcher, "still here")
        lone = connect_from(hub)
        opened = time.time()
        assert closed_within(lone, 5)
        assert 0.8 <= time.time() - opened <= 3, f"closed after {time.time() - opened:.1f} s, timeout 1 s"
    finally:
        watcher.client.close()
        speaker.close()


def test_a_blocking_playlist_reload_longer_than_the_idle_timeout_is_answered(make_livehub):
    """The idle timeout is the client's silence, not the server's: an LL-HLS blocking reload that
    waits for the next segment (~2 s) on a connection with a 1 s idle timeout gets its answer."""
    hub = make_livehub({"LIVEHUB_HTTP_IDLE_TIMEOUT": "1"}).start()
    room = hub.create_room("blocking")
    publisher = media.publish(hub.rtmp_url(room["streamKey"]))
    try:
        media_path = f"/hls/{room['id']}/media.m3u8"
        hub.wait_for(lambda: requests.get(hub.base + media_path).status_code == 200, timeout=30, what="a live playlist")
        playlist = requests.get(hub.base + media_path).text
        msn = max(int(line.split(":")[1]) for line in playlist.splitlines() if line.startswith("#EXT-X-MEDIA-SEQUENCE"))
        # The segment after the one being written: 2-4 s away (a blocking reload may wait 3 segments).
        target = msn + sum(1 for line in playlist.splitlines() if line.startswith("#EXTINF")) + 1
        sock = connect_from(hub)
        started = time.time()
        status, _, body = get(sock, path=f"{media_path}?_HLS_msn={target}")
        waited = time.time() - started
        assert status == 200 and f"seg-{target}." in body.decode(), body[-300:]
        assert waited > 1.1, f"answered after {waited:.2f} s: not a wait longer than the idle timeout"
        assert closed_within(sock, 3), "idle again after its answer"
    finally:
        media.stop(publisher)


def test_a_request_head_over_the_limit_gets_431_and_normal_requests_still_work(make_livehub):
    hub = make_livehub({"LIVEHUB_HTTP_MAX_HEADER_BYTES": "2048"}).start()
    big = "X-Big: " + "a" * 3000 + "\r\n"
    first = connect_from(hub)  # the connection's first request (before Hummingbird has it)
    status, headers, body = get(first, extra=big)
    assert status == 431 and headers["connection"] == "close"
    assert json.loads(body) == {"error": "HEADERS_TOO_LARGE", "message": "the request line and header fields exceed 2048 bytes"}
    assert closed_within(first, 5)
    later = connect_from(hub)  # a later request on a keep-alive connection
    assert get(later)[0] == 200
    status, _, body = get(later, extra=big)
    assert status == 431 and json.loads(body)["error"] == "HEADERS_TOO_LARGE"
    assert closed_within(later, 5)
    long_url = connect_from(hub)  # the request line counts too
    assert get(long_url, path="/v1/notifications/live/rooms?x=" + "b" * 3000)[0] == 431
    # Up to the limit is fine, for requests, HLS and the WebSocket upgrade alike.
    assert requests.get(f"{hub.base}/healthz", headers={"X-Fits": "c" * 1500}).status_code == 200
    assert requests.get(f"{hub.api}/rooms").status_code == 200
    StompWS(ws_url(hub)).close()


def test_http_connections_per_address_are_limited_and_other_addresses_are_not(make_livehub):
    hub = make_livehub({"LIVEHUB_HTTP_MAX_CONNECTIONS_PER_IP": "5", "LIVEHUB_WS_MAX_CONNECTIONS_PER_IP": "3"}).start()
    room = hub.create_room("per ip")
    watcher = Watcher(hub, room["id"], token=hub.tokens["viewer"])
    speaker = StompWS(ws_url(hub), token=hub.tokens["owner"])
    held = []
    try:
        for _ in range(5):
            sock = connect_from(hub, "127.0.0.2")
            assert get(sock)[0] == 200
            held.append(sock)
        refused = connect_from(hub, "127.0.0.2")
        status, headers, body = get(refused)
        assert status == 429 and headers["connection"] == "close"
        assert json.loads(body) == {
            "error": "TOO_MANY_CONNECTIONS", "message": "this address already has 5 open HTTP connections; close one first"}
        assert closed_within(refused, 5)
        # Another address is not affected, nor the room.
        assert get(connect_from(hub, "127.0.0.1"))[0] == 200
        chat_check(hub, room["id"], speaker, watcher, "per-ip 1")
        # A closed connection frees its place.
        held.pop().close()
        deadline = time.time() + 5
        while True:
            again = connect_from(hub, "127.0.0.2")
            status = get(again)[0]
            if status == 200 or time.time() > deadline:
                break
            time.sleep(0.1)
        assert status == 200
        held.append(again)

        # WebSockets have their own count per address (3 here), not the HTTP one.
        sockets = [RawWS(hub, source="127.0.0.3") for _ in range(3)]
        assert [ws.status for ws in sockets] == [101, 101, 101]
        over = RawWS(hub, source="127.0.0.3")
        assert over.status == 429
        assert json.loads(over.buffer) == {
            "error": "TOO_MANY_CONNECTIONS", "message": "this address already has 3 open WebSockets; close one first"}
        assert get(connect_from(hub, "127.0.0.3"))[0] == 200, "plain HTTP from that address still works"
        for ws in sockets:
            ws.stomp("CONNECT", {"accept-version": "1.2", "heart-beat": "0,0"})
            assert ws.next_stomp()[0] == "CONNECTED"
        sockets.pop().close()
        deadline = time.time() + 5
        while (replacement := RawWS(hub, source="127.0.0.3")).status != 101 and time.time() < deadline:
            time.sleep(0.1)
        assert replacement.status == 101
        sockets.append(replacement)
        chat_check(hub, room["id"], speaker, watcher, "per-ip 2")
    finally:
        for sock in held:
            sock.close()
        watcher.client.close()
        speaker.close()


# ---------------------------------------------------------------- WebSocket / STOMP / Socket.IO

def test_a_stomp_connection_must_send_connect_in_time_whatever_else_it_sends(make_livehub):
    hub = make_livehub({"LIVEHUB_STOMP_CONNECT_TIMEOUT": "1"}).start()
    room = hub.create_room("connect deadline")
    watcher = Watcher(hub, room["id"], token=hub.tokens["viewer"])
    speaker = StompWS(ws_url(hub), token=hub.tokens["owner"])
    try:
        stalling = RawWS(hub)
        opened = time.time()
        stop = threading.Event()

        def heartbeats():  # EOL heart-beats before CONNECT: traffic, but no CONNECT
            while not stop.is_set():
                try:
                    stalling.send_text("\n")
                except OSError:
                    return
                time.sleep(0.2)

        threading.Thread(target=heartbeats, daemon=True).start()
        command, headers, _ = stalling.next_stomp(timeout=10)
        took = time.time() - opened
        stop.set()
        assert command == "ERROR" and headers["message"] == "no CONNECT frame received in time"
        assert 0.9 <= took <= 3, f"ERROR after {took:.1f} s, deadline 1 s"
        assert stalling.texts_until_close(timeout=5)[1] < 5
        chat_check(hub, room["id"], speaker, watcher, "after the deadline")
    finally:
        watcher.client.close()
        speaker.close()


def test_subscriptions_per_connection_are_limited_and_refusal_keeps_the_connection(make_livehub):
    hub = make_livehub({"LIVEHUB_WS_MAX_SUBSCRIPTIONS": "4"}).start()
    room = hub.create_room("subs")
    rid = room["id"]
    client = StompWS(ws_url(hub), token=hub.tokens["viewer"])
    speaker = StompWS(ws_url(hub), token=hub.tokens["owner"])
    try:
        client.subscribe("/user/queue/errors", "errors", receipt="e")
        for i, name in enumerate(["chat", "product", "status"]):
            client.subscribe(f"/topic/live/{rid}/{name}", f"s{i}", receipt=f"r{i}")
        client.send_frame("SUBSCRIBE", {"destination": f"/topic/live/{rid}/viewers", "id": "s3", "receipt": "over"})
        _, headers, body = client.expect("MESSAGE", where=lambda h, b: h.get("destination") == "/user/queue/errors")
        assert headers["error-code"] == "too-many-subscriptions"
        assert json.loads(body)["message"] == "a connection holds at most 4 subscriptions; UNSUBSCRIBE one first"
        _, receipt, _ = client.expect("RECEIPT", where=lambda h, b: h.get("receipt-id") == "over")
        assert receipt["status"] == "refused" and receipt["error-code"] == "too-many-subscriptions"
        # The connection stays and its subscriptions work.
        speaker.send_json(f"/app/live/{rid}/chat", {"message": "to the full connection"})
        assert client.messages(f"/topic/live/{rid}/chat", 1)[0][1]["message"] == "to the full connection"
        client.send_frame("UNSUBSCRIBE", {"id": "s1"})
        client.subscribe(f"/topic/live/{rid}/viewers", "s3", receipt="now")
        client.send_json(f"/app/live/{rid}/join", {})
        assert client.messages(f"/topic/live/{rid}/viewers", 1)[0][1]["count"] == 1
    finally:
        client.close()
        speaker.close()


def test_a_users_connections_are_limited_per_protocol(make_livehub):
    hub = make_livehub({"LIVEHUB_WS_MAX_CONNECTIONS_PER_USER": "3"}).start()
    room = hub.create_room("per user")
    alice = token_for(hub, "alice")
    tabs = [StompWS(ws_url(hub), token=alice) for _ in range(3)]
    bells = []
    try:
        # STOMP: a 4th connection of alice gets an ERROR and is closed.
        fourth = StompWS(ws_url(hub), connect=False)
        fourth.send_frame("CONNECT", {"accept-version": "1.2", "heart-beat": "0,0", "Authorization": f"Bearer {alice}"})
        _, headers, _ = fourth.expect("ERROR")
        assert headers["message"] == "too many connections for this user (limit 3); close another tab or connection first"
        assert fourth.closed.wait(5)
        # Another user, and alice's tabs, are fine.
        bob = StompWS(ws_url(hub), token=token_for(hub, "bob"))
        tabs[0].subscribe(f"/topic/live/{room['id']}/chat", "c", receipt="c")
        bob.send_json(f"/app/live/{room['id']}/chat", {"message": "hi alice"})
        assert tabs[0].messages(f"/topic/live/{room['id']}/chat", 1)[0][1]["message"] == "hi alice"
        tabs.pop().close()
        deadline = time.time() + 5
        while True:
            again = StompWS(ws_url(hub), connect=False)
            again.send_frame("CONNECT", {"accept-version": "1.2", "heart-beat": "0,0", "Authorization": f"Bearer {alice}"})
            command = again.frames.get(timeout=5)[0]
            if command == "CONNECTED" or time.time() > deadline:
                break
            time.sleep(0.1)
        assert command == "CONNECTED", "a closed tab frees its place"
        tabs.append(again)

        # Socket.IO has its own count: alice's 3 STOMP tabs do not use up her bell sockets.
        for _ in range(3):
            bell = socketio.Client(reconnection=False)
            bell.connect(f"http://127.0.0.1:{hub.http_port}", transports=["websocket"], auth={"token": alice}, wait_timeout=5)
            bells.append(bell)
        errors = []
        extra = socketio.Client(reconnection=False)
        extra.on("connect_error", lambda data: errors.append(data))
        with pytest.raises(socketio.exceptions.ConnectionError):
            extra.connect(f"http://127.0.0.1:{hub.http_port}", transports=["websocket"], auth={"token": alice}, wait_timeout=5)
        assert errors and "too many connections for this user (limit 3)" in json.dumps(errors)
        # The 3 bell tabs still get their pushes.
        got = []
        for bell in bells:
            bell.on("notification:new", lambda data, got=got: got.append(data["title"]))
        response = requests.post(f"{hub.base}/internal/notifications", json={"userId": "alice", "type": "INFO", "title": "for every tab"},
                                 headers={"Authorization": f"Bearer {hub.tokens['internal']}"})
        assert response.status_code == 201
        deadline = time.time() + 5
        while len(got) < 3 and time.time() < deadline:
            time.sleep(0.05)
        assert got == ["for every tab"] * 3
    finally:
        for client in tabs:
            client.close()
        for bell in bells:
            bell.disconnect()


def test_an_unauthenticated_bell_socket_cannot_push_its_auth_deadline_forward(make_livehub):
    """Regression: `41` cleared the AUTH deadline and `40` set a new one, so a socket that left and
    re-joined the namespace every few seconds stayed forever without a token."""
    hub = make_livehub({"LIVEHUB_SOCKETIO_AUTH_TIMEOUT": "2"}).start()
    healthy = socketio.Client(reconnection=False)
    pushes = []
    healthy.on("notification:new", lambda data: pushes.append(data["title"]))
    healthy.connect(f"http://127.0.0.1:{hub.http_port}", transports=["websocket"], auth={"token": hub.tokens["viewer"]}, wait_timeout=5)
    try:
        ws = RawWS(hub, path="/socket.io/?EIO=4&transport=websocket", protocols=None)
        assert ws.status == 101
        opcode, handshake = ws.next_frame()
        assert handshake.startswith(b"0{")
        ws.send_text("40")
        joined_at = time.time()
        assert ws.next_frame()[1].startswith(b"40{")
        ended = threading.Event()
        texts, closed = [], []

        def read_until_closed():
            texts.extend(ws.texts_until_close(timeout=15)[0])
            closed.append(time.time())
            ended.set()

        threading.Thread(target=read_until_closed, daemon=True).start()
        while not ended.is_set() and time.time() - joined_at < 8:
            time.sleep(0.3)
            try:
                ws.send_text("41")  # leave the namespace…
                ws.send_text("40")  # …and join again, unauthenticated
            except OSError:
                break
        closed_at = closed[0] if ended.wait(1) else None
        assert closed_at is not None, "re-joining every 0.3 s kept an unauthenticated socket open for 8 s"
        assert closed_at - joined_at <= 4, f"closed {closed_at - joined_at:.1f} s after its first join, deadline 2 s"
        assert "41" in texts, "told it was disconnected (41) before the close"
        # The signed-in tab is unaffected.
        response = requests.post(f"{hub.base}/internal/notifications", json={"userId": "dev-viewer", "type": "INFO", "title": "still here"},
                                 headers={"Authorization": f"Bearer {hub.tokens['internal']}"})
        assert response.status_code == 201
        deadline = time.time() + 5
        while not pushes and time.time() < deadline:
            time.sleep(0.05)
        assert pushes == ["still here"]
    finally:
        healthy.disconnect()


def test_a_flooding_connection_is_held_back_in_bytes_and_the_room_keeps_working(make_livehub):
    """Frames up to 1 MiB of EOL heart-beats (cheap to send, slow to work through) from four
    connections. Reading pauses once 256 KiB wait per connection, so the server holds a few MiB for
    them, not 32 frames (32 MiB) each as with the old frame-count limit."""
    hub = make_livehub({"LIVEHUB_WS_MAX_INBOUND_BYTES": "262144", "LIVEHUB_LOG_LEVEL": "warning"}).start()
    room = hub.create_room("flood")
    watcher = Watcher(hub, room["id"], token=hub.tokens["viewer"])
    speaker = StompWS(ws_url(hub), token=hub.tokens["owner"])
    pid = hub.proc.pid
    chat_check(hub, room["id"], speaker, watcher, "before")
    before = rss_kib(pid)
    floods = []
    for _ in range(4):
        ws = RawWS(hub, source="127.0.0.2")
        ws.stomp("CONNECT", {"accept-version": "1.2", "heart-beat": "0,0"})
        assert ws.next_stomp()[0] == "CONNECTED"
        floods.append(ws)
    one_mib = client_frame(0x1, b"\n" * ((1 << 20) - 64))  # within the 1 MiB WebSocket frame limit
    stop = threading.Event()
    sent = [0] * len(floods)

    def flood(index, ws):
        ws.sock.settimeout(0.5)
        while not stop.is_set():
            try:
                ws.sock.sendall(one_mib)
                sent[index] += 1
            except socket.timeout:
                continue  # TCP pushes back: the server stopped reading
            except OSError:
                return

    threads = [threading.Thread(target=flood, args=(i, ws), daemon=True) for i, ws in enumerate(floods)]
    for thread in threads:
        thread.start()
    peak = before
    deadline = time.time() + 6
    while time.time() < deadline:
        peak = max(peak, rss_kib(pid))
        time.sleep(0.05)
    print(f"RSS before {before / 1024:.1f} MiB, peak in 6 s of flood {peak / 1024:.1f} MiB; 1 MiB frames sent per connection: {sent}")
    try:
        chat_check(hub, room["id"], speaker, watcher, "during the flood")
        peak = max(peak, rss_kib(pid))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
        for ws in floods:
            ws.close()
        watcher.client.close()
        speaker.close()
    growth_mib = (peak - before) / 1024
    assert sum(sent) >= 4, "the flood did not get going"
    assert growth_mib < 48, f"the server grew by {growth_mib:.1f} MiB for 4 flooding connections"


# ---------------------------------------------------------------- chat

def test_chat_lines_are_capped_in_bytes_and_lose_their_control_characters(make_livehub):
    hub = make_livehub({"LIVEHUB_CHAT_MAX_BYTES": "400"}).start()
    room = hub.create_room("chat bytes")
    rid = room["id"]
    watcher = Watcher(hub, rid, token=hub.tokens["viewer"])
    speaker = StompWS(ws_url(hub), token=hub.tokens["owner"])
    try:
        speaker.subscribe("/user/queue/errors", "errors", receipt="e")
        # 100 characters of 21 bytes ("a" + 10 combining accents): far within 500 characters.
        zalgo = ("a" + "\u0301" * 10) * 100
        speaker.send_json(f"/app/live/{rid}/chat", {"message": zalgo}, receipt="big")
        _, receipt, _ = speaker.expect("RECEIPT", where=lambda h, b: h.get("receipt-id") == "big")
        assert receipt["status"] == "refused" and receipt["error-code"] == "message-too-large"
        assert receipt["message"] == "a message is at most 400 bytes of UTF-8"
        time.sleep(0.25)
        speaker.send_json(f"/app/live/{rid}/chat", {"message": "\u0007\u0000\r\n\u001b"}, receipt="empty")
        _, receipt, _ = speaker.expect("RECEIPT", where=lambda h, b: h.get("receipt-id") == "empty")
        assert receipt["error-code"] == "empty-message"
        time.sleep(0.25)
        speaker.send_json(f"/app/live/{rid}/chat", {"message": "\u001b[2Jbell\u0007 and\u0000 nul\r\nsecond line 👩‍👩‍👧"}, receipt="ok")
        _, receipt, _ = speaker.expect("RECEIPT", where=lambda h, b: h.get("receipt-id") == "ok")
        assert "status" not in receipt
        clean = "[2Jbell and nul\nsecond line 👩‍👩‍👧"
        assert watcher.sees(clean)["message"] == clean
        history = requests.get(f"{hub.api}/rooms/{rid}/chats").json()
        assert [line["message"] for line in history] == [clean], "only the accepted line, stored clean"
    finally:
        watcher.client.close()
        speaker.close()


# ---------------------------------------------------------------- caches

def test_idempotency_keys_are_scoped_to_the_notification_and_capped_per_user(make_livehub):
    hub = make_livehub({"LIVEHUB_IDEMPOTENCY_KEYS_PER_USER": "3"}).start()
    internal = {"Authorization": f"Bearer {hub.tokens['internal']}"}
    viewer = hub.headers("viewer")

    def create(title):
        response = requests.post(f"{hub.base}/internal/notifications", json={"userId": "dev-viewer", "type": "INFO", "title": title}, headers=internal)
        assert response.status_code == 201
        return response.json()["id"]

    def read(notification, key):
        response = requests.post(f"{hub.base}/v1/notifications/{notification}/read", headers={**viewer, "Idempotency-Key": key})
        assert response.status_code == 200, response.text
        return response.json()

    a, b, c = create("a"), create("b"), create("c")
    assert read(a, "K") == {"notificationId": a, "unreadCount": 2, "changed": 1}
    # The same key for another notification is another request (it used to answer a's reply).
    assert read(b, "K") == {"notificationId": b, "unreadCount": 1, "changed": 1}
    assert read(a, "K") == {"notificationId": a, "unreadCount": 2, "changed": 1}, "the same (notification, key): the same answer"
    # Three keys per user: K1..K3 push out the oldest (a/K, b/K).
    for key in ("K1", "K2", "K3"):
        assert read(a, key)["unreadCount"] == 1
    requests.post(f"{hub.base}/v1/notifications/{c}/read", headers=viewer)
    assert read(a, "K") == {"notificationId": a, "unreadCount": 0, "changed": 0}, "a forgotten key is a new request"
    assert read(a, "K3") == {"notificationId": a, "unreadCount": 1, "changed": 0}, "the newest keys are still remembered"
    # Another user's keys are theirs.
    other = token_for(hub, "dev-owner")
    response = requests.post(f"{hub.base}/v1/notifications/{a}/read", headers={"Authorization": f"Bearer {other}", "Idempotency-Key": "K3"})
    assert response.status_code == 404, "another user's key does not answer for this user's notification"
