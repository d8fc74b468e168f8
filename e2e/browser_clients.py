"""The real browser build of socket.io-client v4 (the official `socket.io.min.js` bundle, 4.8.1),
for the browser tests. No Debian package carries it and npm is not reachable from CI, so it is
taken from a PyPI wheel that ships the official bundle unchanged (nicegui 3.18.0,
`nicegui/static/socket.io.min.js`): `pip download --no-deps` into e2e/.cache/ (git-ignored;
fetched once, never committed). (sockjs-client comes from Debian's `node-sockjs-client`.)

`serve_pages(files)` serves a test page and these scripts from a second http origin (a plain
`http.server` on a free port), so the page talks to LiveHub cross-origin, as a shop's site does.
"""
import functools
import http.server
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
SOCKET_IO_WHEEL = "nicegui==3.18.0"
SOCKET_IO_MEMBER = "nicegui/static/socket.io.min.js"


def socket_io_client_js():
    """Path of socket.io.min.js (v4.8.1), fetched into e2e/.cache/ on first use."""
    target = CACHE / "socket.io.min.js"
    if target.exists():
        return target
    CACHE.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--disable-pip-version-check",
                    "-d", str(CACHE), SOCKET_IO_WHEEL], check=True, timeout=300)
    wheel = next(CACHE.glob("nicegui-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(SOCKET_IO_MEMBER)
    assert b"Socket.IO v4." in data[:200], "not the socket.io v4 client bundle"
    target.write_bytes(data)
    wheel.unlink()
    return target


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve_pages(directory, files):
    """Copies `files` ({name: path or str content}) into `directory` and serves it on 127.0.0.1.
    Returns (base_url, server); call server.shutdown() when done."""
    directory = Path(directory)
    for name, content in files.items():
        if isinstance(content, Path):
            shutil.copyfile(content, directory / name)
        else:
            (directory / name).write_text(content)
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server
