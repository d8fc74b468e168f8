"""HLS from any node (issue 20): two real `livehub` processes share one real PostgreSQL; ffmpeg
publishes to node A (the room's origin) and every HLS request goes to node B, which fetches from A
(HLSOriginProxy) and shares one origin fetch among concurrent viewers.

Its own two nodes on a new database of the test PostgreSQL (e2e/cluster.py).
"""
import concurrent.futures
import json
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests

from cluster import PostgresServer, postgres_available
from conftest import LiveHubProcess
from media import publish, stop
from test_hls_e2e import parse_media_playlist, part_id

pytestmark = pytest.mark.skipif(not postgres_available(), reason="PostgreSQL's server binaries are not installed (apt-get install postgresql)")

@pytest.fixture(scope="module")
def cluster():
    """PostgreSQL, node A and node B (cluster mode), ffmpeg publishing into a room on A."""
    with tempfile.TemporaryDirectory(prefix="livehub-cluster-hls-") as directory:
        postgres = PostgresServer()
        url = postgres.create_database()
        nodes, publisher = [], None
        try:
            for name in ["a", "b"]:
                node = LiveHubProcess(Path(directory) / f"data-{name}")
                node.env.update({
                    "LIVEHUB_DATABASE_URL": url, "LIVEHUB_NODE_ID": f"node-{name}",
                    "LIVEHUB_NODE_ADVERTISE_URL": node.base, "LIVEHUB_HLS_VARIANT": "fmp4-ll"})
                nodes.append(node.start())
            a, b = nodes
            room = a.create_room("cluster hls")
            publisher = publish(a.rtmp_url(room["streamKey"]))
            yield {"a": a, "b": b, "room": room["id"], "url": url}
        finally:
            if publisher:
                stop(publisher)
            for node in nodes:
                node.stop()
            postgres.stop()


def hls(node, room, name, **kwargs):
    return requests.get(f"{node.base}/hls/{room}/{name}", timeout=kwargs.pop("timeout", 20), **kwargs)


def wait_for_playlist(cluster, segments=2, timeout=40):
    """B's media playlist once it lists `segments` complete segments."""
    b, room = cluster["b"], cluster["room"]
    deadline, last = time.time() + timeout, None
    while time.time() < deadline:
        last = hls(b, room, "media.m3u8")
        if last.status_code == 200:
            playlist = parse_media_playlist(last.text)
            if len(playlist["segments"]) >= segments:
                return last, playlist
        time.sleep(0.25)
    raise AssertionError(f"B never served {segments} segments: {last and (last.status_code, last.text)}\n"
                         f"--- A ---\n{cluster['a'].output()[-2000:]}\n--- B ---\n{b.output()[-2000:]}")


def metric(node, name):
    text = requests.get(f"{node.base}/metrics", timeout=10).text
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_playlists_parts_and_segments_come_through_another_node(cluster):
    """B serves the room A packages: playlists, init section, segments and parts with A's bytes
    and headers, marked X-LiveHub-Origin: node-a; ffprobe decodes the stream from B's URL."""
    a, b, room = cluster["a"], cluster["b"], cluster["room"]
    response, playlist = wait_for_playlist(cluster)
    assert response.headers["X-LiveHub-Origin"] == "node-a"
    assert response.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    index = hls(b, room, "index.m3u8")
    assert index.status_code == 200 and "#EXT-X-STREAM-INF" in index.text and index.headers["X-LiveHub-Origin"] == "node-a"
    # A answers its own room itself (no proxy header).
    assert "X-LiveHub-Origin" not in hls(a, room, "media.m3u8").headers

    segment = playlist["segments"][0]
    for name in [segment["map"], segment["uri"], segment["parts"][0]["uri"]]:
        through_b, from_a = hls(b, room, name), hls(a, room, name)
        assert through_b.status_code == 200 and from_a.status_code == 200, (name, through_b.status_code, through_b.text[:200])
        assert through_b.content == from_a.content, name
        assert through_b.headers["Content-Type"] == "video/mp4"
        assert through_b.headers["Cache-Control"] == "public, max-age=3600, immutable"
        assert through_b.headers["X-LiveHub-Origin"] == "node-a"
        # Immutable: the second request is answered from B's cache.
        assert hls(b, room, name).headers["X-LiveHub-Cache"] == "HIT"

    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name,width,height", "-of", "json",
         f"{b.base}/hls/{room}/index.m3u8"], capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    streams = {s["codec_type"]: s for s in json.loads(probe.stdout)["streams"]}
    assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac", streams


def test_blocking_reload_through_another_node(cluster):
    """`_HLS_msn`/`_HLS_part` for the next part, sent to B, is held by A until that part exists and
    comes back through B listing it (RFC 8216bis §6.2.5.2)."""
    b, room = cluster["b"], cluster["room"]
    _, playlist = wait_for_playlist(cluster)
    msn, index = part_id(playlist["hint"])
    started = time.monotonic()
    response = hls(b, room, "media.m3u8", params={"_HLS_msn": msn, "_HLS_part": index})
    waited = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.headers["X-LiveHub-Origin"] == "node-a"
    assert f"part-{msn}-{index}.m4s" in response.text
    reloaded = parse_media_playlist(response.text)
    assert reloaded["hint"] != playlist["hint"]
    assert waited < 5, waited
    # Malformed directives reach A, which refuses them; B forwards its 400.
    assert hls(b, room, "media.m3u8", params={"_HLS_part": "1"}).status_code == 400


def test_fifty_viewers_of_one_part_on_another_node_cost_the_origin_one_fetch(cluster):
    """50 concurrent requests to B for the preload-hinted (not yet complete) part: all get the same
    bytes, and B fetched it from A once (its livehub_hls_proxy_origin_fetches_total{kind="media"})."""
    a, b, room = cluster["a"], cluster["b"], cluster["room"]
    _, playlist = wait_for_playlist(cluster)
    name = playlist["hint"]  # not complete yet, and never asked of B before
    fetches = 'livehub_hls_proxy_origin_fetches_total{kind="media"}'
    before = metric(b, fetches)
    barrier = threading.Barrier(50)

    def get(_):
        session = requests.Session()
        barrier.wait()
        return session.get(f"{b.base}/hls/{room}/{name}", timeout=30)

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(get, range(50)))
    statuses = [r.status_code for r in responses]
    assert statuses == [200] * 50, (statuses, responses[0].text[:200])
    assert len({r.content for r in responses}) == 1
    assert responses[0].content == hls(a, room, name).content
    assert metric(b, fetches) - before == 1
    sources = sorted(r.headers["X-LiveHub-Cache"] for r in responses)
    assert sources.count("MISS") == 1 and set(sources) <= {"MISS", "SHARED", "HIT"}, sources


def test_no_proxy_loops_and_unknown_rooms(cluster):
    """A request already proxied is answered from B's own memory (404: no loop through a stale
    directory); a room nobody packages is 404 on B as on a single node."""
    b, room = cluster["b"], cluster["room"]
    wait_for_playlist(cluster, segments=1)
    looped = hls(b, room, "media.m3u8", headers={"X-LiveHub-Proxied": "1"})
    assert looped.status_code == 404 and "X-LiveHub-Origin" not in looped.headers
    unknown = hls(b, "no-such-room", "media.m3u8")
    assert unknown.status_code == 404 and "X-LiveHub-Origin" not in unknown.headers
    assert hls(b, room, "../secret").status_code == 404


def test_hostile_hls_numbers_through_another_node_are_refused_and_the_room_plays_on(cluster):
    """The hostile HLS requests of test_hostile_e2e, sent to B for a room A packages: each gets
    the origin's refusal (never a 5xx from the proxy), none is kept in B's cache, and the room still
    plays through B afterwards."""
    b, room = cluster["b"], cluster["room"]
    wait_for_playlist(cluster, segments=1)
    cases = {
        "media.m3u8?_HLS_msn=99999999999999999999999": 400,
        "media.m3u8?_HLS_msn=-1": 400,
        "media.m3u8?_HLS_part=3": 400,
        "media.m3u8?_HLS_msn=1&_HLS_part=9223372036854775808": 400,
        "media.m3u8?_HLS_msn=999999999": 400,
        "media.m3u8?_HLS_msn=" + "9" * 5000: 400,  # cut to 64 characters on the way: still refused
        "seg-99999999999999999999.m4s": 404,
        "part-1--1.m4s": 404,
        "init-%2e%2e.mp4": 404,
    }
    for path, status in cases.items():
        for _ in range(2):  # the second answer is not a kept copy of a refusal
            got = requests.get(f"{b.base}/hls/{room}/{path}", timeout=15)
            assert got.status_code == status, (path[:60], got.status_code, got.text[:200])
            assert got.headers.get("X-LiveHub-Cache") != "HIT", path[:60]
    answer, playlist = wait_for_playlist(cluster, segments=1)
    assert answer.headers.get("X-LiveHub-Origin") == "node-a" and playlist["segments"]


def test_measure_proxied_latency(cluster):
    """Records (never asserts tightly) what a request costs through B against A directly: a kept
    segment, and a blocking reload for the next part."""
    a, b, room = cluster["a"], cluster["b"], cluster["room"]
    _, playlist = wait_for_playlist(cluster)
    name = playlist["segments"][-1]["uri"]
    figures = {}
    for label, node in [("from A (origin)", a), ("through B (kept)", b)]:
        session = requests.Session()
        assert session.get(f"{node.base}/hls/{room}/{name}", timeout=20).status_code == 200
        started = time.monotonic()
        for _ in range(100):
            assert session.get(f"{node.base}/hls/{room}/{name}", timeout=20).status_code == 200
        figures[f"segment {label}, mean ms"] = round((time.monotonic() - started) * 10, 2)
    print("\ncluster HLS figures:", json.dumps(figures))
