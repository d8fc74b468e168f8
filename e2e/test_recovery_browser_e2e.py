"""Issue 22 in Chromium: the watch page's reactions (buttons, icons floating over the video for the
windows the hub sums) and its recovery after a reconnect (stomp.js re-subscribes with
`recover-offset`/`recover-epoch` and shows the lines sent while it was offline, once)."""
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from conftest import LiveHubProcess
from stomp_client import StompWS

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM_BIN", shutil.which("chromium") or "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", shutil.which("chromedriver") or "/usr/bin/chromedriver")
pytestmark = pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()), reason="chromium / chromedriver not installed")

# Every WebSocket the page opens is recorded (frames sent and received); while `__offline` is set a
# new one goes to a port where nothing listens, so the page stays disconnected until it is cleared.
RECORDER = """
window.__sockets = []; window.__sent = []; window.__received = []; window.__offline = false;
const Native = window.WebSocket;
window.WebSocket = function (url, protocols) {
  const ws = new Native(window.__offline ? 'ws://127.0.0.1:9/offline' : url, protocols);
  const send = ws.send.bind(ws);
  ws.send = (data) => { window.__sent.push(String(data)); return send(data); };
  ws.addEventListener('message', (e) => window.__received.push(typeof e.data === 'string' ? e.data : new TextDecoder().decode(e.data)));
  window.__sockets.push(ws);
  return ws;
};
Object.assign(window.WebSocket, Native);
window.WebSocket.prototype = Native.prototype;
"""


def make_driver():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--mute-audio", "--window-size=1280,800"]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORDER})
    return driver


def wait_until(driver, predicate, timeout=20, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.1)
    logs = "\n".join(entry["message"] for entry in driver.get_log("browser")[-20:])
    raise AssertionError(f"timed out waiting for {what}; last={last!r}\n--- browser console ---\n{logs}")


@pytest.fixture(scope="module")
def hub():
    with tempfile.TemporaryDirectory(prefix="livehub-i22-web-") as directory:
        server = LiveHubProcess(Path(directory) / "data").start()
        yield server
        server.stop()


def open_watch(hub, room_id):
    driver = make_driver()
    driver.get(f"{hub.base}/watch/{room_id}")
    wait_until(driver, lambda: driver.execute_script("return document.querySelectorAll('.reaction-button').length") == 5, what="reaction buttons")
    wait_until(driver, lambda: any("CONNECTED" in m for m in driver.execute_script("return window.__received")), what="STOMP connected")
    return driver


def test_a_reaction_clicked_on_one_page_floats_on_another(hub):
    room = hub.create_room("browser reactions")
    alice, bob = open_watch(hub, room["id"]), open_watch(hub, room["id"])
    try:
        time.sleep(0.5)  # both subscribed
        for _ in range(3):
            alice.find_element(By.CSS_SELECTOR, ".reaction-button[data-type='fire']").click()
        wait_until(bob, lambda: bob.execute_script("return document.querySelector('.reaction-total').textContent") == "3", what="3 reactions summed at bob")
        assert bob.execute_script("return document.querySelectorAll('.reaction-float[data-type=\"fire\"]').length") >= 1
        windows = [m for m in bob.execute_script("return window.__received") if "/reactions" in m and "MESSAGE" in m]
        assert 1 <= len(windows) <= 3, windows
    finally:
        alice.quit()
        bob.quit()


def test_the_watch_page_recovers_the_chat_it_missed_while_offline(hub):
    room = hub.create_room("browser recovery")
    rid = room["id"]
    owner = StompWS(f"ws://127.0.0.1:{hub.http_port}/ws/live", token=hub.tokens["owner"])
    page = open_watch(hub, rid)
    try:
        texts = lambda: page.execute_script("return Array.from(document.querySelectorAll('#chat .chat-line .chat-text')).map(e => e.textContent)")  # noqa: E731
        owner.send_json(f"/app/live/{rid}/chat", {"message": "seen live"})
        wait_until(page, lambda: "seen live" in texts(), what="the live line")
        page.execute_script("window.__offline = true; for (const s of window.__sockets) s.close();")
        time.sleep(0.5)
        for i in range(3):
            owner.send_json(f"/app/live/{rid}/chat", {"message": f"while offline {i}"})
            time.sleep(0.25)
        page.execute_script("window.__offline = false;")
        wait_until(page, lambda: all(f"while offline {i}" in texts() for i in range(3)), timeout=30, what="the missed lines")
        shown = texts()
        assert shown[-4:] == ["seen live", "while offline 0", "while offline 1", "while offline 2"], shown
        resubscribe = [f for f in page.execute_script("return window.__sent") if f.startswith("SUBSCRIBE") and f"/topic/live/{rid}/chat" in f and "recover-offset" in f]
        assert resubscribe, "stomp.js re-subscribed with its last offset"
        assert any("recovered:true" in m for m in page.execute_script("return window.__received")), "the hub answered recovered:true"
    finally:
        page.quit()
        owner.close()
