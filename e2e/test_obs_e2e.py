"""A real OBS Studio (Debian 12's obs-studio, headless under Xvfb) publishes to the real binary:
the room goes LIVE, ffprobe reads H.264 + AAC from its HLS, and when OBS stops the room starts its
reconnect grace. OBS gets the same throw-away profile the committed capture was recorded with
(media-fixtures/tools/obs-home.sh: x264 1000 kbps, keyframe every 1 s, 640x360 30 fps, AAC 48 kHz),
streaming a looping media source, and is stopped through its process group
(media-fixtures/tools/obs-headless.sh)."""
import json
import os
import signal
import subprocess
import tempfile
from pathlib import Path

import requests

from conftest import FIXTURES

TOOLS = FIXTURES / "tools"


def start_obs(home, server, key):
    subprocess.run([str(TOOLS / "obs-home.sh"), str(home), server, key, str(FIXTURES / "h264-aac-2s-gop.flv")], check=True)
    log = open(home / "obs.log", "w")
    env = dict(os.environ, HOME=str(home))
    return subprocess.Popen([str(TOOLS / "obs-headless.sh")], env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def stop_obs(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_headless_obs_publishes_a_live_room_that_ffprobe_can_watch(make_livehub):
    hub = make_livehub(env={"LIVEHUB_RECONNECT_GRACE": "30"}).start()
    room = hub.create_room("obs e2e")
    started = requests.put(f"{hub.api}/rooms/{room['id']}/start", headers=hub.headers())
    assert started.status_code == 200, started.text
    with tempfile.TemporaryDirectory(prefix="livehub-obs-") as home_dir:
        home = Path(home_dir)
        obs = start_obs(home, f"rtmp://127.0.0.1:{hub.rtmp_port}/live", room["streamKey"])
        try:
            hub.wait_for(lambda: hub.room(room["id"])["status"] == "LIVE", timeout=60,
                         what="LIVE from OBS (obs.log: %s)" % (home / "obs.log"))

            def playlist_with_segments():
                response = requests.get(f"{hub.base}/hls/{room['id']}/media.m3u8", timeout=5)
                return response.status_code == 200 and response.text.count("#EXTINF") >= 2 and response.text

            hub.wait_for(playlist_with_segments, timeout=40, what="two HLS segments from OBS")
            probe = subprocess.run(
                ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name,width,height",
                 "-of", "json", f"{hub.base}/hls/{room['id']}/index.m3u8"],
                capture_output=True, text=True, timeout=60)
            assert probe.returncode == 0, probe.stderr
            streams = {s["codec_type"]: s for s in json.loads(probe.stdout)["streams"]}
            assert streams["video"]["codec_name"] == "h264"
            assert (streams["video"]["width"], streams["video"]["height"]) == (640, 360)
            assert streams["audio"]["codec_name"] == "aac"
        finally:
            stop_obs(obs)
        hub.wait_for(lambda: hub.room(room["id"])["reconnecting"], timeout=20, what="reconnecting after OBS stopped")
        assert room["streamKey"] not in hub.output(), "the stream key must never be logged"
