"""Issue 17: nothing a guest, a viewer or a publisher sends may take LiveHub down.

Every test here runs next to a healthy live room: ffmpeg publishing, a signed-in viewer subscribed
to its chat. After the hostile input, the room must be untouched (the viewer's chat still makes the
round trip, the playlist still advances, ffmpeg still publishes) and the process alive. Memory checks
read the server's RSS from /proc.
"""
import os
import re
import socket
import struct
import time

import pytest
import requests
import websocket

import media
from rtmp_client import RawPublisher, avcc, h264_sps
from stomp_client import StompWS


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+)", status.read()).group(1))


class HealthyRoom:
    """A live room with a publisher and a chatting viewer; `check()` proves it is untouched."""

    def __init__(self, hub):
        self.hub = hub
        self.room = hub.create_room("healthy room")
        self.id = self.room["id"]
        self.ffmpeg = media.publish(hub.rtmp_url(self.room["streamKey"]))
        hub.wait_for(lambda: hub.room(self.id)["status"] == "LIVE", what="healthy room LIVE")
        hub.wait_for(lambda: requests.get(self.playlist_url(), timeout=5).status_code == 200, what="healthy playlist")
        self.viewer = StompWS(f"ws://127.0.0.1:{hub.http_port}/ws/live", token=hub.tokens["viewer"])
        self.viewer.subscribe(f"/topic/live/{self.id}/chat", "sub-chat", receipt="r-chat")
        self.chats = 0
        self.last_sequence = -1

    def playlist_url(self):
        return f"{self.hub.base}/hls/{self.id}/media.m3u8"

    def media_sequence_end(self):
        text = requests.get(self.playlist_url(), timeout=5).text
        sequence = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text).group(1))
        return sequence + text.count("#EXTINF")

    def check(self, what):
        assert self.hub.proc.poll() is None, f"livehub died after {what}:\n{self.hub.output()[-3000:]}"
        assert self.ffmpeg.poll() is None, f"the healthy publisher stopped after {what}:\n{self.hub.output()[-3000:]}"
        self.chats += 1
        text = f"still here {self.chats}"
        self.viewer.send_json(f"/app/live/{self.id}/chat", {"message": text})
        try:
            got = self.viewer.messages(f"/topic/live/{self.id}/chat", 1, timeout=10)
        except AssertionError as error:
            raise AssertionError(f"the viewer's chat did not come back after {what}: {error}\n{self.hub.output()[-3000:]}") from None
        assert got and got[0][1]["message"] == text, f"the viewer's chat did not come back after {what}"
        end = self.media_sequence_end()
        self.hub.wait_for(lambda: self.media_sequence_end() > end, timeout=10, what=f"the healthy playlist to advance after {what}")
        assert self.hub.room(self.id)["status"] == "LIVE"

    def close(self):
        self.viewer.close()
        media.stop(self.ffmpeg)


@pytest.fixture
def hostile(make_livehub):
    """A server with low limits where a test needs to reach them quickly, and a healthy room."""
    hub = make_livehub(env={
        "LIVEHUB_RTMP_PUBLISH_DEADLINE": "2",
        "LIVEHUB_RTMP_MAX_CONNECTIONS_PER_IP": "12",
        "LIVEHUB_HLS_MAX_SEGMENTS_PER_10S": "20",
    }).start()
    room = HealthyRoom(hub)
    yield hub, room
    room.close()


def second_room(hub):
    room = hub.create_room("hostile publisher's room")
    return room["id"], room["streamKey"]


def raw_publisher(hub, room_id, key):
    publisher = RawPublisher(hub.rtmp_port)
    publisher.publish(key)
    hub.wait_for(lambda: hub.room(room_id)["status"] == "LIVE", what="raw publish accepted")
    return publisher


def status_of(url):
    try:
        return requests.get(url, timeout=10).status_code
    except requests.RequestException:
        return None


def test_impossible_metadata_and_sequence_headers_are_harmless(hostile):
    """framerate 0 and 1e300, absurd widths, an SPS of 2^36 pixels, a scaling-list delta near 2^31."""
    hub, healthy = hostile
    room_id, key = second_room(hub)
    publisher = raw_publisher(hub, room_id, key)
    publisher.metadata([("width", 1e300), ("height", -720.0), ("framerate", 0.0), ("videodatarate", float("nan")),
                        ("audiosamplerate", 1e300), ("audiochannels", 2)])
    publisher.metadata([("framerate", 1e300)])
    publisher.aac_sequence_header()
    publisher.avc_sequence_header(avcc(h264_sps()))
    for index in range(90):
        publisher.avc_frame(index * 33, keyframe=index % 30 == 0)
        publisher.audio(index * 33, b"\xaf\x01\x21\x10\x04\x60\x8c\x1c")
    hub.wait_for(lambda: status_of(f"{hub.base}/hls/{room_id}/index.m3u8") == 200, what="hostile room playlist")
    multivariant = requests.get(f"{hub.base}/hls/{room_id}/index.m3u8", timeout=5).text
    # FRAME-RATE is measured from the timestamps (33 ms apart), not taken from the metadata.
    assert re.search(r"FRAME-RATE=30\.\d+", multivariant), multivariant
    assert "ignoring implausible onMetaData values" in hub.output()
    # New sequence headers: an SPS declaring 2^36 pixels per side, then a scaling-list delta of
    # 2^31 - 1. Each used to trap; now the size is unknown (the stream goes on or is refused) and the
    # process carries on.
    publisher.avc_sequence_header(avcc(h264_sps(width_mbs_minus1=(1 << 32) - 2)))
    for index in range(90, 150):
        publisher.avc_frame(index * 33, keyframe=index % 30 == 0)
    publisher.avc_sequence_header(avcc(h264_sps(scaling_delta=2_147_483_647)))
    for index in range(150, 210):
        publisher.avc_frame(index * 33, keyframe=index % 30 == 0)
    assert status_of(f"{hub.base}/hls/{room_id}/media.m3u8") in (200, 404, 503)
    publisher.close()
    healthy.check("impossible metadata and sequence headers")


def test_timestamps_forcing_a_segment_per_frame_cut_the_publisher_off(hostile):
    hub, healthy = hostile
    room_id, key = second_room(hub)
    publisher = raw_publisher(hub, room_id, key)
    publisher.aac_sequence_header()
    publisher.avc_sequence_header(avcc(h264_sps()))
    closed = False
    for index in range(400):
        try:
            publisher.avc_frame(index * 2100, keyframe=True)  # every frame a keyframe 2.1 s after the last
        except OSError:
            closed = True
            break
    closed = closed or publisher.is_closed_by_server(within=5)
    assert closed, "the publisher was not disconnected"
    assert "LIVEHUB_HLS_MAX_SEGMENTS_PER_10S" in hub.output()
    fds = len(os.listdir(f"/proc/{hub.proc.pid}/fd"))
    assert fds < 400, f"{fds} descriptors open"
    healthy.check("a segment per frame")


def test_a_trickling_connection_is_closed_at_the_publish_deadline(hostile):
    hub, healthy = hostile
    sock = socket.create_connection(("127.0.0.1", hub.rtmp_port))
    sock.sendall(b"\x03" + bytes(1536))
    started = time.time()
    closed_after = None
    for _ in range(100):  # one byte every 100 ms: always active, never publishing
        try:
            sock.sendall(b"\x00")
            sock.settimeout(0.1)
            if sock.recv(65536) == b"" and closed_after is None:
                closed_after = time.time() - started
                break
        except socket.timeout:
            pass
        except OSError:
            closed_after = time.time() - started
            break
    sock.close()
    assert closed_after is not None and closed_after < 4, closed_after
    assert "no publish within 2.0 s" in hub.output()
    healthy.check("a trickling connection")


def test_reassembly_before_publish_is_bounded_in_memory(hostile):
    """Ten connections (the per-address limit is 12: the healthy publisher holds one) each starting
    five 8 MiB messages: refused at 256 KiB each, so RSS hardly moves."""
    hub, healthy = hostile
    before = rss_kib(hub.proc.pid)
    clients = []
    for _ in range(10):
        client = RawPublisher(hub.rtmp_port)
        client.handshake()
        for csid in range(3, 8):
            header = bytes([csid]) + b"\x00\x00\x00" + (8 << 20).to_bytes(3, "big")[-3:] + b"\x12" + struct.pack("<I", 1)
            client.send(header + bytes(128))
        clients.append(client)
    assert all(client.is_closed_by_server(within=5) for client in clients)
    assert rss_kib(hub.proc.pid) - before < 20_000
    assert "partly reassembled messages would hold" in hub.output()
    healthy.check("reassembly flood")


def test_connections_over_the_per_address_limit_are_refused(hostile):
    hub, healthy = hostile
    sockets = [socket.create_connection(("127.0.0.1", hub.rtmp_port)) for _ in range(11)]  # + the healthy publisher = 12
    time.sleep(0.5)
    extra = RawPublisher(hub.rtmp_port)
    assert extra.is_closed_by_server(within=3)
    assert "LIVEHUB_RTMP_MAX_CONNECTIONS_PER_IP" in hub.output()
    for s in sockets:
        s.close()
    healthy.check("a connection flood")


def test_garbage_rtmp_closes_only_its_connection(hostile):
    hub, healthy = hostile
    for payload in [b"\x47" + bytes(range(256)) * 8, b"\x03" + bytes(1536) + bytes(1536) + b"\x02\xff\xff\xff\xff\xff\xff\x01\x00\x00\x00\x00\x00\x00\x00\x00",
                    b"\x03" + bytes(3072) + b"\x06\x00\x00\x00\xff\xff\xff\x09\x01\x00\x00\x00"]:
        client = RawPublisher(hub.rtmp_port)
        client.send(payload)
        assert client.is_closed_by_server(within=5)
    healthy.check("garbage RTMP")


def test_hls_requests_with_hostile_numbers_are_refused(hostile):
    hub, healthy = hostile
    base = f"{hub.base}/hls/{healthy.id}"
    cases = {
        "media.m3u8?_HLS_msn=99999999999999999999999": 400,
        "media.m3u8?_HLS_msn=-1": 400,
        "media.m3u8?_HLS_part=3": 400,
        "media.m3u8?_HLS_msn=1&_HLS_part=9223372036854775808": 400,
        "media.m3u8?_HLS_msn=999999999": 400,
        "seg-99999999999999999999.m4s": 404,
        "part-1--1.m4s": 404,
        "init-%2e%2e.mp4": 404,
        "x" * 5000: None,  # any 4xx: 404, or the header-size limit's answer
    }
    for path, status in cases.items():
        got = requests.get(f"{base}/{path}", timeout=10).status_code
        assert got == status if status else 400 <= got < 500, (path[:60], got)
    healthy.check("hostile HLS requests")


def test_stomp_heart_beat_of_2_pow_63_does_not_kill_the_process(hostile):
    """The first crash in the issue: a guest's CONNECT with heart-beat 9223372036854775807,0."""
    hub, healthy = hostile
    ws = websocket.create_connection(f"ws://127.0.0.1:{hub.http_port}/ws/live", subprotocols=["v12.stomp"], timeout=5)
    ws.send("CONNECT\naccept-version:1.2\nheart-beat:9223372036854775807,9223372036854775807\n\n\x00")
    assert ws.recv().startswith("CONNECTED")
    time.sleep(2.5)  # the server's ticker runs every 0.5 s: the old code trapped on the first tick
    ws.close()
    healthy.check("a 2^63 heart-beat")


def test_websocket_frames_with_hostile_lengths_are_closed_cleanly(hostile):
    hub, healthy = hostile
    for frame in [
        b"\x81\x7f" + struct.pack(">Q", (1 << 63) - 1) + b"\x00\x00\x00\x00",  # masked bit missing, 2^63 length
        b"\x81\xff" + struct.pack(">Q", (1 << 63) - 1) + b"\x01\x02\x03\x04",  # 2^63 - 1 bytes announced
        b"\x81\xfe\xff\xff\x01\x02\x03\x04" + bytes(10),  # 64 KiB announced, 10 sent, then silence
        b"\x89\xfe\x01\x00\x01\x02\x03\x04" + bytes(256),  # a 256-byte ping (control frames ≤ 125)
    ]:
        ws = websocket.create_connection(f"ws://127.0.0.1:{hub.http_port}/ws/live", subprotocols=["v12.stomp"], timeout=5)
        ws.sock.sendall(frame)
        ws.sock.settimeout(5)
        try:
            while ws.sock.recv(65536):
                pass
        except (socket.timeout, OSError):
            pass
        ws.close()
    healthy.check("hostile WebSocket frames")


def test_what_fuzzing_found_is_harmless(hostile):
    """Inputs the fuzz targets and schemathesis found crashing the process, sent for real:
    an avcC without SPS and PPS (libav's teardown after a refused header), an order amount of 1e308
    and a product whose displayOrder is 2^63 - 1 (integer conversions that trapped)."""
    hub, healthy = hostile
    room_id, key = second_room(hub)
    publisher = raw_publisher(hub, room_id, key)
    publisher.avc_sequence_header(bytes([0x01, 0x4D, 0x40, 0x00, 0x00, 0x00, 0x00]))
    for index in range(60):
        publisher.avc_frame(index * 33, keyframe=index % 30 == 0)
    time.sleep(1)
    publisher.close()
    internal = {"Authorization": f"Bearer {hub.tokens['internal']}"}
    order = {"orderId": "o-1", "roomId": healthy.id, "userId": "u", "amount": 1.07e308}
    response = requests.post(f"{hub.api}/orders", json=order, headers=internal, timeout=10)
    assert response.status_code == 422 and set(response.json()) == {"error", "message"}
    product = {"productId": "p-1", "livePrice": 10, "displayOrder": 9223372036854775807}
    response = requests.post(f"{hub.api}/rooms/{room_id}/products", json=product, headers=hub.headers(), timeout=10)
    assert response.status_code == 422
    response = requests.post(f"{hub.api}/rooms/{room_id}/products", json={"productId": "p-2", "livePrice": 10}, headers=hub.headers(), timeout=10)
    assert response.status_code == 201
    healthy.check("what fuzzing found")


def test_a_bell_socket_cannot_push_its_auth_deadline_forward(hostile):
    """The third crash-class of the issue: leaving the namespace and joining again used to restart
    the AUTH deadline, so an unauthenticated socket could stay for ever."""
    hub, healthy = hostile
    ws = websocket.create_connection(f"ws://127.0.0.1:{hub.http_port}/socket.io/?EIO=4&transport=websocket", timeout=5)
    assert ws.recv().startswith("0{")
    started = time.time()
    closed_after = None
    ws.settimeout(0.3)
    while time.time() - started < 20:
        try:
            ws.send("40")
            ws.send("41")
            while True:
                ws.recv()
        except websocket.WebSocketTimeoutException:
            continue
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
            closed_after = time.time() - started
            break
    assert closed_after is not None and closed_after < 13, closed_after  # LIVEHUB_SOCKETIO_AUTH_TIMEOUT = 10 s
    healthy.check("an AUTH-deadline reset loop")
