"""Issue 21 in real headless Chromium (Debian's, which has no native HLS, so LiveHub's own MSE player
plays every playlist here):

1. the MSE player alone on an ffmpeg-made fMP4 VOD playlist, served by a plain http.server: it
   plays, a seek fetches the segment holding the target (not the ones before it), the video's time
   is the playlist's time, seeking backwards plays again;
2. the whole thing on the real `livehub`: a room goes live with ffmpeg for ~20 s; chats are sent at
   known moments, product A is featured, later product B, an order comes in; the watch page offers
   "Rewind" and plays the DVR playlist, then goes back to live; the room ends; the watch page links
   to the replay; the replay page seeked to t shows exactly the chat lines whose timeline `t` ≤ t
   (as the timeline API answers them) and the product featured at t; seeking backwards removes
   lines again.
"""
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from browser_clients import serve_pages
from conftest import REPO, LiveHubProcess
from media import FIXTURE_2S, ensure_fixtures, publish, stop
from stomp_client import StompWS
from test_web_e2e import CHROMIUM, CHROMEDRIVER, console_errors, js, make_driver, save_screenshot, visible, wait_until

pytestmark = pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()), reason="chromium / chromedriver not installed")

WEB = REPO / "Sources" / "Server" / "Web"


def run_async(driver, script, *args):
    """Runs `script` (an async function body) in the page and returns what it resolves to."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        f"(async (...args) => {{ {script} }})(...Array.from(arguments).slice(0, -1)).then(done, (e) => done({{error: String(e && e.stack || e)}}));",
        *args)


# --- 1. the MSE player on a VOD playlist -------------------------------------------------------

PLAYER_PAGE = """<!doctype html><meta charset="utf-8"><title>vod</title>
<video id="video" muted playsinline style="width:320px"></video>
<script type="module">
import { MsePlayer, parseMediaPlaylist } from './mse-player.js';
window.parseMediaPlaylist = parseMediaPlaylist;
const video = document.getElementById('video');
window.player = new MsePlayer(video, new URLSearchParams(location.search).get('src') || 'vod/vod.m3u8', { aheadSeconds: 8, onState: (s) => { window.playerState = s; } });
window.player.start();
</script>
"""


@pytest.fixture(scope="module")
def vod_site():
    """A 24 s fMP4 VOD (2 s segments) made by ffmpeg, with a DATERANGE, served with the player."""
    ensure_fixtures()
    with tempfile.TemporaryDirectory(prefix="livehub-vod-") as directory:
        vod = Path(directory) / "vod"
        vod.mkdir()
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-stream_loop", "-1", "-i", str(FIXTURE_2S), "-t", "24",
                        "-c", "copy", "-f", "hls", "-hls_time", "2", "-hls_segment_type", "fmp4", "-hls_playlist_type", "vod",
                        "-hls_flags", "program_date_time", "-hls_segment_filename", str(vod / "seg-%d.m4s"), str(vod / "vod.m3u8")],
                       check=True, timeout=60)
        text = (vod / "vod.m3u8").read_text()
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in text and "#EXT-X-MAP" in text
        lines = text.splitlines()
        first_pdt = next(line for line in lines if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"))
        start_date = first_pdt.split(":", 1)[1]
        lines.insert(lines.index(first_pdt), f'#EXT-X-DATERANGE:ID="f4",CLASS="com.livehub.product",START-DATE="{start_date}",X-PRODUCT-ID="sku-1",X-PRODUCT-NAME="Cashmere Scarf"')
        (vod / "vod.m3u8").write_text("\n".join(lines) + "\n")
        # A second recording joined after it with a DISCONTINUITY and its own init section (a
        # reconnect): its timestamps start again at 0, the player must place it after the first.
        second = vod / "b"
        second.mkdir()
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-stream_loop", "-1", "-i", str(FIXTURE_2S), "-t", "10",
                        "-c", "copy", "-f", "hls", "-hls_time", "2", "-hls_segment_type", "fmp4", "-hls_playlist_type", "vod",
                        "-hls_segment_filename", str(second / "seg-%d.m4s"), str(second / "part.m3u8")], check=True, timeout=60)
        joined = [line for line in lines if line != "#EXT-X-ENDLIST"] + ["#EXT-X-DISCONTINUITY"]
        for line in (second / "part.m3u8").read_text().splitlines():
            if line.startswith("#EXT-X-MAP:"):
                joined.append(line.replace('URI="', 'URI="b/'))
            elif line.startswith("#EXTINF:") or line == "#EXT-X-ENDLIST":
                joined.append(line)
            elif line and not line.startswith("#"):
                joined.append(f"b/{line}")
        (vod / "joined.m3u8").write_text("\n".join(joined) + "\n")
        base, server = serve_pages(directory, {"mse-player.js": WEB / "mse-player.js", "player.html": PLAYER_PAGE})
        try:
            yield base, vod
        finally:
            server.shutdown()


@pytest.fixture(scope="module")
def browser():
    driver = make_driver()
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def segment_requests(driver):
    return js(driver, "return performance.getEntriesByType('resource').map(e => e.name).filter(n => n.endsWith('.m4s')).map(n => n.split('/').pop())")


def test_the_mse_player_plays_and_seeks_a_vod_playlist(vod_site, browser):
    base, vod = vod_site
    driver = browser
    driver.get(f"{base}/player.html")
    parsed = wait_until(lambda: js(driver, "return window.player && window.player.playlist ? (p => ({type: p.playlistType, duration: p.duration, endList: p.endList,"
                                           " starts: p.segments.map(s => s.start), pdt: p.segments[0].pdt, ranges: p.dateRanges}))(window.player.playlist) : null"),
                        what="the parsed VOD playlist", driver=driver)
    assert parsed["type"] == "VOD" and parsed["endList"]
    assert 23 <= parsed["duration"] <= 25, parsed
    assert parsed["starts"][0] == 0 and all(b > a for a, b in zip(parsed["starts"], parsed["starts"][1:]))
    assert parsed["pdt"] > 1_600_000_000_000
    assert parsed["ranges"] == [{"ID": "f4", "CLASS": "com.livehub.product", "START-DATE": parsed["ranges"][0]["START-DATE"],
                                 "X-PRODUCT-ID": "sku-1", "X-PRODUCT-NAME": "Cashmere Scarf"}]
    wait_until(lambda: js(driver, "const v = document.getElementById('video'); return v.currentTime > 1 && !v.paused"), timeout=30, what="the VOD playing", driver=driver)
    assert js(driver, "return document.getElementById('video').duration") == pytest.approx(parsed["duration"], abs=0.3)
    # The buffer stays bounded: about `aheadSeconds` (8 s) ahead of the playhead, not the whole VOD.
    time.sleep(2)
    ahead = js(driver, "const v = document.getElementById('video'); return v.buffered.end(v.buffered.length - 1) - v.currentTime")
    assert ahead < 8 + 2 * 2 + 0.5, f"{ahead} s buffered ahead"

    # Seek far ahead: the segment holding 17.3 s is fetched, the ones between are not.
    starts = parsed["starts"]
    target = 17.3
    holding = max(i for i, s in enumerate(starts) if s <= target)
    before = set(segment_requests(driver))
    js(driver, "window.player.seek(arguments[0])", target)
    wait_until(lambda: js(driver, "const v = document.getElementById('video'); return !v.seeking && v.currentTime > arguments[0] + 0.5 && !v.paused", target),
               timeout=20, what="playing after the seek", driver=driver)
    fetched = [name for name in segment_requests(driver) if name not in before]
    assert fetched and fetched[0] == f"seg-{holding}.m4s", fetched
    assert f"seg-{holding - 1}.m4s" not in fetched and f"seg-{holding - 2}.m4s" not in fetched
    buffered_start = js(driver, "return document.getElementById('video').buffered.start(0)")
    assert buffered_start == pytest.approx(starts[holding], abs=0.15), "the segment lands at its playlist time"

    # Backwards: plays again from there; the time keeps the playlist's.
    js(driver, "window.player.seek(3.2)")
    wait_until(lambda: js(driver, "const v = document.getElementById('video'); return !v.seeking && v.currentTime > 3.7 && v.currentTime < 9 && !v.paused"),
               timeout=20, what="playing after seeking back", driver=driver)
    # To the end: the player ends the stream.
    js(driver, "window.player.seek(document.getElementById('video').duration - 1)")
    wait_until(lambda: js(driver, "return document.getElementById('video').ended"), timeout=20, what="the VOD played to its end", driver=driver)
    assert js(driver, "return window.playerState") == "complete"
    assert not [e for e in console_errors(driver) if "favicon" not in e]


def test_the_mse_player_crosses_a_discontinuity_and_seeks_into_the_second_part(vod_site, browser):
    base, vod = vod_site
    driver = browser
    driver.get(f"{base}/player.html?src=vod/joined.m3u8")
    parsed = wait_until(lambda: js(driver, "return window.player && window.player.playlist ? (p => ({duration: p.duration,"
                                           " segments: p.segments.map(s => [s.start, s.discontinuity, s.map.split('/').slice(-2).join('/')])}))(window.player.playlist) : null"),
                        what="the joined playlist", driver=driver)
    boundary_index = next(i for i, s in enumerate(parsed["segments"]) if s[1])
    boundary = parsed["segments"][boundary_index][0]
    assert parsed["segments"][boundary_index][2] == "b/init.mp4" and 23 <= boundary <= 25 and 33 <= parsed["duration"] <= 35, parsed
    wait_until(lambda: js(driver, "const v = document.getElementById('video'); return v.currentTime > 0.5 && !v.paused"), timeout=30, what="playing", driver=driver)
    # Play across the boundary: the second part lands after the first, playback goes on.
    js(driver, "window.player.seek(arguments[0])", boundary - 1.5)
    wait_until(lambda: js(driver, "const v = document.getElementById('video'); return !v.seeking && !v.paused && v.currentTime > arguments[0] + 1.5", boundary),
               timeout=20, what="playing across the discontinuity", driver=driver)
    # Back into the first part (its init section again; that stretch is no longer buffered).
    js(driver, "window.player.seek(4.1)")
    wait_until(lambda: js(driver, "const v = document.getElementById('video'); return !v.seeking && !v.paused && v.currentTime > 4.6 && v.currentTime < 10"),
               timeout=20, what="playing in the first part again", driver=driver)
    assert js(driver, "return document.getElementById('video').buffered.end(0)") < boundary, "the buffer was dropped and refilled from 4.1 s"
    # Straight into the second part, beyond the buffer: its segment is placed at its playlist time.
    target = boundary + 7.1
    holding = max(i for i, s in enumerate(parsed["segments"]) if s[0] <= target)
    js(driver, "window.player.seek(arguments[0])", target)
    wait_until(lambda: js(driver, "const v = document.getElementById('video'); return !v.seeking && !v.paused && v.currentTime > arguments[0] + 0.5", target),
               timeout=20, what="playing in the second part", driver=driver)
    assert js(driver, "return document.getElementById('video').buffered.start(0)") == pytest.approx(parsed["segments"][holding][0], abs=0.15)
    assert not [e for e in console_errors(driver) if "favicon" not in e]


# --- 2. the live, its DVR, the end and the replay on the real server ---------------------------

class Show:
    def __init__(self, hub):
        self.hub = hub
        self.room = None
        self.products = {}
        self.sent = []  # (message, wall time)
        self.features = []  # (liveProductId, wall time)
        self.publisher = None
        self.chat = None


SHOP_PRODUCT_URL = "https://shop.example/products/{productId}?live={roomId}"


@pytest.fixture(scope="module")
def show(browser):
    with tempfile.TemporaryDirectory(prefix="livehub-replay-") as directory:
        hub = LiveHubProcess(Path(directory) / "data", env={
            "LIVEHUB_RECORDING": "on",
            "LIVEHUB_RECORDINGS_DIR": str(Path(directory) / "recordings"),
            "LIVEHUB_RECORDINGS_MIN_FREE_BYTES": str(1 << 20),
            # The Buy button on the featured product links to the shop's page for it.
            "LIVEHUB_SHOP_PRODUCT_URL": SHOP_PRODUCT_URL,
        }).start()
        state = Show(hub)
        try:
            yield state
        finally:
            if state.chat:
                state.chat.close()
            if state.publisher:
                stop(state.publisher)
            hub.stop()


def add_product(hub, room_id, product_id, name, price):
    response = requests.post(f"{hub.api}/rooms/{room_id}/products", json={"productId": product_id, "productName": name, "livePrice": price},
                             headers=hub.headers())
    assert response.status_code == 201, response.text
    return response.json()


def feature(show, product):
    response = requests.put(f"{show.hub.api}/rooms/{show.room['id']}/products/{product['id']}/feature", headers=show.hub.headers())
    assert response.status_code == 200, response.text
    show.features.append((product["id"], time.time()))


def say(show, message):
    show.chat.send_json(f"/app/live/{show.room['id']}/chat", {"message": message})
    show.sent.append((message, time.time()))


def post_order(show, product):
    order = {"orderId": f"order-replay-{int(time.time() * 1000)}", "roomId": show.room["id"], "userId": "buyer-dana", "username": "dana",
             "productId": product["productId"], "productName": product["productName"], "amount": product["livePrice"], "timestamp": "2026-01-01T00:00:00Z"}
    response = requests.post(f"{show.hub.api}/orders", json=order, headers=show.hub.headers("internal"))
    assert response.status_code in (200, 201), response.text


def video_time(driver):
    return js(driver, "return document.querySelector('#video').currentTime")


def test_a_live_with_chat_and_products_can_be_rewound_and_returned_to_live(show, browser):
    hub, driver = show.hub, browser
    show.room = hub.create_room("Replay sale")
    room_id = show.room["id"]
    show.products["a"] = add_product(hub, room_id, "sku-a", "Cashmere Scarf", 39.9)
    show.products["b"] = add_product(hub, room_id, "sku-b", "Linen Shirt", 29.0)
    driver.get(f"{hub.base}/watch/{room_id}?player=mse")
    show.publisher = publish(hub.rtmp_url(show.room["streamKey"]))
    wait_until(lambda: js(driver, "return document.querySelector('#status-badge').dataset.status") == "live", timeout=20, what="live", driver=driver)
    wait_until(lambda: video_time(driver) > 0.5, timeout=30, what="the live playing", driver=driver)
    show.chat = StompWS(f"ws://127.0.0.1:{hub.http_port}/ws/live", token=hub.tokens["viewer"])

    # The show: events a few seconds apart (a segment is 2 s), so each lies in its own stretch.
    say(show, "first! hello everyone")
    time.sleep(2.5)
    feature(show, show.products["a"])
    # The watch page's featured card has a Buy button to the shop's page of that product.
    buy = wait_until(lambda: js(driver, "const a = document.querySelector('#featured-spot a.buy-button'); return a && a.href"),
                     timeout=10, what="the Buy button on the featured product", driver=driver)
    assert buy == f"https://shop.example/products/sku-a?live={room_id}"
    time.sleep(2.0)
    say(show, "is the scarf soft?")
    time.sleep(2.5)
    post_order(show, show.products["a"])
    time.sleep(2.5)
    say(show, "love that colour")
    time.sleep(2.5)
    feature(show, show.products["b"])
    time.sleep(2.5)
    say(show, "the shirt now, nice")

    # Rewind: the DVR playlist (EVENT, seekable from the start) plays; Back to live returns.
    wait_until(lambda: visible(driver, "#dvr-rewind"), timeout=20, what="the Rewind control", driver=driver)
    driver.find_element("css selector", "#dvr-rewind").click()
    wait_until(lambda: js(driver, "return document.querySelector('#video').dataset.mode") == "dvr", what="the DVR mode", driver=driver)
    first = wait_until(lambda: (lambda t: t if t > 0.3 else None)(video_time(driver)), timeout=30, what="the DVR playing", driver=driver)
    time.sleep(1.5)
    assert video_time(driver) > first + 0.5, "the DVR playlist plays on"
    assert visible(driver, "#dvr-live") and not visible(driver, "#dvr-rewind")
    assert js(driver, "return document.querySelector('#video').controls"), "a seek bar while rewound"
    assert js(driver, "return performance.getEntriesByType('resource').some(e => e.name.includes('/dvr.m3u8'))")
    # The whole show so far is seekable: back to its very start.
    js(driver, "document.querySelector('#video').currentTime = 0.5")
    wait_until(lambda: js(driver, "const v = document.querySelector('#video'); return !v.seeking && v.currentTime > 0.8 && v.currentTime < 6 && !v.paused"),
               timeout=20, what="the DVR playing from the start of the show", driver=driver)
    driver.find_element("css selector", "#dvr-live").click()
    wait_until(lambda: js(driver, "return document.querySelector('#video').dataset.mode") == "live", what="back to live", driver=driver)
    before = video_time(driver)
    wait_until(lambda: video_time(driver) > before + 1, timeout=30, what="the live playing again", driver=driver)
    assert visible(driver, "#dvr-rewind") and not js(driver, "return document.querySelector('#video').controls")
    time.sleep(2.5)
    say(show, "bye, thanks!")
    time.sleep(2.5)


def timeline(hub, room_id, limit=1000):
    events, chapters, cursor = [], [], None
    for _ in range(100):
        params = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        response = requests.get(f"{hub.api}/rooms/{room_id}/timeline", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        events += body["events"]
        chapters += [c for c in body.get("chapters", []) if c["id"] not in {k["id"] for k in chapters}]
        cursor = body.get("nextCursor")
        if not cursor:
            return body, events, chapters
    raise AssertionError("the timeline does not end")


def test_the_ended_room_links_to_its_replay(show, browser):
    if not show.room:
        pytest.skip("the live test did not run")
    hub, driver = show.hub, browser
    room_id = show.room["id"]
    response = requests.put(f"{hub.api}/rooms/{room_id}/end", headers=hub.headers())
    assert response.status_code == 200, response.text
    stop(show.publisher)
    show.publisher = None
    wait_until(lambda: js(driver, "return document.querySelector('#status-badge').dataset.status") == "ended", what="ended on the watch page", driver=driver)
    link = wait_until(lambda: visible(driver, "#replay-link") and driver.find_element("css selector", "#replay-link").get_attribute("href"),
                      timeout=20, what="the replay link", driver=driver)
    assert link.endswith(f"/replay/{room_id}")
    assert not visible(driver, "#dvr-bar")
    room = hub.room(room_id)
    assert room["replayUrl"].endswith(f"/hls/{room_id}/vod.m3u8")


def expected_at(events, t):
    """What the replay page must show at `t`: chat seqs (t' ≤ t, by t) and the featured liveProductId."""
    chats = sorted((e for e in events if e["type"] == "chat"), key=lambda e: e["t"])  # stable: server order at equal t
    featured = None
    for e in events:
        if e["t"] > t:
            continue
        if e["type"] == "feature":
            featured = e["data"]
        elif e["type"] == "unfeature" and featured and e["data"].get("liveProductId") == featured["id"]:
            featured = None
    return [e["seq"] for e in chats if e["t"] <= t], featured["id"] if featured else None


def page_at(driver, t):
    return run_async(driver, """
        const t = await window.livehubReplay.seek(args[0]);
        const product = document.querySelector('#replay-product');
        return {t, seqs: Array.from(document.querySelectorAll('#replay-chat .chat-line[data-seq]')).map(e => e.dataset.seq),
                texts: Array.from(document.querySelectorAll('#replay-chat .chat-line .chat-text')).map(e => e.textContent),
                product: product && !product.classList.contains('hidden') ? product.dataset.liveProductId || null : null,
                productText: product ? product.textContent : ''};""", t)


def test_the_replay_page_shows_the_chat_and_product_of_the_moment_it_is_seeked_to(show, browser):
    if not show.room:
        pytest.skip("the live test did not run")
    hub, driver = show.hub, browser
    room_id = show.room["id"]
    body, events, chapters = timeline(hub, room_id)
    _, paged, _ = timeline(hub, room_id, limit=2)
    assert [e["seq"] for e in paged] == [e["seq"] for e in events], "pages join up to the whole timeline"
    assert body["recording"] is True
    times = [e["t"] for e in events]
    assert times == sorted(times), "the timeline comes in media order"
    chats = [e for e in events if e["type"] == "chat" and e["data"].get("type") == "CHAT"]
    sent = [m for m, _ in show.sent]
    assert [e["data"]["message"] for e in chats] == sent
    # Media times follow the wall clock of the sends (within a segment).
    for (message, at), event in zip(show.sent, chats):
        assert event["t"] - chats[0]["t"] == pytest.approx(at - show.sent[0][1], abs=1.0), message
    features = [e for e in events if e["type"] == "feature"]
    assert [e["data"]["id"] for e in features] == [show.products["a"]["id"], show.products["b"]["id"]]
    assert [c["productId"] for c in chapters] == ["sku-a", "sku-b"]
    assert any(e["type"] == "order" for e in events)

    driver.get(f"{hub.base}/replay/{room_id}?player=mse&timelinePage=3")  # small pages: the page follows nextCursor
    wait_until(lambda: js(driver, "return document.body.dataset.replayReady") == "1", timeout=30, what="the replay page ready", driver=driver)
    assert js(driver, "return window.livehubReplay.timelinePages") >= -(-len(events) // 3) >= 3
    assert [e["seq"] for e in js(driver, "return window.livehubReplay.events")] == [e["seq"] for e in events]
    assert js(driver, "return document.querySelector('#video').dataset.player") == "mse"
    assert "Replay sale" in driver.find_element("css selector", "#room-title").text
    assert len(driver.find_elements("css selector", "#replay-chapters .chapter")) == 2
    duration = js(driver, "return document.querySelector('#video').duration")
    assert duration == pytest.approx(body["durationSeconds"], abs=2.5)

    # Moments between the events (never on one): forwards, then backwards.
    marks = sorted({round(e["t"], 3) for e in events if e["type"] in ("chat", "feature", "unfeature")})
    moments = [marks[0] - 0.4] + [(a + b) / 2 for a, b in zip(marks, marks[1:]) if b - a > 0.6] + [marks[-1] + 0.4]
    moments = [m for m in moments if 0 <= m < duration - 0.2]
    assert len(moments) >= 6, moments
    counts = []
    for t in moments + list(reversed(moments[:-1])):
        seqs, product = expected_at(events, t)
        page = page_at(driver, t)
        assert page.get("error") is None, page
        assert page["seqs"] == seqs, f"chat at t={t}: page {page['seqs']} vs timeline {seqs}"
        assert page["product"] == product, f"product at t={t}: page {page['product']} vs timeline {product}"
        counts.append(len(seqs))
    assert counts[len(moments) - 1] > counts[0] and counts[-1] < counts[len(moments) - 1], "seeking back removes lines"
    # The video is really at the moment and plays from there.
    t = moments[len(moments) // 2]
    page = page_at(driver, t)
    js(driver, "document.querySelector('#video').play()")  # it may have played to its end meanwhile (then it pauses)
    wait_until(lambda: js(driver, "const v = document.querySelector('#video'); return !v.seeking && !v.paused && v.currentTime > arguments[0] + 0.5", t),
               timeout=20, what="the VOD playing from the seeked moment", driver=driver)

    # A chapter jumps to its product; the card shows it.
    driver.find_element("css selector", "#replay-chapters .chapter:nth-child(2) button").click()
    wait_until(lambda: js(driver, "return document.querySelector('#replay-product').dataset.liveProductId") == show.products["b"]["id"], what="chapter B's product", driver=driver)
    assert video_time(driver) == pytest.approx(chapters[1]["t"], abs=1.5)
    assert "Linen Shirt" in driver.find_element("css selector", "#replay-product").text
    buy = driver.find_element("css selector", "#replay-product a.buy-button")
    assert buy.get_attribute("href") == f"https://shop.example/products/sku-b?live={room_id}", "Buy opens the shop's page of the product shown"
    assert buy.get_attribute("target") == "_blank" and buy.is_displayed()
    # Playing across the order pops its toast.
    order = next(e for e in events if e["type"] == "order")
    js(driver, "window.livehubReplay.seek(arguments[0]); document.querySelector('#video').play()", max(0, order["t"] - 1.2))
    toast = wait_until(lambda: js(driver, "const t = document.querySelector('#order-toasts .order-toast'); return t && t.textContent"),
                       timeout=20, what="the order toast", driver=driver)
    assert "dana" in toast and "Cashmere Scarf" in toast
    save_screenshot(driver, "replay.png")
    assert not [e for e in console_errors(driver) if "/hls/" not in e]
