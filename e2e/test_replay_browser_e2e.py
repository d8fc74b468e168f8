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
window.player = new MsePlayer(video, 'vod/vod.m3u8', { aheadSeconds: 8, onState: (s) => { window.playerState = s; } });
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
