"""HLS end to end: real ffmpeg publishes RTMP into the real `livehub` binary, and real HLS clients
(ffprobe/ffmpeg, plain HTTP, a headless Chromium) read what it serves under /hls/{roomId}/.

One server + one publisher per variant is shared by the tests of this module (a module-scoped
fixture, parametrized indirectly); tests that need other settings (1 s GOP, reconnect grace) start
their own. Start-up and blocking-reload timings are recorded (never asserted tightly) into
e2e/artifacts/hls-measurements.json.
"""
import http.client
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import FIXTURES, LiveHubProcess
from media import FIXTURE_2S, publish, stop

FIXTURE_1S = FIXTURES / "h264-aac-1s-gop.flv"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FRAME = 1 / 30  # the fixtures are 30 fps
PARTS_PER_SEGMENT = 4  # 2 s segments / 0.5 s parts, and the fixtures' GOPs divide 2 s exactly
MEASUREMENTS = {}


# ---------------------------------------------------------------------------------------------
# Playlist parsing


def attributes(text):
    """`KEY=VALUE,KEY="quoted, value"` → dict (RFC 8216bis §4.2 attribute lists)."""
    return {key: value.strip('"') for key, value in re.findall(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)', text)}


def parse_media_playlist(text):
    """A media playlist as a dict: header values, `segments` (complete ones: msn, duration, uri,
    parts, discontinuity, map), `open_parts` (parts of the still-open segment), `hint`, `ended`."""
    lines = text.splitlines()
    assert lines and lines[0] == "#EXTM3U", text
    playlist = {"target": None, "media_sequence": 0, "discontinuity_sequence": 0, "part_target": None,
                "server_control": None, "segments": [], "open_parts": [], "hint": None, "ended": False}
    pending_parts, pending_discontinuity, pending_duration, current_map = [], False, None, None
    for line in lines[1:]:
        if line.startswith("#EXT-X-TARGETDURATION:"):
            playlist["target"] = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            playlist["media_sequence"] = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-DISCONTINUITY-SEQUENCE:"):
            playlist["discontinuity_sequence"] = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-PART-INF:"):
            playlist["part_target"] = float(attributes(line.split(":", 1)[1])["PART-TARGET"])
        elif line.startswith("#EXT-X-SERVER-CONTROL:"):
            playlist["server_control"] = attributes(line.split(":", 1)[1])
        elif line == "#EXT-X-DISCONTINUITY":
            pending_discontinuity = True
        elif line.startswith("#EXT-X-MAP:"):
            current_map = attributes(line.split(":", 1)[1])["URI"]
        elif line.startswith("#EXT-X-PART:"):
            a = attributes(line.split(":", 1)[1])
            pending_parts.append({"duration": float(a["DURATION"]), "uri": a["URI"],
                                  "independent": a.get("INDEPENDENT") == "YES"})
        elif line.startswith("#EXTINF:"):
            pending_duration = float(line.split(":", 1)[1].split(",")[0])
        elif line.startswith("#EXT-X-PRELOAD-HINT:"):
            a = attributes(line.split(":", 1)[1])
            assert a["TYPE"] == "PART", line
            playlist["hint"] = a["URI"]
        elif line == "#EXT-X-ENDLIST":
            playlist["ended"] = True
        elif line and not line.startswith("#"):
            assert pending_duration is not None, f"URI without EXTINF: {line}\n{text}"
            playlist["segments"].append({
                "msn": playlist["media_sequence"] + len(playlist["segments"]), "duration": pending_duration,
                "uri": line, "parts": pending_parts, "discontinuity": pending_discontinuity, "map": current_map})
            pending_parts, pending_discontinuity, pending_duration = [], False, None
    playlist["open_parts"] = pending_parts
    playlist["open_discontinuity"] = pending_discontinuity
    return playlist


def part_ids(playlist):
    """(msn, index) of every part the playlist lists."""
    ids = set()
    for part in [p for s in playlist["segments"] for p in s["parts"]] + playlist["open_parts"]:
        ids.add(part_id(part["uri"]))
    return ids


def part_id(uri):
    match = re.fullmatch(r"part-(\d+)-(\d+)\.m4s", uri)
    assert match, uri
    return int(match.group(1)), int(match.group(2))


def last_msn(playlist):
    return playlist["segments"][-1]["msn"] if playlist["segments"] else -1


# ---------------------------------------------------------------------------------------------
# Live server fixture (one server + publisher per variant, shared by the module)


class LiveRoom:
    def __init__(self, hub, room, variant):
        self.hub, self.room, self.variant = hub, room, variant
        self.id = room["id"]
        self.publisher = None

    def url(self, name):
        return f"{self.hub.base}/hls/{self.id}/{name}"

    @property
    def index_url(self):
        return self.url("index.m3u8")

    @property
    def media_url(self):
        return self.url("media.m3u8")

    def media(self, **params):
        response = requests.get(self.media_url, params=params, timeout=15)
        assert response.status_code == 200, (response.status_code, response.text)
        return parse_media_playlist(response.text)

    def wait_for_segments(self, count, timeout=40):
        """Waits until `count` complete segments are listed; returns that playlist."""
        def ready():
            response = requests.get(self.media_url, timeout=15)
            if response.status_code != 200:
                return None
            playlist = parse_media_playlist(response.text)
            return playlist if len(playlist["segments"]) >= count else None
        return self.hub.wait_for(ready, timeout=timeout, interval=0.25, what=f"{count} segments in {self.media_url}")


def time_first_success(url, accept, timeout=30):
    """Polls `url` until `accept(response)`; returns seconds since the call (or None)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            response = requests.get(url, timeout=15)
            if response.status_code == 200 and accept(response):
                return time.monotonic() - start
        except requests.RequestException:
            pass
        time.sleep(0.02)
    return None


def start_live(hub, variant, fixture=FIXTURE_2S, measure=True):
    """Creates a room, starts ffmpeg publishing `fixture`, and (optionally) records how long it
    takes until index.m3u8 answers 200, media.m3u8 lists a segment (what a plain client needs), and
    with fmp4-ll until a blocking `_HLS_msn=0&_HLS_part=0` request gets the first part."""
    room = LiveRoom(hub, hub.create_room(f"hls {variant}"), variant)
    results = {}

    def probe(name, url, accept):
        results[name] = time_first_success(url, accept)

    threads = [threading.Thread(target=probe, args=("index.m3u8", room.index_url, lambda r: "#EXT-X-STREAM-INF" in r.text)),
               threading.Thread(target=probe, args=("media.m3u8", room.media_url, lambda r: "#EXTINF:" in r.text))]
    if variant == "fmp4-ll":
        threads.append(threading.Thread(target=probe, args=(
            "first part", room.media_url + "?_HLS_msn=0&_HLS_part=0", lambda r: "#EXT-X-PART:" in r.text)))
    room.publisher = publish(hub.rtmp_url(room.room["streamKey"]))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if measure:
        MEASUREMENTS[f"startup[{variant}]"] = {
            "ffmpeg start → index.m3u8 200 (s)": results["index.m3u8"],
            "ffmpeg start → media.m3u8 lists a segment (s)": results["media.m3u8"]}
        if "first part" in results:
            MEASUREMENTS[f"startup[{variant}]"]["ffmpeg start → first part (_HLS_msn=0&_HLS_part=0) (s)"] = results["first part"]
    assert results["index.m3u8"] is not None and results["media.m3u8"] is not None, \
        f"no HLS output within 30 s: {results}\n{hub.output()[-3000:]}"
    return room


def stop_live(room):
    if room.publisher:
        stop(room.publisher)


@pytest.fixture(scope="module")
def live(request):
    """A running server with `LIVEHUB_HLS_VARIANT=request.param` and ffmpeg publishing the 2 s-GOP
    fixture into one room (module scope: shared by the tests that ask for the same variant)."""
    variant = request.param
    with tempfile.TemporaryDirectory(prefix="livehub-hls-e2e-") as directory:
        hub = LiveHubProcess(Path(directory) / "data", env={"LIVEHUB_HLS_VARIANT": variant}).start()
        room = None
        try:
            room = start_live(hub, variant)
            yield room
        finally:
            if room:
                stop_live(room)
            hub.stop()


@pytest.fixture(scope="module", autouse=True)
def write_measurements():
    yield
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "hls-measurements.json").write_text(json.dumps(MEASUREMENTS, indent=2, ensure_ascii=False) + "\n")
    print("\nHLS measurements:", json.dumps(MEASUREMENTS, indent=2, ensure_ascii=False))


def raw_get(base, path, timeout=15):
    """GET with the request target sent byte for byte (requests/urllib3 would normalize `..`)."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def ffprobe_streams(url):
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name,width,height", "-of", "json", url],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["streams"]


def ffmpeg_decode(url, seconds=None, extra_input=(), frames=False):
    """`ffmpeg -v error [-live_start_index …] -i URL [-t N] -f null -`: returns (exit code, stderr),
    plus the number of decoded video frames when `frames` (from `-progress`)."""
    args = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", *extra_input, "-i", url]
    if seconds:
        args += ["-t", str(seconds)]
    if frames:
        args += ["-progress", "pipe:1", "-nostats"]
    args += ["-f", "null", "-"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=90)
    if not frames:
        return result.returncode, result.stderr
    counts = re.findall(r"^frame=(\d+)$", result.stdout, re.M)
    return result.returncode, result.stderr, int(counts[-1]) if counts else 0


# ---------------------------------------------------------------------------------------------
# 1. ffprobe / ffmpeg read the live stream


@pytest.mark.parametrize("live", ["fmp4-ll", "fmp4", "mpegts"], indirect=True)
def test_ffprobe_and_ffmpeg_decode_the_live_stream(live):
    """ffprobe of index.m3u8 finds one H.264 640x360 video and one AAC audio stream, and
    `ffmpeg -v error -i index.m3u8 -t 6 -f null -` decodes 6 s of the live stream with exit 0 and
    nothing on stderr (no decode, demux or continuity errors)."""
    streams = ffprobe_streams(live.index_url)
    video = [s for s in streams if s["codec_type"] == "video"]
    audio = [s for s in streams if s["codec_type"] == "audio"]
    assert [s["codec_name"] for s in video] == ["h264"], streams
    assert (video[0]["width"], video[0]["height"]) == (640, 360), streams
    assert [s["codec_name"] for s in audio] == ["aac"], streams

    code, stderr = ffmpeg_decode(live.index_url, seconds=6)
    assert code == 0, stderr
    assert stderr.strip() == "", f"ffmpeg reported errors decoding {live.variant}:\n{stderr}"

    multivariant = requests.get(live.index_url, timeout=15).text
    stream_inf = attributes(re.search(r"#EXT-X-STREAM-INF:(.*)", multivariant).group(1))
    assert stream_inf["RESOLUTION"] == "640x360", multivariant
    assert re.fullmatch(r"avc1\.[0-9A-Fa-f]{6},mp4a\.40\.2", stream_inf["CODECS"]), multivariant


# ---------------------------------------------------------------------------------------------
# 2. Segment and part durations follow the keyframe grid


def collect_playlists(room, minimum_segments, reloads, interval=0.7):
    """Waits for `minimum_segments` complete segments, then reloads the playlist `reloads` times."""
    playlists = [room.wait_for_segments(minimum_segments)]
    for _ in range(reloads):
        time.sleep(interval)
        playlists.append(room.media())
    return playlists


def check_grid(playlists, *, keyframes_mid_segment, gop):
    """Shared assertions of test 2 on a list of reloads of one live fmp4-ll playlist."""
    targets = {p["target"] for p in playlists}
    assert targets == {2}, f"EXT-X-TARGETDURATION must stay 2 across reloads, saw {targets}"
    segments = {s["msn"]: s for p in playlists for s in p["segments"]}
    # msn 0 is the first GOP (a plain client's first segment, published at the second keyframe);
    # every later one is 2 s of whole GOPs. The loop of `-stream_loop` adds ~17 ms (< one frame) to
    # one GOP per loop.
    if 0 in segments:
        assert abs(segments[0]["duration"] - gop) <= FRAME + 0.001, segments[0]
    full = [s for msn, s in sorted(segments.items()) if msn > 0]
    assert len(full) >= 3, segments
    for segment in full:
        assert abs(segment["duration"] - 2.0) <= FRAME + 0.001, f"segment {segment['msn']} lasts {segment['duration']} s"
    listed = [s for s in segments.values() if s["parts"] and s["msn"] > 0]
    assert listed, "parts must be listed for the last segments"
    for segment in listed:
        parts = segment["parts"]
        # Four 0.5 s parts. Where -stream_loop stretches a GOP (the frame before the loop seam lasts
        # 44-50 ms in dts), the fourth part ends one frame early and that frame becomes a short fifth
        # part: parts never exceed PART-TARGET, and only a segment's last part may be < 85 % of it.
        stretched = segment["duration"] > 2.0 + 0.001
        assert len(parts) == (PARTS_PER_SEGMENT + 1 if stretched else PARTS_PER_SEGMENT), segment
        assert abs(sum(p["duration"] for p in parts) - segment["duration"]) <= 0.001 * len(parts) + 0.001, segment
        offset = 0.0
        for index, part in enumerate(parts):
            assert 0 < part["duration"] <= 0.5 + 0.001, f"a part exceeds PART-TARGET: {segment}"
            if index < PARTS_PER_SEGMENT:
                assert abs(part["duration"] - 0.5) <= FRAME + 0.001, f"part {index} not ≈ 0.5 s: {segment}"
            else:
                assert part["duration"] <= 2 * FRAME, f"only the one-frame remainder may follow 4 parts: {segment}"
            # keyframes: at the segment start, and for a 1 s GOP 1.0 s into the segment
            on_keyframe = abs(offset) < 0.002 or (keyframes_mid_segment and abs(offset - 1.0) < 0.002)
            assert part["independent"] == on_keyframe, \
                f"INDEPENDENT=YES must mark exactly the parts that start on a keyframe (part {index}): {segment}"
            offset += part["duration"]
    for playlist in playlists:
        assert playlist["part_target"] == 0.5
        if playlist["open_parts"]:
            assert playlist["open_parts"][0]["independent"], playlist
        for part in playlist["open_parts"]:
            assert part["duration"] <= 0.5 + 0.001


@pytest.mark.parametrize("live", ["fmp4-ll"], indirect=True)
def test_segments_follow_the_2s_keyframe_grid(live):
    """2 s GOP: segments last 2.0 s (± one frame), the first one too (it is the first GOP),
    EXT-X-TARGETDURATION stays 2 across reloads,
    each segment has four ≈ 0.5 s parts (none above PART-TARGET), and exactly the parts that start a
    segment (the keyframes) carry INDEPENDENT=YES."""
    playlists = collect_playlists(live, minimum_segments=5, reloads=6)
    check_grid(playlists, keyframes_mid_segment=False, gop=2)


def test_segments_are_cut_at_the_first_keyframe_after_the_target_with_a_1s_gop(make_livehub):
    """1 s GOP with LIVEHUB_HLS_SEGMENT_SECONDS=2: the first segment is the first GOP (1.0 s), later
    ones are still 2.0 s (cut on the first keyframe at/after the 2 s target, not on every keyframe);
    the mid-segment keyframe part is independent; TARGETDURATION stays 2."""
    hub = make_livehub(env={"LIVEHUB_HLS_VARIANT": "fmp4-ll", "LIVEHUB_HLS_SEGMENT_SECONDS": "2"}).start()
    room = LiveRoom(hub, hub.create_room("1s gop"), "fmp4-ll")
    room.publisher = publish(hub.rtmp_url(room.room["streamKey"]), fixture=FIXTURE_1S)
    try:
        playlists = collect_playlists(room, minimum_segments=5, reloads=4)
        check_grid(playlists, keyframes_mid_segment=True, gop=1)
    finally:
        stop_live(room)


def first_video_frames(room, segment, count=1):
    """ffprobe of a listed segment (prefixed with its EXT-X-MAP): its first `count` video packets
    in decode order as (pts_time, is_keyframe)."""
    data = b""
    if segment["map"]:
        data += requests.get(room.url(segment["map"]), timeout=15).content
    response = requests.get(room.url(segment["uri"]), timeout=15)
    assert response.status_code == 200, (segment, response.status_code)
    data += response.content
    with tempfile.NamedTemporaryFile(suffix=".ts" if segment["uri"].endswith(".ts") else ".mp4") as file:
        file.write(data)
        file.flush()
        result = subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags",
             "-of", "csv=p=0", file.name], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    frames = []
    for line in result.stdout.splitlines()[:count]:
        pts, flags = line.split(",")[:2]
        frames.append((float(pts), "K" in flags))
    return frames


def check_segments_start_with_keyframes(room, gop):
    """Every complete segment listed over a few reloads starts with a keyframe (ffprobe of the
    served bytes); EXTINF is the first GOP for msn 0 and 2.0 s after it (the fixtures' GOPs divide
    the 2 s target), and rounds to at most EXT-X-TARGETDURATION (RFC 8216 §4.4.3.1)."""
    playlists = collect_playlists(room, minimum_segments=4, reloads=2, interval=1.0)
    segments = {s["msn"]: s for p in playlists for s in p["segments"]}
    assert {p["target"] for p in playlists} == {2}, playlists
    for msn, segment in sorted(segments.items()):
        expected = gop if msn == 0 else 2.0
        assert abs(segment["duration"] - expected) <= FRAME + 0.001, f"{room.variant}: segment {msn} lasts {segment['duration']} s"
        assert round(segment["duration"]) <= 2
        frames = first_video_frames(room, segment)
        assert frames and frames[0][1], f"{room.variant}: segment {segment['uri']} starts with {frames} (no keyframe)"
    return segments


@pytest.mark.parametrize("live", ["fmp4-ll", "fmp4", "mpegts"], indirect=True)
def test_every_segment_starts_with_a_keyframe_with_a_2s_gop(live):
    """2 s GOP, every variant: the first segment is the first GOP (2.0 s) and every served segment's
    first video frame is a keyframe (ffprobe)."""
    check_segments_start_with_keyframes(live, gop=2.0)


@pytest.mark.parametrize("variant", ["fmp4-ll", "mpegts"])
def test_every_segment_starts_with_a_keyframe_with_a_1s_gop(make_livehub, variant):
    """1 s GOP, default 2 s target: segments of 1.0 s (the first GOP), then 2.0 s, each starting with
    a keyframe (before issue 19 LL-HLS began 0.5, 0.5, 2.0: the second segment had no keyframe)."""
    hub = make_livehub(env={"LIVEHUB_HLS_VARIANT": variant}).start()
    room = LiveRoom(hub, hub.create_room("1s gop keyframes"), variant)
    room.publisher = publish(hub.rtmp_url(room.room["streamKey"]), fixture=FIXTURE_1S)
    try:
        check_segments_start_with_keyframes(room, gop=1.0)
    finally:
        stop_live(room)


def test_ll_hls_lists_the_first_parts_before_the_first_segment(make_livehub):
    """fmp4-ll, 2 s GOP: a blocking `_HLS_msn=0&_HLS_part=0` request is answered with the first part
    (INDEPENDENT, no EXTINF yet, TARGETDURATION 2) well before a plain `media.m3u8` request, which is
    held until the first segment (the first GOP, 2.0 s, starting with a keyframe) is complete."""
    hub = make_livehub(env={"LIVEHUB_HLS_VARIANT": "fmp4-ll"}).start()
    room = LiveRoom(hub, hub.create_room("first parts"), "fmp4-ll")
    answers = {}

    def ask(name, query, accept):
        start = time.monotonic()
        while time.monotonic() - start < 30:
            try:
                response = requests.get(room.media_url + query, timeout=15)
                if response.status_code == 200 and accept(response.text):
                    answers[name] = (time.monotonic(), response.text)
                    return
            except requests.RequestException:
                pass
            time.sleep(0.02)

    threads = [threading.Thread(target=ask, args=("part", "?_HLS_msn=0&_HLS_part=0", lambda t: "#EXT-X-PART:" in t)),
               threading.Thread(target=ask, args=("plain", "", lambda t: True))]
    room.publisher = publish(hub.rtmp_url(room.room["streamKey"]))
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert "part" in answers and "plain" in answers, answers.keys()
        part_playlist = parse_media_playlist(answers["part"][1])
        assert part_playlist["target"] == 2
        assert not part_playlist["segments"], answers["part"][1]
        assert part_playlist["open_parts"][0]["uri"] == "part-0-0.m4s" and part_playlist["open_parts"][0]["independent"]
        plain = parse_media_playlist(answers["plain"][1])
        assert plain["segments"], f"a plain request was answered without a complete segment:\n{answers['plain'][1]}"
        assert plain["segments"][0]["msn"] == 0 and abs(plain["segments"][0]["duration"] - 2.0) <= FRAME + 0.001
        assert first_video_frames(room, plain["segments"][0])[0][1], "the first segment must start with a keyframe"
        lead = answers["plain"][0] - answers["part"][0]
        # The first segment needs the second keyframe, 2 s of media after the first; part 0 needs 0.5 s.
        assert lead > 1.0, f"the first part came only {lead:.2f} s before the first segment"
        MEASUREMENTS["first part (blocking) ahead of the first segment (plain), 2 s GOP (s)"] = round(lead, 3)
    finally:
        stop_live(room)


# ---------------------------------------------------------------------------------------------
# 3. Blocking playlist reload and preload-hinted parts


def expected_listing(playlist, msn, index):
    """The part that satisfies `_HLS_msn=msn&_HLS_part=index` in `playlist`: (msn, index) itself, or
    — when the hint named an index past the end of segment msn, which the next keyframe then
    closed — part 0 of msn+1 (RFC 8216bis §6.2.5.2)."""
    ids = part_ids(playlist)
    if (msn, index) in ids:
        return (msn, index)
    closed = next((s for s in playlist["segments"] if s["msn"] == msn), None)
    if closed is not None and index >= len(closed["parts"]) and (msn + 1, 0) in ids:
        return (msn + 1, 0)
    return None


@pytest.mark.parametrize("live", ["fmp4-ll"], indirect=True)
def test_blocking_reload_waits_for_the_hinted_part(live):
    """`media.m3u8?_HLS_msn=M&_HLS_part=P` for the part named by EXT-X-PRELOAD-HINT (not yet listed)
    is held until that part exists: the answer is 200, lists the part, and took > 50 ms (the part
    was still being produced; at least 4 of 5) but well under 3× the target duration. Then a GET of a hinted part
    URI is held until the part is complete and returns its bytes (200, video/mp4, a moof)."""
    session = requests.Session()
    playlist = live.media()
    # The first blocking request synchronises us with the part clock (its wait is not asserted).
    msn, index = part_id(playlist["hint"])
    response = session.get(live.media_url, params={"_HLS_msn": msn, "_HLS_part": index}, timeout=15)
    assert response.status_code == 200, response.text
    waits = []
    for _ in range(5):
        before = parse_media_playlist(response.text)
        msn, index = part_id(before["hint"])
        assert (msn, index) not in part_ids(before), "the hinted part must not be listed yet"
        started = time.monotonic()
        response = session.get(live.media_url, params={"_HLS_msn": msn, "_HLS_part": index}, timeout=15)
        waited = time.monotonic() - started
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == "application/vnd.apple.mpegurl"
        after = parse_media_playlist(response.text)
        assert expected_listing(after, msn, index), f"answer does not list part {msn}.{index}:\n{response.text}"
        assert waited < 1.5, f"blocking reload for part {msn}.{index} took {waited:.3f} s"
        waits.append(round(waited, 3))
    # Each request was held while its part was produced. One may be answered at once: on a loaded
    # machine the previous answer can reach us late, after the hinted part (or, at a keyframe, the
    # next segment's first part, which a part index past a closed segment names) already exists.
    assert sum(1 for wait in waits if wait > 0.05) >= 4, f"blocking reloads were not held: {waits}"
    MEASUREMENTS["blocking reload _HLS_msn/_HLS_part: request → answer (s)"] = waits

    # A request for the hinted part itself. Parts 0 and 1 of a 2 s segment always come; a hint for
    # the index after a segment's last part can be superseded by part 0 of the next segment (the
    # keyframe closes the segment), and is then answered 404 — so use a hint for part 0 or 1.
    part_waits = []
    for _ in range(12):
        playlist = parse_media_playlist(response.text)
        msn, index = part_id(playlist["hint"])
        if index in (0, 1):
            started = time.monotonic()
            part = session.get(live.url(playlist["hint"]), timeout=15)
            waited = time.monotonic() - started
            assert part.status_code == 200, (part.status_code, part.text)
            assert part.headers["Content-Type"] == "video/mp4"
            assert len(part.content) > 100 and part.content[4:8] in (b"moof", b"styp"), part.content[:16]
            assert 0.05 < waited < 1.5, f"hinted part {msn}.{index} was answered after {waited:.3f} s"
            again = session.get(live.url(playlist["hint"]), timeout=15)
            assert again.status_code == 200 and again.content == part.content, "a part's bytes never change"
            assert part_id(playlist["hint"]) in part_ids(live.media())
            part_waits.append(round(waited, 3))
            if len(part_waits) == 2:
                break
        response = session.get(live.media_url, params={"_HLS_msn": msn, "_HLS_part": index}, timeout=15)
        assert response.status_code == 200, response.text
    assert len(part_waits) == 2, "never saw a preload hint for part 0 or 1"
    MEASUREMENTS["hinted part GET: request → bytes (s)"] = part_waits

    # _HLS_msn alone waits for the next complete segment.
    playlist = parse_media_playlist(response.text)
    target_msn = last_msn(playlist) + 1
    started = time.monotonic()
    response = session.get(live.media_url, params={"_HLS_msn": target_msn}, timeout=15)
    waited = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert last_msn(parse_media_playlist(response.text)) >= target_msn
    assert waited < 6.5, waited
    MEASUREMENTS["blocking reload _HLS_msn only (next segment): request → answer (s)"] = round(waited, 3)


def segment_file_bytes(pid):
    """Total size of the files the process holds finished segments in (see HLSMemoryFile): sealed
    memfds, or, for a recorded live (issue 21), the recording's own segment files, which the live
    serves once they are written."""
    total = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
            if target.startswith("/memfd:livehub-segment") or ("/recordings/" in target and "/seg-" in target):
                total += os.stat(fd).st_size
        except OSError:
            pass
    return total


@pytest.mark.parametrize("live", ["fmp4-ll"], indirect=True)
def test_a_finished_segment_is_sent_from_its_memory_file_whole_and_as_its_parts(live):
    """Finished segments are sent with sendfile from files (sealed memfds, or the recording's segment
    files). Over one keep-alive connection:
    a segment's body is exactly its parts' bodies back to back, Content-Length is right for GET and
    HEAD (HEAD sends no body, the next response on the connection still parses), and
    `Connection: close` closes after the whole body. The files are open in the server process.
    The router's answers (a connection's first request) copy the same bytes out of the file."""
    playlist = live.wait_for_segments(4)
    # The last two complete segments list their parts.
    segment = playlist["segments"][-2]
    assert segment["parts"], playlist
    assert segment_file_bytes(live.hub.proc.pid) > 0, "no segment files open in the server"
    connection = http.client.HTTPConnection("127.0.0.1", live.hub.http_port, timeout=15)
    path = f"/hls/{live.id}/"
    connection.request("GET", path + segment["uri"])
    whole = connection.getresponse()
    body = whole.read()
    assert whole.status == 200 and whole.getheader("Content-Type") == "video/mp4", whole.status
    assert int(whole.getheader("Content-Length")) == len(body) > 10_000
    parts = b""
    for part in segment["parts"]:
        connection.request("HEAD", path + part["uri"])
        head = connection.getresponse()
        assert head.status == 200 and head.read() == b""
        connection.request("GET", path + part["uri"])
        answer = connection.getresponse()
        content = answer.read()
        assert answer.status == 200 and int(answer.getheader("Content-Length")) == len(content)
        assert int(head.getheader("Content-Length")) == len(content)
        parts += content
    assert parts == body, f"segment {segment['uri']}: {len(body)} bytes, its parts {len(parts)}"
    connection.close()

    # A connection's first request is answered by the router (it passes the WebSocket-upgrade check
    # before the fast path is installed); the second one by the fast path, which must close the
    # connection right after the whole body.
    raw = socket.create_connection(("127.0.0.1", live.hub.http_port), timeout=10)
    raw.sendall(f"GET {path}{segment['uri']} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    received = b""
    while b"\r\n\r\n" not in received or len(received.split(b"\r\n\r\n", 1)[1]) < len(body):
        chunk = raw.recv(65536)
        assert chunk, "the server closed a keep-alive connection"
        received += chunk
    first, rest = received.split(b"\r\n\r\n", 1)
    assert first.startswith(b"HTTP/1.1 200") and rest == body, first
    raw.sendall(f"GET {path}{segment['uri']} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    received = b""
    while chunk := raw.recv(65536):  # until the server closes (a timeout fails the test)
        received += chunk
    raw.close()
    second_head, second_body = received.split(b"\r\n\r\n", 1)
    assert second_head.startswith(b"HTTP/1.1 200") and b"\r\nConnection: close" in second_head, second_head
    assert second_body == body, f"{len(second_body)} bytes after the second head, expected {len(body)}"


# ---------------------------------------------------------------------------------------------
# 4. Bad requests


@pytest.mark.parametrize("live", ["fmp4-ll"], indirect=True)
def test_bad_requests_are_refused_and_do_not_disturb_viewers(live):
    """Malformed delivery directives → 400; traversal-ish or non-canonical file names and unknown
    rooms → 404 (400 accepted if the router refuses first; never 200, never 5xx); meanwhile a normal
    viewer keeps getting 200s and the server stays healthy."""
    statuses, stop_viewer = [], threading.Event()

    def viewer():
        session = requests.Session()
        while not stop_viewer.is_set():
            response = session.get(live.media_url, timeout=15)
            statuses.append(("media.m3u8", response.status_code))
            if response.status_code == 200:
                playlist = parse_media_playlist(response.text)
                newest = playlist["segments"][-1]["uri"]
                statuses.append((newest, session.get(live.url(newest), timeout=15).status_code))
            time.sleep(0.1)

    thread = threading.Thread(target=viewer)
    thread.start()
    try:
        playlist = live.media()
        last = last_msn(playlist)
        for params in [{"_HLS_part": "1"}, {"_HLS_msn": str(last + 10)}, {"_HLS_msn": str(last + 10), "_HLS_part": "0"},
                       {"_HLS_msn": "abc"}, {"_HLS_msn": "-1"}, {"_HLS_msn": "1.5"}, {"_HLS_msn": str(last), "_HLS_part": "x"}]:
            response = requests.get(live.media_url, params=params, timeout=15)
            assert response.status_code == 400, (params, response.status_code, response.text)

        room = live.id
        segment = playlist["segments"][-1]["msn"]
        not_found = [
            f"/hls/{room}/../{room}/index.m3u8",
            f"/hls/{room}/..%2Findex.m3u8",
            f"/hls/{room}/..%2F..%2F..%2Fetc%2Fpasswd",
            f"/hls/{room}/%2e%2e/%2e%2e/etc/passwd",
            f"/hls/{room}/%2e%2e%2fmedia.m3u8",
            f"/hls/{room}/seg-0{segment}.m4s",
            f"/hls/{room}/seg-01.m4s",
            f"/hls/{room}/seg--1.m4s",
            f"/hls/{room}/seg-+{segment}.m4s",
            f"/hls/{room}/seg-{segment}.ts",  # wrong extension for this variant
            f"/hls/{room}/seg-{segment}.m4s%00",
            f"/hls/{room}/seg-99999999999999999999.m4s",
            f"/hls/{room}/part-{segment}--1.m4s",
            f"/hls/{room}/part-{segment}-0-0.m4s",
            f"/hls/{room}/init-00.mp4",
            f"/hls/{room}/init-7.mp4",
            f"/hls/{room}/index.m3u8/..",
            f"/hls/{room}/INDEX.M3U8",
            f"/hls/{room}/",
            f"/hls/{room}%2F..%2Fother/index.m3u8",
            "/hls/../../etc/passwd",
            "/hls/no-such-room/index.m3u8",
            "/hls/no-such-room/media.m3u8",
            "/hls/bad.room/index.m3u8",
            f"/hls/{'a' * 129}/index.m3u8",
        ]
        for path in not_found:
            status, body = raw_get(live.hub.base, path)
            assert status in (400, 404), f"{path} → {status} {body[:200]!r}"

        assert requests.get(f"{live.hub.base}/healthz", timeout=5).status_code == 200
        assert requests.get(live.index_url, timeout=15).status_code == 200
        time.sleep(1)
    finally:
        stop_viewer.set()
        thread.join()
    assert statuses, "the viewer made no requests"
    assert all(code == 200 for _, code in statuses), [s for s in statuses if s[1] != 200]
    assert live.hub.proc.poll() is None, "the server must still run"


# ---------------------------------------------------------------------------------------------
# 5. Reconnect continuity and the end of the room


@pytest.mark.parametrize("variant", ["fmp4-ll", "mpegts"])
def test_reconnect_continues_the_sequence_with_a_discontinuity_and_end_keeps_segments(make_livehub, variant):
    """The publisher leaves and comes back within LIVEHUB_RECONNECT_GRACE: media sequence numbers keep
    counting (no reset), #EXT-X-DISCONTINUITY marks the new session, and ffmpeg decodes across it.
    The owner then ends the room: #EXT-X-ENDLIST appears, every listed segment stays downloadable,
    and the whole final playlist (both sessions) decodes without errors."""
    hub = make_livehub(env={"LIVEHUB_HLS_VARIANT": variant, "LIVEHUB_RECONNECT_GRACE": "10"}).start()
    room = LiveRoom(hub, hub.create_room("reconnect"), variant)
    room.publisher = publish(hub.rtmp_url(room.room["streamKey"]))
    try:
        before = room.wait_for_segments(2)
        stop(room.publisher)
        hub.wait_for(lambda: hub.room(room.id)["reconnecting"], timeout=15, what="reconnecting")
        # the packager closes the open segment when the publisher goes; wait until it is listed
        after_stop = hub.wait_for(lambda: not (p := room.media())["open_parts"] and p, timeout=10,
                                  what="the open segment closed after the publisher left")
        last_before = last_msn(after_stop)
        assert last_before >= last_msn(before)

        room.publisher = publish(hub.rtmp_url(room.room["streamKey"]))
        hub.wait_for(lambda: hub.room(room.id)["status"] == "LIVE" and not hub.room(room.id)["reconnecting"],
                     timeout=15, what="LIVE again")

        def continued():
            playlist = room.media()
            new = [s for s in playlist["segments"] if s["msn"] > last_before]
            return playlist if len(new) >= 2 else None
        playlist = hub.wait_for(continued, timeout=30, interval=0.25, what="two segments after the reconnect")
        assert playlist["media_sequence"] >= before["media_sequence"], "the media sequence must not reset"
        msns = [s["msn"] for s in playlist["segments"]]
        assert msns == list(range(msns[0], msns[0] + len(msns))), msns
        first_new = next(s for s in playlist["segments"] if s["msn"] > last_before)
        assert first_new["msn"] == last_before + 1, "the new session continues right after the last segment"
        assert first_new["discontinuity"], f"#EXT-X-DISCONTINUITY must precede segment {first_new['msn']}:\n{playlist}"
        assert sum(s["discontinuity"] for s in playlist["segments"]) == 1
        assert hub.room(room.id)["status"] == "LIVE"

        # Decode the live playlist from its first segment, across the discontinuity, into the new session.
        span = sum(s["duration"] for s in playlist["segments"])
        old_session = sum(s["duration"] for s in playlist["segments"] if s["msn"] <= last_before)
        code, stderr, decoded = ffmpeg_decode(room.media_url, seconds=round(span + 1, 1),
                                              extra_input=("-live_start_index", "0"), frames=True)
        assert code == 0 and stderr.strip() == "", f"decoding across the discontinuity failed ({code}):\n{stderr}"
        assert decoded >= 30 * (old_session + 1), \
            f"ffmpeg decoded {decoded} frames: it did not get past the discontinuity ({old_session} s before it)"

        response = requests.put(f"{hub.api}/rooms/{room.id}/end", headers=hub.headers(), timeout=15)
        assert response.status_code == 200, response.text
        ended = hub.wait_for(lambda: (p := room.media())["ended"] and p, timeout=15, what="#EXT-X-ENDLIST")
        assert ended["hint"] is None and not ended["open_parts"], "no preload hint or open segment after the end"
        stop(room.publisher)
        assert any(s["discontinuity"] for s in ended["segments"]), "the final window still spans both sessions"
        for segment in ended["segments"]:
            data = requests.get(room.url(segment["uri"]), timeout=15)
            assert data.status_code == 200 and len(data.content) > 0, segment
        # blocking directives are ignored once ended (answered at once)
        started = time.monotonic()
        response = requests.get(room.media_url, params={"_HLS_msn": last_msn(ended) + 1}, timeout=15)
        assert response.status_code == 200 and time.monotonic() - started < 1.0
        code, stderr, decoded = ffmpeg_decode(room.media_url, frames=True)
        assert code == 0 and stderr.strip() == "", f"decoding the ended playlist failed ({code}):\n{stderr}"
        total = sum(s["duration"] for s in ended["segments"])
        assert abs(decoded - 30 * total) <= 3 * len(ended["segments"]), f"{decoded} frames for {total} s of segments"
        assert hub.room(room.id)["status"] == "ENDED"
    finally:
        stop_live(room)


# ---------------------------------------------------------------------------------------------
# 6. A real browser plays the stream


class _Pages(http.server.BaseHTTPRequestHandler):
    pages = {}

    def do_GET(self):  # noqa: N802
        body = self.pages.get(self.path.split("?")[0])
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def page_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Pages.pages
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("chromium and chromium-driver must be installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ["--headless=new", "--no-sandbox", "--autoplay-policy=no-user-gesture-required", "--mute-audio",
                     "--disable-dev-shm-usage", "--window-size=800,600"]:
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


NATIVE_PAGE = """<!doctype html><meta charset="utf-8"><title>native HLS</title>
<body style="margin:0;background:#000">
<video id="v" muted autoplay playsinline crossorigin="anonymous" width="640" height="360" src="{src}"></video>
</body>"""

VIDEO_STATE = """const v = document.getElementById('v');
return {currentTime: v.currentTime, readyState: v.readyState, networkState: v.networkState, paused: v.paused,
        error: v.error && {code: v.error.code, message: v.error.message},
        width: v.videoWidth, height: v.videoHeight, log: window.loaderLog || null};"""


def watch(driver, timeout=45):
    """Polls the <video> until currentTime > 2.5 s; fails as soon as video.error is set."""
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = driver.execute_script(VIDEO_STATE)
        assert state["error"] is None, f"video.error: {state}"
        if state["currentTime"] > 2.5:
            return state
        time.sleep(0.25)
    raise AssertionError(f"playback did not advance past 2.5 s in {timeout} s: {state}")


# Median colour of each of the six vertical bars of testsrc2 in the current frame (a column of samples
# per bar, so the moving diagonal stripe and checkers do not matter). Needs an untainted canvas: the
# native player loads with crossorigin=anonymous (the server sends Access-Control-Allow-Origin: *).
BAR_COLOURS = """const v = document.getElementById('v');
const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;
const g = c.getContext('2d'); g.drawImage(v, 0, 0);
const bars = [];
for (let i = 0; i < 6; i++) {
  const x = Math.round((i + 0.5) * c.width / 6), column = [];
  for (let y = 40; y < c.height - 10; y += 10) column.push(Array.from(g.getImageData(x, y, 1, 1).data.slice(0, 3)));
  bars.push([0, 1, 2].map((k) => column.map((p) => p[k]).sort((a, b) => a - b)[column.length >> 1]));
}
return bars;"""
TESTSRC2_BARS = ["red", "green", "yellow", "blue", "magenta", "cyan"]


def colour_name(rgb):
    high = tuple(channel > 150 for channel in rgb)
    low = tuple(channel < 100 for channel in rgb)
    names = {(1, 0, 0): "red", (0, 1, 0): "green", (1, 1, 0): "yellow", (0, 0, 1): "blue", (1, 0, 1): "magenta", (0, 1, 1): "cyan"}
    for pattern, name in names.items():
        if all((h if p else l) for p, h, l in zip(pattern, high, low)):
            return name
    return f"rgb{tuple(rgb)}"


def assert_shows_testsrc2(driver, frames=6):
    """testsrc2's moving grey box can sit over one bar's sample column in a given frame, so a few
    frames 300 ms apart are looked at; one that shows all six bars is enough."""
    seen = []
    for _ in range(frames):
        bars = [colour_name(rgb) for rgb in driver.execute_script(BAR_COLOURS)]
        if bars == TESTSRC2_BARS:
            return
        seen.append(bars)
        time.sleep(0.3)
    raise AssertionError(f"the decoded frames do not show testsrc2's colour bars: {seen}")


def screenshot(driver, name):
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    driver.find_element("id", "v").screenshot(str(path))
    return path


@pytest.mark.parametrize("live", ["mpegts", "fmp4-ll"], indirect=True)
def test_chromium_plays_the_stream_natively(live, browser, page_server):
    """Headless Chromium with `<video src=…/index.m3u8>`: it claims native HLS support
    (canPlayType), playback advances past 2.5 s, video.error stays null, the decoded frame is
    640x360; a screenshot is saved to e2e/artifacts/."""
    base, pages = page_server
    pages[f"/native-{live.variant}.html"] = NATIVE_PAGE.format(src=live.index_url).encode()
    browser.get(f"{base}/native-{live.variant}.html")
    support = browser.execute_script("return document.createElement('video').canPlayType('application/vnd.apple.mpegurl')")
    MEASUREMENTS["chromium canPlayType(application/vnd.apple.mpegurl)"] = support
    MEASUREMENTS["chromium version"] = browser.capabilities.get("browserVersion")
    assert support in ("maybe", "probably"), f"this Chromium does not claim native HLS: canPlayType → {support!r}"
    started = time.monotonic()
    state = watch(browser)
    MEASUREMENTS[f"chromium native [{live.variant}]: page load → currentTime > 2.5 s (s)"] = round(time.monotonic() - started, 2)
    assert (state["width"], state["height"]) == (640, 360), state
    assert_shows_testsrc2(browser)
    screenshot(browser, f"chromium-native-{live.variant}.png")


# Fallback player, independent of native HLS support: Media Source Extensions fed by a tiny fMP4
# loader (init section + complete segments from media.m3u8, CODECS from index.m3u8).
MSE_PAGE = """<!doctype html><meta charset="utf-8"><title>MSE fMP4 loader</title>
<body style="margin:0;background:#000">
<video id="v" muted autoplay playsinline width="640" height="360"></video>
<script>
const index = "{index}";
window.loaderLog = [];
const log = (m) => window.loaderLog.push(String(m));
(async () => {
  try {
    const multivariant = await (await fetch(index)).text();
    const codecs = /CODECS="([^"]+)"/.exec(multivariant)[1];
    const mediaUrl = new URL(/^[^#\\s].*$/m.exec(multivariant)[0], index).href;
    const mime = `video/mp4; codecs="${codecs}"`;
    log('mime ' + mime + ' supported=' + MediaSource.isTypeSupported(mime));
    const v = document.getElementById('v');
    const ms = new MediaSource();
    v.src = URL.createObjectURL(ms);
    await new Promise((r) => ms.addEventListener('sourceopen', r, {once: true}));
    const sb = ms.addSourceBuffer(mime);
    const append = (data) => new Promise((resolve, reject) => {
      sb.addEventListener('updateend', resolve, {once: true});
      sb.addEventListener('error', reject, {once: true});
      sb.appendBuffer(data);
    });
    const fetchBytes = async (url) => { const r = await fetch(url); if (!r.ok) throw new Error(url + ' ' + r.status); return r.arrayBuffer(); };
    let next = null, initUrl = null;
    for (;;) {
      const text = await (await fetch(mediaUrl)).text();
      const map = /#EXT-X-MAP:URI="([^"]+)"/.exec(text)[1];
      const sequence = parseInt(/#EXT-X-MEDIA-SEQUENCE:(\\d+)/.exec(text)[1], 10);
      const uris = text.split('\\n').filter((l) => l && !l.startsWith('#'));
      if (map !== initUrl) { initUrl = map; await append(await fetchBytes(new URL(map, mediaUrl).href)); log('init ' + map); }
      if (next === null) next = sequence + Math.max(0, uris.length - 3);
      for (let i = next - sequence; i < uris.length; i++) {
        await append(await fetchBytes(new URL(uris[i], mediaUrl).href));
        log('segment ' + uris[i]);
        next = sequence + i + 1;
      }
      if (v.paused && sb.buffered.length) { v.currentTime = sb.buffered.start(0); v.play().catch((e) => log('play ' + e)); }
      await new Promise((r) => setTimeout(r, 1000));
    }
  } catch (e) { log('error ' + e); window.loaderError = String(e); }
})();
</script>
</body>"""


@pytest.mark.parametrize("live", ["fmp4-ll"], indirect=True)
def test_chromium_plays_the_fmp4_segments_through_media_source_extensions(live, browser, page_server):
    """FALLBACK PLAYER (not native HLS): an inline JS loader appends the init section and complete
    fMP4 segments to a SourceBuffer created with the CODECS of index.m3u8. This proves that
    Chromium's MSE accepts the CODECS string and decodes the fMP4/CMAF bytes; playback advances past
    2.5 s with no error (also exercises CORS: the page is on another origin)."""
    base, pages = page_server
    pages["/mse.html"] = MSE_PAGE.replace("{index}", live.index_url).encode()
    browser.get(f"{base}/mse.html")
    try:
        state = watch(browser)
    finally:
        error = browser.execute_script("return window.loaderError || null")
    assert error is None, (error, browser.execute_script("return window.loaderLog"))
    assert (state["width"], state["height"]) == (640, 360), state
    assert_shows_testsrc2(browser)
    screenshot(browser, "chromium-mse-fmp4-ll.png")


# ---------------------------------------------------------------------------------------------
# 7. Thumbnail


@pytest.mark.parametrize("live", ["fmp4-ll"], indirect=True)
def test_thumbnail_is_a_480px_jpeg_and_the_room_points_to_it(live):
    """thumbnail.jpg is a JPEG (FFD8) that ffprobe decodes as 480 px wide (270 high for 16:9), and the
    room's thumbnailUrl (the owner set none) points to it."""
    response = live.hub.wait_for(lambda: (r := requests.get(live.url("thumbnail.jpg"), timeout=15)).status_code == 200 and r,
                                 timeout=20, what="thumbnail.jpg")
    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.content[:2] == b"\xff\xd8", response.content[:8]
    with tempfile.NamedTemporaryFile(suffix=".jpg") as file:
        file.write(response.content)
        file.flush()
        streams = ffprobe_streams(file.name)
    assert [(s["codec_name"], s["width"], s["height"]) for s in streams] == [("mjpeg", 480, 270)], streams

    room = live.hub.room(live.id)
    assert live.room.get("thumbnailUrl") in (None, ""), "this room was created without a thumbnailUrl"
    assert room["thumbnailUrl"] and room["thumbnailUrl"].endswith(f"/hls/{live.id}/thumbnail.jpg"), room
    linked = requests.get(room["thumbnailUrl"], timeout=15)
    assert linked.status_code == 200 and linked.content[:2] == b"\xff\xd8"
