"""Issue 21 end to end: every live is recorded as it is served and replayed as a VOD whose
timeline (chat, featured products, orders, status) carries media positions.

Real parts only: ffmpeg publishes RTMP, ffmpeg/ffprobe read the DVR and VOD playlists over HTTP,
STOMP over websocket-client sends the chat, the recordings are the files in the data directory."""
import datetime as dt
import json
import re
import signal
import subprocess
import time
from pathlib import Path

import requests

from media import publish, stop
from stomp_client import StompWS

PART = 0.5
SEGMENT = 2.0


# ---------------------------------------------------------------------------------------------
# helpers


def playlist_facts(text):
    """A media playlist as data: type, segments [{uri, duration, pdt_ms, discontinuity}], dateranges."""
    facts = {"type": None, "ended": "#EXT-X-ENDLIST" in text, "segments": [], "dateranges": [], "maps": []}
    duration, pdt, discontinuity = None, None, False
    for line in text.splitlines():
        if line.startswith("#EXT-X-PLAYLIST-TYPE:"):
            facts["type"] = line.split(":", 1)[1]
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            pdt = iso_ms(line.split(":", 1)[1])
        elif line == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif line.startswith("#EXT-X-MAP:"):
            facts["maps"].append(re.search(r'URI="([^"]+)"', line).group(1))
        elif line.startswith("#EXT-X-DATERANGE:"):
            facts["dateranges"].append(dict(re.findall(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1])))
        elif line.startswith("#EXTINF:"):
            duration = float(line[8:].split(",")[0])
        elif line and not line.startswith("#"):
            facts["segments"].append({"uri": line, "duration": duration, "pdt_ms": pdt, "discontinuity": discontinuity})
            duration, pdt, discontinuity = None, None, False
    for daterange in facts["dateranges"]:
        for key, value in list(daterange.items()):
            daterange[key] = value.strip('"')
    return facts


def iso_ms(text):
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def ffprobe_duration(url):
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", url],
        capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr
    return float(json.loads(result.stdout)["format"]["duration"])


def ffmpeg_decodes(url, seconds=None):
    args = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-i", url]
    if seconds:
        args += ["-t", str(seconds)]
    result = subprocess.run(args + ["-f", "null", "-"], capture_output=True, text=True, timeout=120)
    return result.returncode, result.stderr


def hls(hub, room_id, name):
    return f"{hub.base}/hls/{room_id}/{name}"


def wait_live_segments(hub, room_id, count, timeout=30):
    """Waits until the live playlist lists `count` complete segments; returns its text."""
    def ready():
        answer = requests.get(hls(hub, room_id, "media.m3u8"), timeout=15)
        return answer.text if answer.status_code == 200 and answer.text.count("#EXTINF") >= count else None
    return hub.wait_for(ready, timeout=timeout, what=f"{count} live segments")


def recorded_dir(hub, room_id):
    return Path(hub.data_dir) / "recordings" / room_id


def timeline(hub, room_id, **params):
    answer = requests.get(f"{hub.api}/rooms/{room_id}/timeline", params=params, timeout=15)
    assert answer.status_code == 200, answer.text
    return answer.json()


def whole_timeline(hub, room_id, limit=200):
    events, cursor, pages = [], None, 0
    while True:
        params = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        page = timeline(hub, room_id, **params)
        events += page["events"]
        pages += 1
        cursor = page["nextCursor"]
        if not cursor:
            return page, events, pages


def end_room(hub, room_id):
    answer = requests.put(f"{hub.api}/rooms/{room_id}/end", headers=hub.headers(), timeout=15)
    assert answer.status_code == 200, answer.text
    hub.wait_for(lambda: hub.room(room_id)["status"] == "ENDED", what="ENDED")


# ---------------------------------------------------------------------------------------------
# 1. A 30 s live with chats, two features and an order becomes a VOD with a timeline


def test_a_live_with_chats_features_and_an_order_replays_as_a_vod_with_its_timeline(make_livehub):
    hub = make_livehub().start()
    room = hub.create_room("scarf sale")
    room_id = room["id"]
    api = f"{hub.api}/rooms/{room_id}"
    scarf = requests.post(f"{api}/products", json={"productId": "scarf", "livePrice": 19.0, "productName": "Silk \"scarf\""}, headers=hub.headers()).json()
    hat = requests.post(f"{api}/products", json={"productId": "hat", "livePrice": 12.5, "productName": "Hat"}, headers=hub.headers()).json()
    ffmpeg = publish(hub.rtmp_url(room["streamKey"]))
    viewer = StompWS(f"ws://127.0.0.1:{hub.http_port}/ws/live", token=hub.tokens["viewer"])
    sent = []  # (wall ms, what)
    try:
        hub.wait_for(lambda: hub.room(room_id)["status"] == "LIVE", what="LIVE")
        wait_live_segments(hub, room_id, 1)
        assert requests.get(hls(hub, room_id, "vod.m3u8")).status_code == 404, "no VOD while the live runs"
        assert not hub.room(room_id).get("replayUrl"), "no replayUrl while live"
        started = time.time()

        def at(second):
            time.sleep(max(0, started + second - time.time()))

        def chat(text):
            sent.append((int(time.time() * 1000), "chat", text))
            viewer.send_json(f"/app/live/{room_id}/chat", {"message": text})

        at(2); chat("hello from second 2")
        at(5)
        sent.append((int(time.time() * 1000), "feature", scarf["id"]))
        assert requests.put(f"{api}/products/{scarf['id']}/feature", headers=hub.headers()).status_code == 200
        at(7); chat("love that scarf")
        # The live playlist announces the chapter while the show runs.
        live = hub.wait_for(lambda: (lambda t: t if "EXT-X-DATERANGE" in t else None)(requests.get(hls(hub, room_id, "media.m3u8")).text),
                            what="a DATERANGE in the live playlist")
        assert 'CLASS="com.livehub.product"' in live and 'X-PRODUCT-ID="scarf"' in live, live
        at(10)
        order = {"orderId": "rec-1", "roomId": room_id, "userId": "u1", "username": "kim", "productId": "scarf",
                 "productName": "Silk scarf", "amount": 19.0}
        sent.append((int(time.time() * 1000), "order", "rec-1"))
        assert requests.post(f"{hub.api}/orders", json=order, headers=hub.headers("internal")).status_code == 201
        at(14)
        sent.append((int(time.time() * 1000), "feature", hat["id"]))
        assert requests.put(f"{api}/products/{hat['id']}/feature", headers=hub.headers()).status_code == 200
        at(17); chat("and the hat?")
        # DVR: an EVENT playlist from the first segment, decodable from the start, while live.
        dvr = requests.get(hls(hub, room_id, "dvr.m3u8"))
        assert dvr.status_code == 200, dvr.text
        dvr_facts = playlist_facts(dvr.text)
        assert dvr_facts["type"] == "EVENT" and not dvr_facts["ended"], dvr.text
        assert dvr_facts["segments"][0]["uri"].endswith("-0.m4s"), "the DVR starts at the first segment"
        code, stderr = ffmpeg_decodes(hls(hub, room_id, "dvr.m3u8"), seconds=4)
        assert code == 0, stderr
        # A recorded segment is the live segment, byte for byte (no re-mux).
        live_facts = playlist_facts(requests.get(hls(hub, room_id, "media.m3u8")).text)
        last_live = live_facts["segments"][-1]["uri"]  # seg-N.m4s
        msn = int(re.search(r"(\d+)", last_live).group(1))
        hub.wait_for(lambda: requests.get(hls(hub, room_id, f"rec-{msn}.m4s")).status_code == 200, what="the recorded copy")
        assert requests.get(hls(hub, room_id, f"rec-{msn}.m4s")).content == requests.get(hls(hub, room_id, last_live)).content
        at(26); chat("last words")
        at(30)
        ended_at = int(time.time() * 1000)
        end_room(hub, room_id)
    finally:
        viewer.close()
        stop(ffmpeg)

    # The VOD: type VOD, ENDLIST, PROGRAM-DATE-TIME, the two chapters.
    replay_url = hub.wait_for(lambda: hub.room(room_id).get("replayUrl"), what="replayUrl after the end")
    assert replay_url.endswith(f"/hls/{room_id}/vod.m3u8"), replay_url
    vod = requests.get(hls(hub, room_id, "vod.m3u8"))
    assert vod.status_code == 200, vod.text
    facts = playlist_facts(vod.text)
    assert facts["type"] == "VOD" and facts["ended"], vod.text
    assert all(segment["pdt_ms"] for segment in facts["segments"]), "every segment carries its program date-time"
    chapters = [d for d in facts["dateranges"] if d.get("CLASS") == "com.livehub.product"]
    assert [d["X-PRODUCT-ID"] for d in chapters] == ["scarf", "hat"], vod.text
    assert '"' not in chapters[0]["X-PRODUCT-NAME"] and "scarf" in chapters[0]["X-PRODUCT-NAME"]
    assert "END-DATE" in chapters[0], "the scarf's chapter ends when the hat is featured"
    segment = requests.get(hls(hub, room_id, facts["segments"][1]["uri"]))
    assert segment.status_code == 200 and "immutable" in segment.headers["Cache-Control"]

    # ffmpeg decodes the VOD from start to end; its duration matches the live within one segment.
    code, stderr = ffmpeg_decodes(hls(hub, room_id, "vod.m3u8"))
    assert code == 0 and stderr.strip() == "", stderr
    first_pdt = facts["segments"][0]["pdt_ms"]
    live_seconds = (ended_at - first_pdt) / 1000
    duration = ffprobe_duration(hls(hub, room_id, "vod.m3u8"))
    assert abs(duration - live_seconds) <= SEGMENT, (duration, live_seconds)
    assert abs(sum(s["duration"] for s in facts["segments"]) - duration) <= 0.2

    # The timeline: in order, media times within one part of when each thing was sent.
    page, events, _ = whole_timeline(hub, room_id)
    assert page["recording"] is True and abs(page["durationSeconds"] - duration) <= 0.2
    times = [event["t"] for event in events]
    assert times == sorted(times), "events come in media order"
    chats = [event for event in events if event["type"] == "chat" and event["data"]["type"] == "CHAT"]
    assert [c["data"]["message"] for c in chats] == [text for _, kind, text in sent if kind == "chat"]
    for (wall_ms, _, text), event in zip([s for s in sent if s[1] == "chat"], chats):
        expected = (wall_ms - first_pdt) / 1000
        assert abs(event["t"] - expected) <= PART, (text, event["t"], expected)
    features = [event for event in events if event["type"] == "feature"]
    assert [f["data"]["id"] for f in features] == [scarf["id"], hat["id"]]
    for (wall_ms, _, _), event in zip([s for s in sent if s[1] == "feature"], features):
        assert abs(event["t"] - (wall_ms - first_pdt) / 1000) <= PART
    assert [e["data"]["liveProductId"] for e in events if e["type"] == "unfeature"] == [scarf["id"]]
    orders = [event for event in events if event["type"] == "order"]
    assert len(orders) == 1 and orders[0]["data"]["orderId"] == "rec-1"
    assert abs(orders[0]["t"] - ([s[0] for s in sent if s[1] == "order"][0] - first_pdt) / 1000) <= PART
    assert events[-1]["type"] == "status" and events[-1]["data"]["status"] == "ENDED"

    # Chapters: one per feature, each with a JPEG thumbnail from that moment.
    assert [c["productId"] for c in page["chapters"]] == ["scarf", "hat"]
    for chapter, feature in zip(page["chapters"], features):
        assert abs(chapter["t"] - feature["t"]) <= 0.01
        thumbnail = requests.get(hub.base + chapter["thumbnailUrl"])
        assert thumbnail.status_code == 200 and thumbnail.content[:2] == b"\xff\xd8", chapter

    # Pages of 2 give every event exactly once; from/to select a window of media time.
    _, paged, pages = whole_timeline(hub, room_id, limit=2)
    assert [e["seq"] for e in paged] == [e["seq"] for e in events] and pages >= len(events) // 2
    window = timeline(hub, room_id, **{"from": 6, "to": 18})["events"]
    assert window and all(6 <= e["t"] <= 18 for e in window)
    assert {e["seq"] for e in window} == {e["seq"] for e in events if 6 <= e["t"] <= 18}

    # On disk: the same files the playlists name, and an index.
    directory = recorded_dir(hub, room_id)
    assert (directory / "index.jsonl").exists() and (directory / "init-0.mp4").exists()
    assert len(list(directory.glob("seg-*.m4s"))) == len(facts["segments"])


# ---------------------------------------------------------------------------------------------
# 2. kill -9 in the middle: the recording plays to its last sealed segment, the room ends


def test_kill_9_during_a_live_leaves_a_playable_recording_and_the_room_ends(make_livehub, data_dir):
    env = {"LIVEHUB_RECONNECT_GRACE": "2"}
    first = make_livehub(env=env).start()
    room = first.create_room("crash")
    room_id = room["id"]
    ffmpeg = publish(first.rtmp_url(room["streamKey"]))
    try:
        first.wait_for(lambda: first.room(room_id)["status"] == "LIVE", what="LIVE")
        wait_live_segments(first, room_id, 3)
        recorded_before = len(playlist_facts(requests.get(hls(first, room_id, "dvr.m3u8")).text)["segments"])
        assert recorded_before >= 3
        first.stop(signal.SIGKILL)
    finally:
        stop(ffmpeg)

    second = make_livehub(env=env).start()
    second.wait_for(lambda: second.room(room_id)["status"] == "ENDED", timeout=20, what="the room ends after the grace")
    replay_url = second.wait_for(lambda: second.room(room_id).get("replayUrl"), what="replayUrl")
    vod = playlist_facts(requests.get(replay_url).text)
    assert vod["type"] == "VOD" and vod["ended"]
    assert len(vod["segments"]) >= recorded_before
    code, stderr = ffmpeg_decodes(replay_url)
    assert code == 0 and stderr.strip() == "", stderr
    # Only complete files are listed (a half-written one is still `*.tmp` on disk).
    listed = {s["uri"].replace("rec-", "seg-") for s in vod["segments"]}
    on_disk = {p.name for p in recorded_dir(second, room_id).glob("seg-*.m4s")}
    assert listed <= on_disk


# ---------------------------------------------------------------------------------------------
# 3. A reconnect inside the grace stays one recording, with a discontinuity


def test_a_reconnect_inside_the_grace_is_one_recording_with_a_discontinuity(make_livehub):
    hub = make_livehub(env={"LIVEHUB_RECONNECT_GRACE": "10"}).start()
    room = hub.create_room("reconnect")
    room_id = room["id"]
    ffmpeg = publish(hub.rtmp_url(room["streamKey"]))
    try:
        hub.wait_for(lambda: hub.room(room_id)["status"] == "LIVE", what="LIVE")
        wait_live_segments(hub, room_id, 2)
        stop(ffmpeg)
        hub.wait_for(lambda: hub.room(room_id)["reconnecting"], what="reconnecting")
        ffmpeg = publish(hub.rtmp_url(room["streamKey"]))
        hub.wait_for(lambda: not hub.room(room_id)["reconnecting"], what="back")
        hub.wait_for(lambda: playlist_facts(requests.get(hls(hub, room_id, "dvr.m3u8")).text)["segments"][-1:] and
                     any(s["discontinuity"] for s in playlist_facts(requests.get(hls(hub, room_id, "dvr.m3u8")).text)["segments"]),
                     what="a recorded segment after the reconnect")
        time.sleep(4)
        end_room(hub, room_id)
    finally:
        stop(ffmpeg)
    vod = playlist_facts(requests.get(hls(hub, room_id, "vod.m3u8")).text)
    assert [s["discontinuity"] for s in vod["segments"]].count(True) == 1, vod
    assert len([p for p in recorded_dir(hub, room_id).parent.iterdir() if p.is_dir()]) == 1
    code, stderr = ffmpeg_decodes(hls(hub, room_id, "vod.m3u8"))
    assert code == 0, stderr


# ---------------------------------------------------------------------------------------------
# 4. Disk: the quota removes the oldest recording; below the free-space floor nothing is recorded


def short_show(hub, title, seconds=6):
    room = hub.create_room(title)
    ffmpeg = publish(hub.rtmp_url(room["streamKey"]))
    try:
        hub.wait_for(lambda: hub.room(room["id"])["status"] == "LIVE", what="LIVE")
        wait_live_segments(hub, room["id"], 2)
        time.sleep(seconds)
        end_room(hub, room["id"])
    finally:
        stop(ffmpeg)
    return room


def recording_bytes(directory):
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def test_the_quota_removes_the_oldest_recording_first(make_livehub, data_dir):
    first = make_livehub().start()
    older = short_show(first, "older show")
    older_bytes = recording_bytes(recorded_dir(first, older["id"]))
    assert older_bytes > 100_000
    first.stop()

    second = make_livehub(env={"LIVEHUB_RECORDINGS_MAX_BYTES": str(int(older_bytes * 1.5))}).start()
    assert second.room(older["id"]).get("replayUrl"), "under the quota at start: kept"
    newer = short_show(second, "newer show")
    second.wait_for(lambda: not recorded_dir(second, older["id"]).exists(), what="the older recording removed")
    assert recorded_dir(second, newer["id"]).exists(), "the newest recording stays"
    assert requests.get(hls(second, older["id"], "vod.m3u8")).status_code == 404
    assert not second.room(older["id"]).get("replayUrl")
    assert second.room(newer["id"]).get("replayUrl")
    assert "quota" in second.output()


def test_below_the_free_space_floor_the_live_goes_on_unrecorded(make_livehub):
    hub = make_livehub(env={"LIVEHUB_RECORDINGS_MIN_FREE_BYTES": str(1 << 50)}).start()
    room = hub.create_room("no room on disk")
    ffmpeg = publish(hub.rtmp_url(room["streamKey"]))
    try:
        hub.wait_for(lambda: hub.room(room["id"])["status"] == "LIVE", what="LIVE")
        wait_live_segments(hub, room["id"], 2)
        code, stderr = ffmpeg_decodes(hls(hub, room["id"], "index.m3u8"), seconds=3)
        assert code == 0, stderr
        assert requests.get(hls(hub, room["id"], "dvr.m3u8")).status_code == 404
        assert "free" in hub.output() and "recording" in hub.output().lower()
        end_room(hub, room["id"])
    finally:
        stop(ffmpeg)
    assert not recorded_dir(hub, room["id"]).exists() or not list(recorded_dir(hub, room["id"]).glob("seg-*"))
    assert not hub.room(room["id"]).get("replayUrl")
    assert 'livehub_recordings_refused_total' in requests.get(f"{hub.base}/metrics").text


# ---------------------------------------------------------------------------------------------
# 5. MPEG-TS lives are recorded as served; the owner can delete a recording


def test_an_mpegts_live_is_recorded_as_ts_and_the_owner_deletes_it(make_livehub):
    hub = make_livehub(env={"LIVEHUB_HLS_VARIANT": "mpegts"}).start()
    room = hub.create_room("ts show")
    room_id = room["id"]
    ffmpeg = publish(hub.rtmp_url(room["streamKey"]))
    try:
        hub.wait_for(lambda: hub.room(room_id)["status"] == "LIVE", what="LIVE")
        wait_live_segments(hub, room_id, 2)
        delete = requests.delete(f"{hub.api}/rooms/{room_id}/recording", headers=hub.headers())
        assert delete.status_code == 409, "a recording being written is not deleted"
        time.sleep(3)
        end_room(hub, room_id)
    finally:
        stop(ffmpeg)
    vod = playlist_facts(requests.get(hls(hub, room_id, "vod.m3u8")).text)
    assert vod["segments"] and all(s["uri"].endswith(".ts") for s in vod["segments"]) and not vod["maps"]
    code, stderr = ffmpeg_decodes(hls(hub, room_id, "vod.m3u8"))
    assert code == 0, stderr

    assert requests.delete(f"{hub.api}/rooms/{room_id}/recording", headers=hub.headers("viewer")).status_code == 403
    assert requests.delete(f"{hub.api}/rooms/{room_id}/recording").status_code == 401
    deleted = requests.delete(f"{hub.api}/rooms/{room_id}/recording", headers=hub.headers())
    assert deleted.status_code == 204, deleted.text
    assert requests.get(hls(hub, room_id, "vod.m3u8")).status_code == 404
    assert not recorded_dir(hub, room_id).exists()
    assert not hub.room(room_id).get("replayUrl")
    assert requests.delete(f"{hub.api}/rooms/{room_id}/recording", headers=hub.headers()).status_code == 404


# ---------------------------------------------------------------------------------------------
# 6. Hostile names and timeline parameters next to a healthy room


def test_hostile_recording_names_and_timeline_queries_are_refused_and_the_room_plays_on(make_livehub):
    hub = make_livehub().start()
    room = hub.create_room("healthy")
    room_id = room["id"]
    ffmpeg = publish(hub.rtmp_url(room["streamKey"]))
    try:
        hub.wait_for(lambda: hub.room(room_id)["status"] == "LIVE", what="LIVE")
        wait_live_segments(hub, room_id, 2)
        for name in ["rec-01.m4s", "rec--1.m4s", "rec-99999999999.m4s", "rec-0.mp4", "rec-init-x.mp4", "chapter-99999999999.jpg",
                     "chapter-0.png", "..%2Findex.jsonl", "index.jsonl", "rec-0.m4s.tmp", "vod.m3u8"]:
            answer = requests.get(hls(hub, room_id, name))
            assert answer.status_code == 404, (name, answer.status_code)
        for params in [{"from": "nan"}, {"from": "1e309"}, {"from": "-1"}, {"from": "5", "to": "1"}, {"limit": "0"},
                       {"limit": "100000"}, {"cursor": "garbage"}, {"cursor": "x" * 10_000}, {"to": "99999999999999999999"}]:
            answer = requests.get(f"{hub.api}/rooms/{room_id}/timeline", params=params)
            assert answer.status_code == 400, (params, answer.status_code, answer.text)
            assert answer.json()["error"] == "BAD_REQUEST"
        code, stderr = ffmpeg_decodes(hls(hub, room_id, "dvr.m3u8"), seconds=3)
        assert code == 0, stderr
        assert hub.room(room_id)["status"] == "LIVE"
    finally:
        stop(ffmpeg)
