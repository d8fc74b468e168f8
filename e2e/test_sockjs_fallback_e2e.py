"""Issue 19: SockJS's HTTP fallbacks (`xhr-streaming`, `xhr-polling` + `xhr_send`), as Spring's
`withSockJS()` served them, with the REAL SockJS client (Debian's node-sockjs-client 1.6.1, driven
by e2e/sockjs_client.js) forced onto each transport, next to plain WebSocket STOMP clients."""
import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from stomp_client import StompWS

NODE = shutil.which("node") or "/usr/bin/node"
NODE_PATH = "/usr/share/nodejs"
CLIENT = Path(__file__).resolve().parent / "sockjs_client.js"

pytestmark = pytest.mark.skipif(
    not (Path(NODE).exists() and (Path(NODE_PATH) / "sockjs-client").is_dir()),
    reason="node / node-sockjs-client not installed (make test-deps)")

HTTP_TRANSPORTS = ["xhr-streaming", "xhr-polling"]


def topics(room_id):
    return {name: f"/topic/live/{room_id}/{name}" for name in ("chat", "product", "status", "viewers")}


class SockJSNode:
    """The SockJS client in a node process: JSON commands in, JSON events out."""

    def __init__(self, hub, transport, token=None):
        env = dict(os.environ, NODE_PATH=NODE_PATH, NODE_ENV="production")
        args = [NODE, str(CLIENT), f"{hub.base}/ws/live", transport] + ([token] if token else [])
        self.proc = subprocess.Popen(args, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.events = queue.Queue()
        self.closed = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        _, opened = self.expect("open", timeout=15)
        self.transport = opened["transport"]
        self.connected = self.expect_frame("CONNECTED")

    def _read(self):
        for line in self.proc.stdout:
            event = json.loads(line)
            if event["event"] == "close":
                self.closed.set()
            self.events.put((event["event"], event))
        self.closed.set()

    def command(self, **command):
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def expect(self, kind, timeout=10, where=None):
        deadline = time.time() + timeout
        skipped = []
        try:
            while time.time() < deadline:
                try:
                    got = self.events.get(timeout=max(0.01, deadline - time.time()))
                except queue.Empty:
                    break
                if got[0] == kind and (where is None or where(got[1])):
                    return got
                skipped.append(got)
        finally:
            for item in skipped:
                self.events.put(item)
        stderr = ""
        if self.proc.poll() is not None:
            stderr = self.proc.stderr.read()
        raise AssertionError(f"no {kind} within {timeout}s; other events: {skipped[:5]}; stderr: {stderr[-2000:]}")

    def expect_frame(self, command, timeout=10, where=None):
        _, event = self.expect("frame", timeout, lambda e: e["command"] == command and (where is None or where(e)))
        return event

    def subscribe(self, destination, sub_id, receipt=None):
        self.command(subscribe=destination, id=sub_id, receipt=receipt)
        if receipt:
            self.expect_frame("RECEIPT", where=lambda e: e["headers"].get("receipt-id") == receipt)

    def send_json(self, destination, payload, receipt=None):
        self.command(send=destination, body=json.dumps(payload), receipt=receipt)

    def messages(self, destination, count, timeout=10):
        out = []
        deadline = time.time() + timeout
        while len(out) < count:
            event = self.expect_frame("MESSAGE", max(0.05, deadline - time.time()), lambda e: e["headers"].get("destination") == destination)
            out.append((event["headers"], json.loads(event["body"])))
        return out

    def kill(self):
        """Gone without a word (a closed laptop lid): no DISCONNECT, no close."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.command(close=True)
                self.proc.wait(timeout=5)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def ws_url(hub, token=None):
    return f"ws://127.0.0.1:{hub.http_port}/ws/live" + (f"?token={token}" if token else "")


@pytest.mark.parametrize("transport", HTTP_TRANSPORTS + ["websocket"])
def test_each_transport_connects_subscribes_chats_and_hears_a_websocket_client(livehub, transport):
    room = livehub.create_room(f"over {transport}")
    t = topics(room["id"])
    viewer = SockJSNode(livehub, transport, token=livehub.tokens["viewer"])
    owner = StompWS(ws_url(livehub), token=livehub.tokens["owner"])
    try:
        assert viewer.transport == transport
        assert viewer.connected["headers"]["version"] == "1.2"
        viewer.subscribe(t["chat"], "sub-0", receipt="ready")
        owner.subscribe(t["chat"], "sub-0", receipt="ready")
        viewer.send_json(f"/app/live/{room['id']}/chat", {"message": f"über {transport} \"quoted\" \u2028 line"})
        for client in (viewer, owner):
            _, body = client.messages(t["chat"], 1)[0]
            assert body["message"] == f"über {transport} \"quoted\" \u2028 line" and body["username"] == "Dev Viewer"
        for index in range(3):
            owner.send_json(f"/app/live/{room['id']}/chat", {"message": f"from the studio {index}"})
            time.sleep(0.21)
        got = [body["message"] for _, body in viewer.messages(t["chat"], 3)]
        assert got == [f"from the studio {index}" for index in range(3)]
        history = requests.get(f"{livehub.api}/rooms/{room['id']}/chats").json()
        assert len(history) == 4
    finally:
        viewer.close()
        owner.close()


@pytest.mark.parametrize("transport", HTTP_TRANSPORTS)
def test_a_vanished_sockjs_client_times_out_and_the_viewer_count_drops(make_livehub, transport):
    hub = make_livehub(env={"LIVEHUB_SOCKJS_DISCONNECT_DELAY": "1"}).start()
    room = hub.create_room("vanishing")
    t = topics(room["id"])
    watcher = StompWS(ws_url(hub))
    viewer = SockJSNode(hub, transport, token=hub.tokens["viewer"])
    try:
        watcher.subscribe(t["viewers"], "v", receipt="ok")
        viewer.subscribe(t["chat"], "c", receipt="ok")
        viewer.send_json(f"/app/live/{room['id']}/join", {})
        assert watcher.messages(t["viewers"], 1)[0][1]["count"] == 1
        # Quiet for longer than the disconnect delay: the receiving request keeps the session.
        time.sleep(2.5)
        assert not [f for f in watcher.drain() if f[0] == "MESSAGE"], "an idle client with its receiving request open stays"
        killed = time.time()
        viewer.kill()
        _, last = watcher.messages(t["viewers"], 1, timeout=15)[0]
        assert last["count"] == 0 and last["peak"] == 1
        # the held request is noticed closed within ~1 s, then the 1 s disconnect delay
        assert time.time() - killed < 8
    finally:
        watcher.close()
        viewer.close()


def sockjs_url(hub, session, what, server="000"):
    return f"{hub.base}/ws/live/{server}/{session}/{what}"


def test_broken_xhr_send_bodies_get_their_errors_and_the_room_next_door_is_unharmed(livehub):
    room = livehub.create_room("healthy")
    t = topics(room["id"])
    viewer = SockJSNode(livehub, "xhr-polling", token=livehub.tokens["viewer"])
    try:
        viewer.subscribe(t["chat"], "sub-0", receipt="ready")
        session = uuid.uuid4().hex[:8]
        opened = requests.post(sockjs_url(livehub, session, "xhr"))
        assert opened.status_code == 200 and opened.text == "o\n"
        assert opened.headers["Content-Type"].replace(" ", "") == "application/javascript;charset=UTF-8"
        assert opened.headers["Cache-Control"] == "no-store, no-cache, must-revalidate, max-age=0"
        assert opened.headers["Access-Control-Allow-Origin"] == "*" and opened.headers["Access-Control-Allow-Credentials"] == "true"
        broken = requests.post(sockjs_url(livehub, session, "xhr_send"), data='["x')
        assert broken.status_code == 500 and "Broken JSON encoding." in broken.text
        empty = requests.post(sockjs_url(livehub, session, "xhr_send"), data="")
        assert empty.status_code == 500 and "Payload expected." in empty.text
        numbers = requests.post(sockjs_url(livehub, session, "xhr_send"), data="[1,2]")
        assert numbers.status_code == 500 and "Payload expected." in numbers.text
        huge = requests.post(sockjs_url(livehub, session, "xhr_send"), data='["' + "x" * (500 * 1024) + '"]')
        assert huge.status_code == 413
        assert requests.post(sockjs_url(livehub, "no-such-session", "xhr_send"), data='["x"]').status_code == 404
        for bad in ("a.b", "a" * 65):
            assert requests.post(sockjs_url(livehub, bad, "xhr")).status_code == 404
        assert requests.post(sockjs_url(livehub, session, "xhr", server="0.0")).status_code == 404
        # the broken session still works: CONNECT, and its answer on the next poll
        sent = requests.post(sockjs_url(livehub, session, "xhr_send"), data=json.dumps(["CONNECT\naccept-version:1.2\n\n\x00"]))
        assert sent.status_code == 204 and sent.text == "" and sent.headers["Content-Type"].replace(" ", "") == "text/plain;charset=UTF-8"
        polled = requests.post(sockjs_url(livehub, session, "xhr"))
        assert polled.text.startswith('a["CONNECTED\\nversion:1.2\\n')
        # the room next door never noticed
        viewer.send_json(f"/app/live/{room['id']}/chat", {"message": "still fine"})
        assert viewer.messages(t["chat"], 1)[0][1]["message"] == "still fine"
        assert viewer.transport == "xhr-polling" and not viewer.closed.is_set()
    finally:
        viewer.close()


def test_one_receiving_request_per_session_and_cors_preflights(livehub):
    session = uuid.uuid4().hex[:8]
    assert requests.post(sockjs_url(livehub, session, "xhr")).text == "o\n"
    held = {}

    def hold():
        held["response"] = requests.post(sockjs_url(livehub, session, "xhr"), timeout=30)

    first = threading.Thread(target=hold)
    first.start()
    time.sleep(0.5)
    second = requests.post(sockjs_url(livehub, session, "xhr"))
    assert second.status_code == 200 and second.text == 'c[2010,"Another connection still open"]\n'
    # the first one is still held, and gets what the session has next
    assert first.is_alive()
    requests.post(sockjs_url(livehub, session, "xhr_send"), data=json.dumps(["CONNECT\naccept-version:1.2\n\n\x00"]))
    first.join(timeout=10)
    assert held["response"].text.startswith('a["CONNECTED')

    # streaming: the 2 KiB prelude, then `o`, in a chunked response
    streamed = requests.post(sockjs_url(livehub, uuid.uuid4().hex[:8], "xhr_streaming"), stream=True, timeout=10)
    assert streamed.status_code == 200 and streamed.headers.get("Transfer-Encoding") == "chunked"
    lines = streamed.iter_lines(decode_unicode=True)
    assert next(lines) == "h" * 2048 and next(lines) == "o"
    streamed.close()

    for what in ("xhr", "xhr_streaming", "xhr_send"):
        preflight = requests.options(sockjs_url(livehub, "abc", what), headers={
            "Origin": "http://shop.example", "Access-Control-Request-Headers": "content-type"})
        assert preflight.status_code == 204 and preflight.text == ""
        assert preflight.headers["Access-Control-Allow-Methods"] == "OPTIONS, POST"
        assert preflight.headers["Access-Control-Allow-Origin"] == "http://shop.example"
        assert preflight.headers["Access-Control-Allow-Credentials"] == "true"
        assert preflight.headers["Access-Control-Allow-Headers"] == "content-type"
        assert int(preflight.headers["Access-Control-Max-Age"]) > 1_000_000 and preflight.headers["Expires"]
    info = requests.options(f"{livehub.base}/ws/live/info", headers={"Origin": "http://shop.example"})
    assert info.status_code == 204 and info.headers["Access-Control-Allow-Methods"] == "OPTIONS, GET"
    got = requests.get(f"{livehub.base}/ws/live/info", headers={"Origin": "http://shop.example"})
    assert got.json()["cookie_needed"] is False and got.headers["Access-Control-Allow-Origin"] == "http://shop.example"
    assert "JSESSIONID" not in got.headers.get("Set-Cookie", "")


def test_a_streaming_client_outlives_its_response_byte_limit(make_livehub):
    hub = make_livehub(env={"LIVEHUB_SOCKJS_STREAM_BYTES": "4096"}).start()
    room = hub.create_room("long stream")
    t = topics(room["id"])
    viewer = SockJSNode(hub, "xhr-streaming")
    try:
        viewer.subscribe(t["product"], "p", receipt="ready")
        api = f"{hub.api}/rooms/{room['id']}/products"
        for index in range(12):
            response = requests.post(api, json={"productId": index + 1, "livePrice": 100 + index, "productName": f"Product number {index} " + "x" * 60}, headers=hub.headers())
            assert response.status_code in (200, 201), response.text
        lists = [body for _, body in viewer.messages(t["product"], 12, timeout=20)]
        assert [len(products) for products in lists] == list(range(1, 13))
        assert sum(len(json.dumps(products)) for products in lists) > 3 * 4096, "several streaming responses were needed"
        assert not viewer.closed.is_set()
    finally:
        viewer.close()


def test_sockjs_sessions_are_limited_in_all_and_per_address_with_the_websockets(make_livehub):
    hub = make_livehub(env={"LIVEHUB_SOCKJS_MAX_SESSIONS": "3", "LIVEHUB_WS_MAX_CONNECTIONS_PER_IP": "2", "LIVEHUB_SOCKJS_DISCONNECT_DELAY": "1"}).start()
    socket = StompWS(ws_url(hub))
    try:
        assert requests.post(sockjs_url(hub, "one", "xhr")).text == "o\n"
        refused = requests.post(sockjs_url(hub, "two", "xhr"))
        assert refused.status_code == 429 and refused.json()["error"] == "TOO_MANY_CONNECTIONS"
    finally:
        socket.close()
    # the WebSocket's place is free again; the session "one" expires after 1 s with nobody polling
    hub.wait_for(lambda: requests.post(sockjs_url(hub, "two", "xhr")).text == "o\n", timeout=10, what="a place for a second session")
    time.sleep(1.5)
    hub2 = make_livehub(env={"LIVEHUB_SOCKJS_MAX_SESSIONS": "2", "LIVEHUB_WS_MAX_CONNECTIONS_PER_IP": "0"}).start()
    assert requests.post(sockjs_url(hub2, "a", "xhr")).text == "o\n"
    assert requests.post(sockjs_url(hub2, "b", "xhr")).text == "o\n"
    full = requests.post(sockjs_url(hub2, "c", "xhr"))
    assert full.status_code == 503 and full.json()["error"] == "TOO_MANY_SESSIONS"


def test_the_stomp_connect_deadline_holds_over_xhr_polling(make_livehub):
    hub = make_livehub(env={"LIVEHUB_STOMP_CONNECT_TIMEOUT": "0.5"}).start()
    session = uuid.uuid4().hex[:8]
    assert requests.post(sockjs_url(hub, session, "xhr")).text == "o\n"
    started = time.time()
    answer = requests.post(sockjs_url(hub, session, "xhr"), timeout=10).text
    if not answer.endswith('c[3000,"Go away!"]\n'):  # the close may come on the next poll
        answer += requests.post(sockjs_url(hub, session, "xhr"), timeout=10).text
    assert answer.startswith('a["ERROR\\nmessage:no CONNECT frame received in time') and answer.endswith('c[3000,"Go away!"]\n')
    assert time.time() - started < 5
    assert requests.post(sockjs_url(hub, session, "xhr")).text == 'c[3000,"Go away!"]\n'


BROWSER_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><script src="/sockjs.min.js"></script></head><body><script>
window.events = [];
const frame = (command, headers, body) =>
  [command, ...Object.entries(headers).map(([k, v]) => k + ':' + v)].join('\\n') + '\\n\\n' + (body || '') + '\\u0000';
const sock = new SockJS(__HUB__ + '/ws/live', null, {transports: [__TRANSPORT__]});
sock.onopen = () => {
  window.events.push({open: sock.transport});
  sock.send(frame('CONNECT', {'accept-version': '1.2', 'heart-beat': '0,0', Authorization: 'Bearer ' + __TOKEN__}));
  sock.send(frame('SUBSCRIBE', {id: 'sub-0', destination: __CHAT__, receipt: 'ready'}));
};
sock.onmessage = (m) => {
  window.events.push({data: m.data});
  if (m.data.startsWith('RECEIPT')) sock.send(frame('SEND', {destination: __SEND__, 'content-type': 'application/json'}, JSON.stringify({message: 'from chromium'})));
};
sock.onclose = (c) => window.events.push({close: c.code});
</script></body></html>
"""


@pytest.mark.parametrize("transport", HTTP_TRANSPORTS)
def test_chromium_from_another_origin_chats_over_the_http_transports(livehub, transport):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    chromedriver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    script = Path(NODE_PATH) / "sockjs-client" / "dist" / "sockjs.min.js"
    if not (Path(chromium).exists() and Path(chromedriver).exists() and script.exists()):
        pytest.skip("chromium, chromedriver or sockjs.min.js not installed")
    import http.server

    room = livehub.create_room("from the browser")
    t = topics(room["id"])
    page = BROWSER_PAGE
    for name, value in [("__HUB__", livehub.base), ("__TRANSPORT__", transport), ("__TOKEN__", livehub.tokens["viewer"]),
                        ("__CHAT__", t["chat"]), ("__SEND__", f"/app/live/{room['id']}/chat")]:
        page = page.replace(name, json.dumps(value))
    files = {"/index.html": (page.encode(), "text/html; charset=utf-8"), "/sockjs.min.js": (script.read_bytes(), "application/javascript")}

    class Site(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body, kind = files.get(self.path, (b"not found", "text/plain"))
            self.send_response(200 if self.path in files else 404)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage"]:
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(chromedriver))
    owner = StompWS(ws_url(livehub), token=livehub.tokens["owner"])
    try:
        owner.subscribe(t["chat"], "sub-0", receipt="ready")
        # the page's origin (another port) is not the hub's: every XHR is a credentialed CORS request
        driver.get(f"http://localhost:{site.server_address[1]}/index.html")
        _, body = owner.messages(t["chat"], 1, timeout=20)[0]
        assert body["message"] == "from chromium" and body["username"] == "Dev Viewer"
        deadline = time.time() + 10
        events = []
        while time.time() < deadline:
            events = driver.execute_script("return window.events")
            if any("from chromium" in e.get("data", "") for e in events):
                break
            time.sleep(0.1)
        assert events[0] == {"open": transport}
        assert any(e.get("data", "").startswith("MESSAGE") and "from chromium" in e["data"] for e in events), events
        assert not any("close" in e for e in events)
    finally:
        owner.close()
        driver.quit()
        site.shutdown()
