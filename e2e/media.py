"""Helpers to publish real RTMP with ffmpeg and read what the server shows."""
import subprocess
import time
from pathlib import Path

from conftest import FIXTURES

FIXTURE_2S = FIXTURES / "h264-aac-2s-gop.flv"


def ensure_fixtures():
    if not FIXTURE_2S.exists():
        subprocess.run(["bash", str(FIXTURES / "generate.sh")], check=True)


def publish(url, fixture=FIXTURE_2S, loop=True, duration=None, extra=()):
    """Starts `ffmpeg -re … -c copy -f flv URL` and returns the process."""
    ensure_fixtures()
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re"]
    if loop:
        args += ["-stream_loop", "-1"]
    args += ["-i", str(fixture)]
    if duration:
        args += ["-t", str(duration)]
    args += ["-c", "copy", *extra, "-f", "flv", url]
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def stop(process, timeout=10):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
