"""The WebSocket layer itself (RFC 6455), on the real binary with raw sockets: LiveHub upgrades and
runs hub connections on NIO without the WebSocket library's task per connection
(Sources/Server/HTTP/LiveHubHTTPChannel.swift, Sources/Hub/Transport/ChannelConnection.swift), so its
control-frame handling, protocol errors and upgrade refusals are checked here byte by byte."""
import base64
import os
import signal
import socket
import struct
import time

import requests

from stomp_client import StompWS, frame, parse


def ws_url(hub, path):
    return hub.base.replace("http://", "ws://") + path


def client_frame(opcode, payload=b"", fin=True, rsv1=False, masked=True):
    """A client frame (RFC 6455 §5.2), masked unless told otherwise."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    length = len(payload)
    mask_bit = 0x80 if masked else 0
    if length < 126:
        head = struct.pack("!BB", first, mask_bit | length)
    elif length <= 0xFFFF:
        head = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class RawWebSocket:
    """A hand-driven WebSocket client: upgrade, send frames, read server frames until EOF."""

    def __init__(self, hub, path="/ws/live", protocols=None):
        self.sock = socket.create_connection(("127.0.0.1", hub.http_port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        extra = f"Sec-WebSocket-Protocol: {protocols}\r\n" if protocols else ""
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            assert chunk, f"closed during the upgrade: {self.buffer!r}"
            self.buffer += chunk
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        self.head = head.decode()

    @property
    def status(self):
        return int(self.head.split(" ", 2)[1])

    def header(self, name):
        for line in self.head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    def send(self, data):
        self.sock.sendall(data)

    def next_frame(self):
        """(opcode, payload) of the next server frame; None at EOF."""
        while True:
            if len(self.buffer) >= 2:
                first, second = self.buffer[0], self.buffer[1]
                assert second & 0x80 == 0, "server frames are never masked (RFC 6455 §5.1)"
                length, offset = second & 0x7F, 2
                if length == 126 and len(self.buffer) >= 4:
                    length, offset = struct.unpack("!H", self.buffer[2:4])[0], 4
                elif length == 127 and len(self.buffer) >= 10:
                    length, offset = struct.unpack("!Q", self.buffer[2:10])[0], 10
                if length < 126 or offset > 2:
                    if len(self.buffer) >= offset + length:
                        payload = self.buffer[offset:offset + length]
                        self.buffer = self.buffer[offset + length:]
                        return first & 0x0F, payload
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk

    def close_code_and_eof(self):
        """Skips data frames up to the server's Close; returns its code, after checking the TCP
        connection is closed right after it."""
        while True:
            got = self.next_frame()
            assert got is not None, "the connection ended without a Close frame"
            opcode, payload = got
            if opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                assert self.next_frame() is None, "the server keeps the TCP connection open after its Close"
                return code

    def stomp(self, command, headers=None, body=""):
        self.send(client_frame(0x1, frame(command, headers, body).encode()))

    def next_stomp(self):
        while True:
            got = self.next_frame()
            assert got is not None, "closed while waiting for a STOMP frame"
            opcode, payload = got
            if opcode == 0x1 and payload.strip(b"\r\n"):
                return parse(payload.decode())[0]


def connect_stomp(ws):
    ws.stomp("CONNECT", {"accept-version": "1.2", "heart-beat": "0,0"})
    command, _, _ = ws.next_stomp()
    assert command == "CONNECTED"


def test_ping_is_answered_with_its_payload_and_a_close_is_echoed_then_the_server_closes(livehub):
    ws = RawWebSocket(livehub, protocols="v10.stomp, v12.stomp")
    assert ws.status == 101 and ws.header("Sec-WebSocket-Protocol") == "v12.stomp", ws.head
    connect_stomp(ws)
    ws.send(client_frame(0x9, b"are you there"))
    assert ws.next_frame() == (0xA, b"are you there")
    ws.send(client_frame(0x8, struct.pack("!H", 1001) + b"going away"))
    assert ws.close_code_and_eof() == 1001

    # A Close with a reserved code (1005 must never be sent, RFC 6455 §7.4.1) is a protocol error.
    other = RawWebSocket(livehub)
    other.send(client_frame(0x8, struct.pack("!H", 1005)))
    assert other.close_code_and_eof() == 1002


def test_negotiated_server_heart_beats_arrive_on_time_while_the_ticker_skips_idle_sessions(livehub):
    """STOMP 1.2 §Heart-beating: the client asks for a server heart-beat every 1 s, the server can
    send every 10 s, so an EOL must arrive ~10 s after the last write. The per-connection ticker
    skips a session until its deadline (ConnectionTicker): the CONNECT must bring that deadline
    forward, and the heart-beat must not come late."""
    ws = RawWebSocket(livehub)
    ws.sock.settimeout(20)
    ws.stomp("CONNECT", {"accept-version": "1.2", "heart-beat": "0,1000"})
    command, headers, _ = ws.next_stomp()
    assert command == "CONNECTED"
    sx, _ = (int(v) for v in headers["heart-beat"].split(","))
    assert sx >= 1000
    started = time.monotonic()
    while True:
        opcode, payload = ws.next_frame()
        if opcode == 0x1 and payload.strip(b"\r\n") == b"":
            break
    waited = time.monotonic() - started
    # Due `sx` ms after CONNECTED; the ticker's round (500 ms) may add one round.
    assert sx / 1000 - 0.2 <= waited <= sx / 1000 + 1.5, waited


def test_protocol_violations_are_closed_with_1002_or_1009_and_bystanders_keep_working(livehub):
    bystander = StompWS(ws_url(livehub, "/ws/live"), token=livehub.tokens["viewer"])
    cases = {
        "unmasked client frame (RFC 6455 §5.1)": (client_frame(0x1, b"CONNECT\n\n\x00", masked=False), 1002),
        "RSV1 without an extension (§5.2)": (client_frame(0x1, b"x", rsv1=True), 1002),
        "reserved opcode 0x3 (§5.2)": (client_frame(0x3, b"x"), 1002),
        "fragmented Ping (§5.5)": (client_frame(0x9, b"x", fin=False), 1002),
        # Announced in the header and refused on it: only its first bytes are sent, so that no unread
        # data turns the server's close into a TCP reset.
        "a 2 MiB frame (limit 1 MiB)": (client_frame(0x2, b"\0" * (2 << 20))[:200], 1009),
    }
    for what, (data, expected) in cases.items():
        ws = RawWebSocket(livehub)
        ws.send(data)
        assert ws.close_code_and_eof() == expected, what
    room = livehub.create_room("bystander")
    bystander.send_frame("SUBSCRIBE", {"id": "s", "destination": f"/topic/live/{room['id']}/chat", "receipt": "r"})
    assert bystander.expect("RECEIPT")[1]["receipt-id"] == "r"
    bystander.close()


def test_a_stomp_frame_split_over_a_text_frame_and_continuations_is_one_frame(livehub):
    ws = RawWebSocket(livehub)
    data = frame("CONNECT", {"accept-version": "1.2", "heart-beat": "0,0"}).encode()
    ws.send(client_frame(0x1, data[:5], fin=False))
    ws.send(client_frame(0x0, data[5:12], fin=False))
    ws.send(client_frame(0x0, data[12:], fin=True))
    assert ws.next_stomp()[0] == "CONNECTED"


def test_a_burst_of_frames_is_handled_in_order_past_the_read_pause(livehub):
    """300 SUBSCRIBEs with receipts in one write: far past the backlog at which the connection
    stops reading, so reading is paused and resumed; every RECEIPT comes, in order."""
    room = livehub.create_room("burst")
    ws = RawWebSocket(livehub)
    connect_stomp(ws)
    burst = b"".join(
        client_frame(0x1, frame("SUBSCRIBE", {"id": f"s{i}", "destination": f"/topic/live/{room['id']}/chat",
                                              "receipt": f"r{i}"}).encode())
        for i in range(300))
    ws.send(burst)
    receipts = []
    while len(receipts) < 300:
        command, headers, body = ws.next_stomp()
        assert command == "RECEIPT", (command, headers, body)
        receipts.append(headers["receipt-id"])
    assert receipts == [f"r{i}" for i in range(300)]


def test_upgrades_to_unknown_paths_bad_handshakes_and_late_upgrades_are_refused(livehub):
    unknown = RawWebSocket(livehub, path="/ws/nowhere")
    assert unknown.status == 404 and b"no WebSocket endpoint at /ws/nowhere" in unknown.buffer + unknown.sock.recv(4096)

    old_engine = RawWebSocket(livehub, path="/socket.io/?EIO=3&transport=websocket")
    assert old_engine.status == 400 and old_engine.header("Content-Type") == "application/json"
    body = old_engine.buffer
    while len(body) < int(old_engine.header("Content-Length")):
        body += old_engine.sock.recv(4096)
    assert body == b'{"code":5,"message":"Unsupported protocol version"}'

    # An upgrade after a plain request on the same connection: redirected to a fresh connection.
    sock = socket.create_connection(("127.0.0.1", livehub.http_port), timeout=10)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    first = b""
    while b"\r\n\r\n" not in first:
        first += sock.recv(4096)
    length = int([line.split(b":")[1] for line in first.split(b"\r\n") if line.lower().startswith(b"content-length")][0])
    while len(first.split(b"\r\n\r\n", 1)[1]) < length:
        first += sock.recv(4096)
    assert first.startswith(b"HTTP/1.1 200")
    sock.sendall(b"GET /ws/live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    late = b""
    while chunk := sock.recv(4096):
        late += chunk
    assert late.startswith(b"HTTP/1.1 307") and b"\r\nlocation: /ws/live\r\n" in late.lower(), late

    # The server is fine afterwards.
    assert requests.get(f"{livehub.base}/healthz", timeout=5).status_code == 200


def test_shutdown_says_goodbye_to_every_websocket_and_exits(livehub):
    ws = RawWebSocket(livehub)
    connect_stomp(ws)
    started = time.monotonic()
    livehub.proc.send_signal(signal.SIGTERM)
    command, headers, _ = ws.next_stomp()
    assert command == "ERROR" and headers.get("message") == "server shutting down"
    assert ws.close_code_and_eof() == 1001
    assert livehub.proc.wait(timeout=20) == 0
    assert time.monotonic() - started < 15
