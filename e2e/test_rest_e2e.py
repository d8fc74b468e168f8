"""Issue 3 end to end: the real binary, real HTTP, a real SQLite file."""
import signal
import sqlite3

import requests

from conftest import BACKEND, db_rows


def test_the_banner_prints_listeners_and_dev_tokens(livehub):
    text = livehub.output()
    assert "LiveHub " in text and "libavformat" in text
    assert f"http      listening on http://127.0.0.1:{livehub.http_port}" in text
    assert set(livehub.tokens) == {"owner", "viewer", "internal"}


def test_version_prints_liveHub_and_libav_versions():
    import subprocess
    from conftest import BIN
    out = subprocess.run([BIN, "--version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("LiveHub ")
    assert "libavformat 59." in out or "libavformat" in out
    assert "libavcodec" in out


def test_an_owner_creates_starts_reads_and_ends_a_room_with_curl_like_calls(livehub):
    room = livehub.create_room("Spring sale")
    assert room["status"] == "PENDING"
    assert room["streamKey"] and room["rtmpUrl"].endswith("/live")
    started = requests.put(f"{livehub.api}/rooms/{room['id']}/start", headers=livehub.headers())
    assert started.status_code == 200 and started.json()["status"] == "WAITING_STREAM"
    got = requests.get(f"{livehub.api}/rooms/{room['id']}", headers=livehub.headers()).json()
    assert got["status"] == "WAITING_STREAM" and got["streamKey"] == room["streamKey"]
    ended = requests.put(f"{livehub.api}/rooms/{room['id']}/end", headers=livehub.headers())
    assert ended.status_code == 200
    stats = ended.json()
    assert stats["status"] == "ENDED" and set(stats) >= {"duration", "peakViewers", "totalOrders", "totalRevenue"}
    listing = requests.get(f"{livehub.api}/rooms")
    assert listing.status_code == 200
    assert "streamKey" not in listing.text and room["streamKey"] not in listing.text
    assert listing.json()["items"][0]["id"] == room["id"]


def test_the_stream_key_never_reaches_the_log(livehub):
    room = livehub.create_room()
    requests.post(f"{livehub.api}/rooms/{room['id']}/stream-key", headers=livehub.headers())
    requests.post(f"{livehub.api}/callback/start?name={room['streamKey']}")
    assert room["streamKey"] not in livehub.output()


def test_a_viewer_cannot_create_and_bad_json_is_refused_without_writing(livehub, data_dir):
    r = requests.post(f"{livehub.api}/rooms", json={"title": "x"}, headers=livehub.headers("viewer"))
    assert r.status_code == 403 and r.json()["error"] == "FORBIDDEN"
    r = requests.post(f"{livehub.api}/rooms", data="{not json", headers={**livehub.headers(), "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["message"]
    r = requests.post(f"{livehub.api}/rooms", json={"title": "t" * 600}, headers=livehub.headers())
    assert r.status_code == 422
    assert db_rows(data_dir, "SELECT COUNT(*) FROM room") == [["0"]]


def test_sigterm_shuts_down_cleanly_and_the_data_survives_a_restart(make_livehub, data_dir):
    first = make_livehub().start()
    room = first.create_room("kept across restarts")
    assert first.stop(signal.SIGTERM) == 0
    assert "database closed" in first.output()
    if BACKEND == "sqlite":
        with sqlite3.connect(data_dir / "livehub.sqlite") as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    second = make_livehub().start()
    assert second.room(room["id"])["title"] == "kept across restarts"
    # The first run's token still works: the dev secret survived the restart.
    mine = requests.get(f"{second.api}/rooms/mine", headers=first.headers()).json()
    assert [r["id"] for r in mine] == [room["id"]]


def test_a_room_left_live_by_a_crash_is_recovered_then_ended(make_livehub):
    first = make_livehub(env={"LIVEHUB_RECONNECT_GRACE": "1"}).start()
    room = first.create_room("crashing")
    assert requests.post(f"{first.api}/callback/start?name={room['streamKey']}").status_code == 200
    assert first.room(room["id"])["status"] == "LIVE"
    first.stop(signal.SIGKILL)
    second = make_livehub(env={"LIVEHUB_RECONNECT_GRACE": "1"}).start()
    recovered = second.room(room["id"])
    assert recovered["status"] in ("LIVE", "ENDED")
    second.wait_for(lambda: second.room(room["id"])["status"] == "ENDED", what="room ENDED after grace")
    assert second.room(room["id"])["endedAt"]
