"""Issue 20 end to end: three LiveHub nodes on different ports and one real PostgreSQL.

Video published to one node plays through the others; chat and bell events cross nodes; one
publisher per stream key cluster-wide; a node killed with SIGKILL loses nothing committed and its
publisher continues on another node."""
import json
import signal
import subprocess
import threading
import time

import pytest
import requests
import socketio

from cluster import Cluster, PostgresServer, postgres_available, token
from media import publish, stop
from stomp_client import StompWS

pytestmark = pytest.mark.skipif(not postgres_available(), reason="PostgreSQL's server binaries are not installed (apt-get install postgresql)")


@pytest.fixture(scope="module")
def postgres():
    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture
def cluster(postgres, tmp_path):
    nodes = Cluster(postgres, tmp_path, count=3).start()
    yield nodes
    nodes.stop()


def create_room(node, title="cluster room"):
    response = requests.post(f"{node.api}/rooms", json={"title": title}, headers=node.headers())
    assert response.status_code == 201, response.text
    return response.json()


def stream_key(node, room):
    return room["streamKey"]


def status(node, room_id):
    return requests.get(f"{node.api}/rooms/{room_id}", timeout=5).json()["status"]


def ffprobe_streams(url):
    result = subprocess.run(["ffprobe", "-v", "error", "-rw_timeout", "15000000", "-show_entries", "stream=codec_type,codec_name",
                             "-of", "json", url], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return sorted((s["codec_type"], s["codec_name"]) for s in json.loads(result.stdout)["streams"])


def wait_playable(node, room_id, timeout=40):
    """Waits until `node` answers the room's media playlist with a segment listed."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = requests.get(f"{node.base}/hls/{room_id}/media.m3u8", timeout=10)
            if last.status_code == 200 and "#EXTINF:" in last.text:
                return last
        except requests.RequestException as error:
            last = error
        time.sleep(0.3)
    raise AssertionError(f"{node.base} never served a playlist for {room_id}: {last!r} {getattr(last, 'text', '')[:300]}\n{node.output()[-3000:]}")


def media_sequence(playlist):
    return int(next(line for line in playlist.splitlines() if line.startswith("#EXT-X-MEDIA-SEQUENCE:")).split(":")[1])


def ws(node, token_value=None):
    return StompWS(f"ws://127.0.0.1:{node.http_port}/ws/live", token=token_value)


def test_video_published_to_node_2_plays_through_nodes_1_and_3(cluster):
    node1, node2, node3 = cluster.nodes
    room = create_room(node1)
    ffmpeg = publish(node2.rtmp_url(stream_key(node1, room)))
    try:
        node3.wait_for(lambda: status(node3, room["id"]) == "LIVE", what="room LIVE seen from node 3")
        for node in (node1, node3):
            answer = wait_playable(node, room["id"])
            assert answer.headers.get("X-LiveHub-Origin") == "node2", dict(answer.headers)
            assert ffprobe_streams(f"{node.base}/hls/{room['id']}/index.m3u8") == [("audio", "aac"), ("video", "h264")]
        # A blocking playlist reload passes through a non-origin node.
        playlist = wait_playable(node1, room["id"]).text
        msn = max(int(line.split(":")[1]) for line in playlist.splitlines() if line.startswith("#EXT-X-MEDIA-SEQUENCE")) \
            + sum(1 for line in playlist.splitlines() if line.startswith("#EXTINF"))
        held = requests.get(f"{node1.base}/hls/{room['id']}/media.m3u8", params={"_HLS_msn": msn, "_HLS_part": 0}, timeout=15)
        assert held.status_code == 200 and f"{msn}" in held.text, held.text[-500:]
    finally:
        stop(ffmpeg)


def test_chat_from_node_2_reaches_subscribers_on_nodes_1_and_3_in_order(cluster):
    node1, node2, node3 = cluster.nodes
    room = create_room(node1)
    topic = f"/topic/live/{room['id']}/chat"
    watchers = [ws(node1), ws(node3), ws(node2)]
    sender = ws(node2, token("chatter-1", username="Chatter"))
    try:
        for index, watcher in enumerate(watchers):
            watcher.subscribe(topic, f"s{index}", receipt=f"r{index}")
        time.sleep(0.5)
        for index in range(10):
            sender.send_json(f"/app/live/{room['id']}/chat", {"message": f"line {index}"})
            time.sleep(0.21)  # under the per-user rate limit
        for watcher in watchers:
            got = watcher.messages(topic, 10, timeout=15)
            assert [body["message"] for _, body in got] == [f"line {index}" for index in range(10)]
            assert not [f for f in watcher.drain(0.5) if f[0] == "MESSAGE"], "no duplicate"
        history = requests.get(f"{node3.api}/rooms/{room['id']}/chats").json()
        assert [line["message"] for line in history] == [f"line {index}" for index in range(10)]
    finally:
        for client in watchers + [sender]:
            client.close()


class Tab:
    def __init__(self, node, token_value):
        self.events = []
        self.client = socketio.Client(reconnection=False)
        self.client.on("notification:new", lambda data=None: self.events.append(data))
        self.client.connect(node.base, auth={"token": token_value}, wait_timeout=10)

    def wait(self, count, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline and len(self.events) < count:
            time.sleep(0.05)
        return self.events


def test_a_notification_posted_to_node_1_reaches_tabs_on_nodes_2_and_3(cluster):
    node1, node2, node3 = cluster.nodes
    user = token("bell-user")
    tabs = [Tab(node2, user), Tab(node3, user), Tab(node3, user)]
    other = Tab(node2, token("someone-else"))
    try:
        time.sleep(0.5)
        response = requests.post(f"{node1.base}/internal/notifications", json={"userId": "bell-user", "type": "INFO", "title": "Deal at 8"},
                                 headers={"Authorization": f"Bearer {node1.tokens['internal']}"})
        assert response.status_code == 201, response.text
        for tab in tabs:
            events = tab.wait(1)
            assert len(events) == 1 and events[0]["title"] == "Deal at 8" and events[0]["unreadCount"] == 1, events
        time.sleep(0.5)
        assert other.events == [] and all(len(tab.events) == 1 for tab in tabs)
    finally:
        for tab in tabs + [other]:
            tab.client.disconnect()


def test_the_same_key_on_two_nodes_keeps_one_publisher(cluster):
    node1, node2, node3 = cluster.nodes
    room = create_room(node1)
    key = stream_key(node1, room)
    first = publish(node1.rtmp_url(key))
    second = None
    try:
        node1.wait_for(lambda: status(node1, room["id"]) == "LIVE", what="room LIVE")
        node1.wait_for(lambda: cluster.sql(f"SELECT node_id FROM livehub_stream_lease WHERE room_id = '{room['id']}'") == "node1",
                       what="node 1 holds the lease")
        second = publish(node2.rtmp_url(key))
        node2.wait_for(lambda: cluster.sql(f"SELECT node_id FROM livehub_stream_lease WHERE room_id = '{room['id']}'") == "node2",
                       what="node 2 took the lease over")
        node1.wait_for(lambda: first.poll() is not None, timeout=15, what="node 1's publisher disconnected")
        assert second.poll() is None, "the new publisher keeps publishing"
        time.sleep(1)
        assert status(node3, room["id"]) == "LIVE"
        answer = wait_playable(node3, room["id"])
        assert answer.headers.get("X-LiveHub-Origin") == "node2"
    finally:
        stop(first)
        if second:
            stop(second)


def test_kill_9_of_the_ingest_node_the_publisher_moves_and_playback_continues(cluster):
    node1, node2, node3 = cluster.nodes
    room = create_room(node1)
    key = stream_key(node1, room)
    ffmpeg = publish(node2.rtmp_url(key))
    moved = None
    try:
        before = wait_playable(node1, room["id"]).text
        last_msn_before = media_sequence(before) + before.count("#EXTINF:") - 1
        watcher = ws(node1)
        watcher.subscribe(f"/topic/live/{room['id']}/chat", "chat", receipt="ok")
        sender = ws(node3, token("loyal-viewer"))
        sender.send_json(f"/app/live/{room['id']}/chat", {"message": "before the crash"})
        assert [b["message"] for _, b in watcher.messages(f"/topic/live/{room['id']}/chat", 1)] == ["before the crash"]
        node2.proc.send_signal(signal.SIGKILL)
        node2.proc.wait(timeout=10)
        stop(ffmpeg)
        # The publisher reconnects to another node within the grace; the room never ends.
        moved = publish(node3.rtmp_url(key))
        node3.wait_for(lambda: cluster.sql(f"SELECT node_id FROM livehub_stream_lease WHERE room_id = '{room['id']}'") == "node3",
                       timeout=30, what="node 3 took the room over")
        assert status(node1, room["id"]) == "LIVE"
        answer = wait_playable(node1, room["id"])
        assert answer.headers.get("X-LiveHub-Origin") == "node3"
        # The new origin continues the room's numbering after a discontinuity (RFC 8216 §6.2.1).
        assert media_sequence(answer.text) > last_msn_before and "#EXT-X-DISCONTINUITY" in answer.text, answer.text
        assert ffprobe_streams(f"{node1.base}/hls/{room['id']}/index.m3u8") == [("audio", "aac"), ("video", "h264")]
        # Nothing committed was lost: the chat line is in the history read through a survivor.
        history = requests.get(f"{node1.api}/rooms/{room['id']}/chats").json()
        assert [line["message"] for line in history] == ["before the crash"]
        watcher.close()
        sender.close()
    finally:
        stop(ffmpeg)
        if moved:
            stop(moved)
