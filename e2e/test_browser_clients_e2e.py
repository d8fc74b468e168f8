"""The bell's client as front ends ship it, in a real headless Chromium, with its default options,
against the real binary, from a page on another http origin (as a shop's site is):
socket.io-client v4.8.1 (`io(url, {auth})`, nothing else) starts on HTTP long-polling, upgrades to
WebSocket, and gets the bell's pushes; the same client held on polling alone
(`transports: ['polling']`) gets them over polling. The script is socket.io's official bundle
(e2e/browser_clients.py), never part of this repository. (sockjs-client in Chromium, over each
xhr transport: e2e/test_sockjs_fallback_e2e.py.)
"""
import tempfile
import time

import jwt
import pytest
import requests

from browser_clients import serve_pages, socket_io_client_js
from test_web_e2e import make_driver, wait_until

SOCKET_IO_PAGE = """<!doctype html><meta charset="utf-8"><title>bell</title>
<script src="socket.io.min.js"></script>
<script>
  const params = new URLSearchParams(location.search);
  window.events = [];
  const options = {auth: {token: params.get('token')}};
  if (params.get('transports')) options.transports = params.get('transports').split(',');
  const socket = io(params.get('hub'), options);
  socket.io.on('open', () => {
    window.events.push({open: socket.io.engine.transport.name});
    socket.io.engine.on('upgrade', (transport) => window.events.push({upgrade: transport.name}));
  });
  socket.on('connect', () => window.events.push({connect: socket.id, transport: socket.io.engine.transport.name}));
  socket.on('connect_error', (error) => window.events.push({error: error.message}));
  socket.on('notification:new', (message) => window.events.push({notification: message.title, transport: socket.io.engine.transport.name}));
  window.transport = () => socket.io.engine && socket.io.engine.transport.name;
</script>"""

@pytest.fixture(scope="module")
def pages():
    with tempfile.TemporaryDirectory(prefix="livehub-pages-") as directory:
        origin, server = serve_pages(directory, {
            "bell.html": SOCKET_IO_PAGE, "socket.io.min.js": socket_io_client_js(),
        })
        try:
            yield origin
        finally:
            server.shutdown()


@pytest.fixture(scope="module")
def browser():
    driver = make_driver()
    try:
        yield driver
    finally:
        driver.quit()


def push(hub, user_id, title):
    response = requests.post(f"{hub.base}/internal/notifications", json={"userId": user_id, "type": "INFO", "title": title},
                             headers={"Authorization": f"Bearer {hub.tokens['internal']}"})
    assert response.status_code == 201, response.text


def user_id(token):
    claims = jwt.decode(token, options={"verify_signature": False})
    return claims.get("userId") or claims["sub"]


def events(driver):
    return driver.execute_script("return window.events")


def test_socket_io_client_with_default_options_polls_then_upgrades_and_gets_pushes(livehub, pages, browser):
    token = livehub.tokens["viewer"]
    browser.get(f"{pages}/bell.html?hub={livehub.base}&token={token}")
    wait_until(lambda: any("connect" in e for e in events(browser)), what="connect", driver=browser)
    opened = [e["open"] for e in events(browser) if "open" in e]
    assert opened == ["polling"], events(browser)
    wait_until(lambda: any(e.get("upgrade") == "websocket" for e in events(browser)), what="upgrade to websocket", driver=browser)
    push(livehub, user_id(token), "after the upgrade")
    got = wait_until(lambda: [e for e in events(browser) if "notification" in e], what="a push", driver=browser)
    assert got == [{"notification": "after the upgrade", "transport": "websocket"}]
    assert not [e for e in events(browser) if "error" in e]


def test_socket_io_client_held_on_polling_gets_pushes(livehub, pages, browser):
    token = livehub.tokens["viewer"]
    browser.get(f"{pages}/bell.html?hub={livehub.base}&token={token}&transports=polling")
    wait_until(lambda: any("connect" in e for e in events(browser)), what="connect", driver=browser)
    for title in ("first over polling", "second over polling"):
        push(livehub, user_id(token), title)
    got = wait_until(lambda: len([e for e in events(browser) if "notification" in e]) >= 2 and
                     [e for e in events(browser) if "notification" in e], what="two pushes", driver=browser)
    assert got == [{"notification": "first over polling", "transport": "polling"},
                   {"notification": "second over polling", "transport": "polling"}]
    time.sleep(1)
    assert browser.execute_script("return window.transport()") == "polling"
