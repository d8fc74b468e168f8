"""Issue 4 end to end: real ffmpeg publishing RTMP to the real binary, rooms in a real SQLite file."""
import subprocess
import time

import requests

from conftest import db_rows
from media import publish, stop


def snapshot(data_dir):
    return db_rows(data_dir, "SELECT * FROM room ORDER BY id")


def test_a_publisher_makes_the_room_live_and_the_grace_then_ends_it(make_livehub):
    hub = make_livehub(env={"LIVEHUB_RECONNECT_GRACE": "2"}).start()
    room = hub.create_room("live e2e")
    ffmpeg = publish(hub.rtmp_url(room["streamKey"]))
    try:
        hub.wait_for(lambda: hub.room(room["id"])["status"] == "LIVE", what="LIVE")
        live = hub.room(room["id"])
        assert live["startedAt"] and not live["reconnecting"]
    finally:
        stop(ffmpeg)
    hub.wait_for(lambda: hub.room(room["id"])["reconnecting"], what="reconnecting after the publisher left")
    hub.wait_for(lambda: hub.room(room["id"])["status"] == "ENDED", timeout=10, what="ENDED after the grace")
    assert room["streamKey"] not in hub.output(), "the stream key must never be logged"


def test_a_wrong_key_makes_ffmpeg_fail_and_changes_nothing(livehub, data_dir):
    room = livehub.create_room("untouched")
    before = snapshot(data_dir)
    ffmpeg = publish(livehub.rtmp_url("not-a-key"), loop=False, duration=3)
    code = ffmpeg.wait(timeout=20)
    assert code != 0
    assert snapshot(data_dir) == before
    assert livehub.room(room["id"])["status"] == "PENDING"
    metrics = requests.get(f"{livehub.base}/metrics").text
    assert 'reason="unknownKey"' in metrics


def test_a_second_publisher_takes_over_and_the_first_is_disconnected(livehub):
    room = livehub.create_room("takeover")
    first = publish(livehub.rtmp_url(room["streamKey"]))
    second = None
    try:
        livehub.wait_for(lambda: livehub.room(room["id"])["status"] == "LIVE", what="LIVE")
        second = publish(livehub.rtmp_url(room["streamKey"]))
        first.wait(timeout=15)  # the server closed the old connection
        time.sleep(1.5)
        assert second.poll() is None, "the new publisher keeps streaming"
        state = livehub.room(room["id"])
        assert state["status"] == "LIVE" and not state["reconnecting"]
    finally:
        stop(first)
        if second:
            stop(second)


def test_restarting_ffmpeg_within_the_grace_keeps_the_room_live(make_livehub):
    hub = make_livehub(env={"LIVEHUB_RECONNECT_GRACE": "6"}).start()
    room = hub.create_room("blip")
    first = publish(hub.rtmp_url(room["streamKey"]))
    hub.wait_for(lambda: hub.room(room["id"])["status"] == "LIVE", what="LIVE")
    stop(first)
    hub.wait_for(lambda: hub.room(room["id"])["reconnecting"], what="reconnecting")
    again = publish(hub.rtmp_url(room["streamKey"]))
    try:
        hub.wait_for(lambda: not hub.room(room["id"])["reconnecting"], what="reconnected")
        time.sleep(7)  # longer than the grace: the room must still be live
        state = hub.room(room["id"])
        assert state["status"] == "LIVE" and not state["reconnecting"]
    finally:
        stop(again)


def test_the_owner_ending_the_room_disconnects_the_publisher(livehub):
    room = livehub.create_room("ended by owner")
    ffmpeg = publish(livehub.rtmp_url(room["streamKey"]))
    try:
        livehub.wait_for(lambda: livehub.room(room["id"])["status"] == "LIVE", what="LIVE")
        ended = requests.put(f"{livehub.api}/rooms/{room['id']}/end", headers=livehub.headers())
        assert ended.status_code == 200
        ffmpeg.wait(timeout=15)
        assert livehub.room(room["id"])["status"] == "ENDED"
        # The ended room's key is refused from now on.
        retry = publish(livehub.rtmp_url(room["streamKey"]), loop=False, duration=2)
        assert retry.wait(timeout=20) != 0
    finally:
        stop(ffmpeg)


def test_garbage_on_the_rtmp_port_does_not_disturb_a_running_publisher(livehub):
    import socket
    room = livehub.create_room("robust")
    ffmpeg = publish(livehub.rtmp_url(room["streamKey"]))
    try:
        livehub.wait_for(lambda: livehub.room(room["id"])["status"] == "LIVE", what="LIVE")
        for payload in [b"\x00" * 10, b"GET / HTTP/1.1\r\n\r\n", bytes(range(256)) * 20]:
            with socket.create_connection(("127.0.0.1", livehub.rtmp_port), timeout=5) as s:
                s.sendall(payload)
                s.settimeout(5)
                try:
                    while s.recv(65536):
                        pass
                except (ConnectionResetError, socket.timeout):
                    pass
        assert ffmpeg.poll() is None
        assert livehub.room(room["id"])["status"] == "LIVE"
        assert requests.get(f"{livehub.base}/healthz").status_code == 200
    finally:
        stop(ffmpeg)
