"""Browser tests of the web pages (studio `/`, viewer `/watch/{roomId}`, `/rooms`) in real headless
Chromium driven by selenium, against the real `livehub` binary and a real ffmpeg RTMP publisher.

The tests of this module run in order and share one server, one room and the browsers: the studio
creates the room through its UI, ffmpeg publishes with the key the studio shows, two viewers (two
separate browser profiles, two dev users) watch, chat, see the featured product, order toasts and the
bell. Screenshots go to e2e/artifacts/; with UPDATE_SCREENSHOTS=1 the README's copies in
docs/screenshots/ are refreshed too (a normal test run never writes into committed files).
"""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests

from conftest import REPO, LiveHubProcess
from media import publish, stop

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import NoAlertPresentException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM_BIN", shutil.which("chromium") or "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", shutil.which("chromedriver") or "/usr/bin/chromedriver")
ARTIFACTS = REPO / "e2e" / "artifacts"
DOCS_SCREENSHOTS = REPO / "docs" / "screenshots"
XSS = "<img src=x onerror=alert(1)>"

pytestmark = pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()), reason="chromium / chromedriver not installed")


def make_driver(width=1280, height=800, mobile=False):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required",
                     "--mute-audio", f"--window-size={width},{height}", "--hide-scrollbars", "--force-device-scale-factor=1"]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.set_capability("unhandledPromptBehavior", "ignore")
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    # The viewport itself (not the window) gets the size, so screenshots are exactly width x height.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
    return driver


def wait_until(predicate, timeout=20, interval=0.2, what="condition", driver=None):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = predicate()
        except WebDriverException as error:
            last = error
            if "alert" in str(error).lower():
                raise
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    logs = ""
    if driver is not None:
        try:
            logs = "\n".join(entry["message"] for entry in driver.get_log("browser")[-20:])
        except WebDriverException:
            pass
    raise AssertionError(f"timed out waiting for {what}; last={last!r}\n--- browser console ---\n{logs}")


def js(driver, script, *args):
    return driver.execute_script(script, *args)


def visible(driver, selector):
    return js(driver, "const e = document.querySelector(arguments[0]); return !!e && !e.closest('.hidden') && e.getClientRects().length > 0;", selector)


def click(driver, selector):
    driver.find_element(By.CSS_SELECTOR, selector).click()


def fill(driver, selector, text):
    element = driver.find_element(By.CSS_SELECTOR, selector)
    element.clear()
    element.send_keys(text)


def jwt_claims(token):
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def save_screenshot(driver, name, docs_name=None):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000, f"{name} looks empty"
    if docs_name:
        target = ARTIFACTS / f"docs-{docs_name}"
        try:
            shrink_png(path, target)  # what the README shows: a 256-colour PNG is a third of the size
        except (OSError, subprocess.CalledProcessError):
            shutil.copyfile(path, target)
        assert target.stat().st_size < 300_000, f"{target} is {target.stat().st_size} bytes"
        if os.environ.get("UPDATE_SCREENSHOTS") == "1":
            DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(target, DOCS_SCREENSHOTS / docs_name)
    return path


def shrink_png(source, target):
    """Re-encodes a screenshot as a 256-colour PNG with ffmpeg (no PIL in the test venv)."""
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(source), "-vf",
                    "split[a][b];[a]palettegen=max_colors=256:stats_mode=full[p];[b][p]paletteuse=dither=sierra2_4a",
                    "-frames:v", "1", str(target)], check=True)


def console_errors(driver):
    try:
        return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]
    except WebDriverException:
        return []


class Web:
    def __init__(self, hub):
        self.hub = hub
        self.drivers = {}
        self.publisher = None
        self.room_id = None
        self.stream_key = None
        self.owner_token = None

    def driver(self, name, **kwargs):
        if name not in self.drivers:
            self.drivers[name] = make_driver(**kwargs)
        return self.drivers[name]

    @property
    def studio(self):
        return self.driver("studio")

    @property
    def alice(self):
        return self.driver("alice")

    @property
    def bob(self):
        return self.driver("bob")

    def watch_url(self, query=""):
        return f"{self.hub.base}/watch/{self.room_id}{query}"


@pytest.fixture(scope="module")
def web():
    with tempfile.TemporaryDirectory(prefix="livehub-web-") as directory:
        hub = LiveHubProcess(Path(directory) / "data").start()
        state = Web(hub)
        try:
            yield state
        finally:
            for driver in state.drivers.values():
                try:
                    driver.quit()
                except Exception:
                    pass
            if state.publisher:
                stop(state.publisher)
            hub.stop()


def need_room(web):
    if not web.room_id:
        pytest.skip("the studio test did not create a room")


# --------------------------------------------------------------------------------------------

def test_studio_creates_room_and_shows_key(web):
    hub, studio = web.hub, web.studio
    studio.get(hub.base + "/")
    wait_until(lambda: visible(studio, "#signin"), what="the sign-in card", driver=studio)
    click(studio, "#dev-owner")
    wait_until(lambda: visible(studio, "#workspace"), what="the studio workspace", driver=studio)
    fill(studio, "#room-title", "Spring sale — live from the studio")
    fill(studio, "#room-description", "New arrivals, live prices for 30 minutes only.")
    click(studio, "#create-room")
    key = wait_until(lambda: studio.find_element(By.CSS_SELECTOR, "#stream-key").get_attribute("value"), what="the stream key", driver=studio)
    key_input = studio.find_element(By.CSS_SELECTOR, "#stream-key")
    assert key_input.get_attribute("type") == "password", "the key must be hidden by default"
    click(studio, "#toggle-key")
    assert key_input.get_attribute("type") == "text"
    click(studio, "#toggle-key")
    assert key_input.get_attribute("type") == "password"
    # Rotating (allowed before going live) shows a new key.
    click(studio, "#rotate-key")
    new_key = wait_until(lambda: (lambda v: v if v != key else None)(key_input.get_attribute("value")), what="the rotated key", driver=studio)
    key = new_key
    rtmp_url = studio.find_element(By.CSS_SELECTOR, "#rtmp-url").get_attribute("value")
    assert f"{rtmp_url}/{key}" == hub.rtmp_url(key)
    obs = studio.find_element(By.CSS_SELECTOR, ".obs").text
    assert "Keyframe interval" in obs and "2 s" in obs and "CBR" in obs

    web.owner_token = js(studio, "return localStorage.getItem('livehub.ownerToken')")
    assert "SHOP_OWNER" in jwt_claims(web.owner_token)["roles"]
    mine = requests.get(f"{hub.api}/rooms/mine", headers={"Authorization": f"Bearer {web.owner_token}"}).json()
    mine = mine if isinstance(mine, list) else mine["items"]
    room = next(r for r in mine if r.get("streamKey") == key)
    assert room["title"] == "Spring sale — live from the studio"
    web.room_id, web.stream_key = room["id"], key
    assert studio.find_element(By.CSS_SELECTOR, "#watch-link").get_attribute("href").endswith(f"/watch/{room['id']}")
    assert studio.find_element(By.CSS_SELECTOR, "#room-status").text.strip().lower() == "not started"


def test_studio_adds_products(web):
    need_room(web)
    studio = web.studio
    for product_id, name, price, original, stock in [("sku-1", "Cashmere Scarf", "39.90", "79.90", "25"), ("sku-2", "Linen Shirt", "29.00", "49.00", "40"), ("sku-3", "Canvas Tote", "12.50", "", "")]:
        fill(studio, "#p-id", product_id)
        fill(studio, "#p-name", name)
        fill(studio, "#p-price", price)
        if original:
            fill(studio, "#p-original", original)
        if stock:
            fill(studio, "#p-stock", stock)
        click(studio, "#add-product")
        wait_until(lambda: studio.find_elements(By.CSS_SELECTOR, f"#studio-products li[data-product-id='{product_id}']"), what=f"product {product_id} in the studio", driver=studio)
    products = requests.get(f"{web.hub.api}/rooms/{web.room_id}/products").json()
    assert [p["productId"] for p in products] == ["sku-1", "sku-2", "sku-3"]
    assert products[0]["discountPercent"] == 50.06, "39.90 of 79.90: to 2 decimals, rounded half up (issue 19)"
    # Remove one through the UI.
    studio.find_element(By.CSS_SELECTOR, "#studio-products li[data-product-id='sku-3'] .remove-btn").click()
    wait_until(lambda: not studio.find_elements(By.CSS_SELECTOR, "#studio-products li[data-product-id='sku-3']"), what="sku-3 removed", driver=studio)
    assert [p["productId"] for p in requests.get(f"{web.hub.api}/rooms/{web.room_id}/products").json()] == ["sku-1", "sku-2"]


def test_watch_page_waits_then_plays_when_published(web):
    need_room(web)
    hub, studio, alice, bob = web.hub, web.studio, web.alice, web.bob
    # Before the stream: the viewer page says so.
    alice.get(web.watch_url())
    wait_until(lambda: js(alice, "return document.querySelector('#status-badge').dataset.status") == "pending", what="waiting status", driver=alice)
    assert visible(alice, "#status-banner")
    assert visible(alice, "#chat-guest") and not visible(alice, "#chat-form"), "guests see a sign-in prompt instead of the chat box"
    save_screenshot(alice, "watch-waiting.png")
    assert "Spring sale" in alice.find_element(By.CSS_SELECTOR, "#room-title").text
    # Bob uses our own MSE player explicitly (alice gets the automatic choice).
    bob.get(web.watch_url("?player=mse"))

    rtmp_url = studio.find_element(By.CSS_SELECTOR, "#rtmp-url").get_attribute("value")
    web.publisher = publish(f"{rtmp_url}/{web.stream_key}")
    assert f"{rtmp_url}/{web.stream_key}" == hub.rtmp_url(web.stream_key)

    for name, driver in [("alice", alice), ("bob", bob)]:
        wait_until(lambda: js(driver, "return document.querySelector('#status-badge').dataset.status") == "live", timeout=20, what=f"{name}: status live", driver=driver)
        assert js(driver, "return document.querySelector('#status-banner').dataset.kind") == "live"  # "The live stream has started", for a few seconds
    for name, driver in [("alice", alice), ("bob", bob)]:
        first = wait_until(lambda: js(driver, "const v = document.querySelector('#video'); return v.currentTime > 0.5 && !v.paused ? v.currentTime : 0"),
                           timeout=30, what=f"{name}: video playing", driver=driver)
        time.sleep(1.5)
        later = js(driver, "return document.querySelector('#video').currentTime")
        assert later > first + 0.5, f"{name}: currentTime does not advance ({first} → {later})"
        assert not visible(driver, "#overlay"), f"{name}: the overlay should be gone while playing"
    assert js(bob, "return document.querySelector('#video').dataset.player") == "mse"
    print("automatic player choice in this Chromium:", js(alice, "return document.querySelector('#video').dataset.player"))
    assert js(bob, "return document.querySelector('#video').videoWidth") == 640

    # The studio follows: live status, a playing preview, viewers counted over the hub.
    wait_until(lambda: studio.find_element(By.CSS_SELECTOR, "#stat-status").text.strip().lower() == "live", what="studio: live", driver=studio)
    wait_until(lambda: js(studio, "return document.querySelector('#preview').currentTime") > 0.5, timeout=30, what="studio preview playing", driver=studio)
    wait_until(lambda: int(studio.find_element(By.CSS_SELECTOR, "#stat-viewers").text) >= 2, what="studio: viewers counted", driver=studio)
    wait_until(lambda: int(js(alice, "return document.querySelector('#viewer-count').dataset.count")) >= 2, what="viewer count on the watch page", driver=alice)


def sign_in_viewer(driver, name):
    click(driver, "#sign-in-open")
    wait_until(lambda: visible(driver, "#signin-dialog"), what="sign-in dialog", driver=driver)
    fill(driver, "#dev-name", name)
    click(driver, "#dev-viewer")
    wait_until(lambda: visible(driver, "#chat-form"), what=f"{name}: chat form after sign-in", driver=driver)
    wait_until(lambda: js(driver, "return document.querySelector('#conn-state').dataset.state") == "live", what=f"{name}: hub connected", driver=driver)
    token = js(driver, "return localStorage.getItem('livehub.viewerToken')")
    assert token and jwt_claims(token)["username"] == name
    return jwt_claims(token)


def chat_texts(driver):
    return js(driver, "return Array.from(document.querySelectorAll('#chat .chat-line .chat-text')).map(e => e.textContent)")


def send_chat(driver, text):
    box = driver.find_element(By.CSS_SELECTOR, "#chat-input")
    box.clear()
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


def test_chat_between_two_browsers(web):
    need_room(web)
    alice, bob = web.alice, web.bob
    web.alice_claims = sign_in_viewer(alice, "alice")
    web.bob_claims = sign_in_viewer(bob, "bob")
    assert web.alice_claims["userId"] != web.bob_claims["userId"]
    send_chat(alice, "Hi! Does the scarf come in blue?")
    wait_until(lambda: "Hi! Does the scarf come in blue?" in chat_texts(bob), what="alice's chat at bob", driver=bob)
    send_chat(bob, "It does — grabbed one already")
    wait_until(lambda: "It does — grabbed one already" in chat_texts(alice), what="bob's chat at alice", driver=alice)
    names = js(bob, "return Array.from(document.querySelectorAll('#chat .chat-name')).map(e => e.textContent)")
    assert "alice" in names and "bob" in names
    # The studio sees the chat too.
    wait_until(lambda: "Hi! Does the scarf come in blue?" in js(web.studio, "return document.querySelector('#studio-chat').textContent"), what="chat in the studio", driver=web.studio)
    # The page survived a reload with the stored token (still signed in).
    assert js(alice, "return localStorage.getItem('livehub.viewerToken')")


def test_featuring_a_product_in_the_studio_highlights_it(web):
    need_room(web)
    studio, alice, bob = web.studio, web.alice, web.bob
    wait_until(lambda: len(alice.find_elements(By.CSS_SELECTOR, "#products .product-card")) == 2, what="products on the watch page", driver=alice)
    assert not alice.find_elements(By.CSS_SELECTOR, "#products .product-card.featured")
    studio.find_element(By.CSS_SELECTOR, "#studio-products li[data-product-id='sku-2'] .feature-btn").click()
    for driver in (alice, bob):
        wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "#products .product-card.featured[data-product-id='sku-2']"), what="sku-2 highlighted", driver=driver)
        assert len(driver.find_elements(By.CSS_SELECTOR, "#products .product-card.featured")) == 1
    card = alice.find_element(By.CSS_SELECTOR, "#products .product-card[data-product-id='sku-2']")
    assert "$29.00" in card.text and "$49.00" in card.text and "-41%" in card.text and "Linen Shirt" in card.text
    wait_until(lambda: "Featured" in studio.find_element(By.CSS_SELECTOR, "#studio-products li[data-product-id='sku-2'] .feature-btn").text, what="studio shows featured", driver=studio)
    # Feature another one: the highlight moves.
    studio.find_element(By.CSS_SELECTOR, "#studio-products li[data-product-id='sku-1'] .feature-btn").click()
    wait_until(lambda: alice.find_elements(By.CSS_SELECTOR, "#products .product-card.featured[data-product-id='sku-1']"), what="sku-1 highlighted", driver=alice)
    assert len(alice.find_elements(By.CSS_SELECTOR, "#products .product-card.featured")) == 1


def post_order(web, username, product_id, product_name, amount):
    order = {"orderId": f"order-{uuid.uuid4().hex[:8]}", "roomId": web.room_id, "userId": f"buyer-{username}", "username": username,
             "productId": product_id, "productName": product_name, "amount": amount, "timestamp": "2026-01-01T00:00:00Z"}
    response = requests.post(f"{web.hub.api}/orders", json=order, headers={"Authorization": f"Bearer {web.hub.tokens['internal']}"})
    assert response.status_code in (200, 201), response.text


def test_order_shows_a_toast(web):
    need_room(web)
    alice = web.alice
    post_order(web, "carol", "sku-1", "Cashmere Scarf", 39.9)
    toast = wait_until(lambda: js(alice, "const t = document.querySelector('#order-toasts .order-toast'); return t && t.textContent"), what="order toast", driver=alice)
    assert "carol" in toast and "Cashmere Scarf" in toast
    wait_until(lambda: any("carol" in t for t in js(alice, "return Array.from(document.querySelectorAll('#chat .chat-order')).map(e => e.textContent)")), what="order line in chat", driver=alice)
    # The studio's figures follow: one order, its revenue, the product's sold count.
    studio = web.studio
    wait_until(lambda: studio.find_element(By.CSS_SELECTOR, "#stat-orders").text == "1", what="studio orders = 1", driver=studio)
    assert studio.find_element(By.CSS_SELECTOR, "#stat-revenue").text == "$39.90"
    wait_until(lambda: "1 sold" in alice.find_element(By.CSS_SELECTOR, "#products .product-card[data-product-id='sku-1']").text, what="sold count on the card", driver=alice)
    save_screenshot(alice, "watch-order-toast.png")


def test_chat_markup_is_shown_as_text(web):
    need_room(web)
    alice, bob = web.alice, web.bob
    js(bob, "window.__alerts = 0; window.alert = () => { window.__alerts++; };")
    send_chat(alice, XSS)
    for driver in (bob, alice):
        wait_until(lambda: XSS in chat_texts(driver), what="the markup shown literally", driver=driver)
        assert js(driver, "return document.querySelectorAll('#chat img').length") == 0
        assert js(driver, "return document.querySelectorAll('img[src=\"x\"]').length") == 0
        try:
            driver.switch_to.alert
            raise AssertionError("an alert fired")
        except NoAlertPresentException:
            pass
    time.sleep(0.3)
    assert js(bob, "return window.__alerts") == 0


def test_bell_badge_updates(web):
    need_room(web)
    hub, alice = web.hub, web.alice
    wait_until(lambda: visible(alice, "#bell"), what="the bell", driver=alice)
    assert not visible(alice, "#bell-badge")
    time.sleep(0.5)  # the Socket.IO handshake of the freshly signed-in page
    for number in (1, 2):
        response = requests.post(f"{hub.base}/internal/notifications", json={"userId": web.alice_claims["userId"], "type": "ORDER_SHIPPED",
                                                                             "title": f"Order #{number} shipped", "body": "It is on its way <b>today</b>."},
                                 headers={"Authorization": f"Bearer {hub.tokens['internal']}"})
        assert response.status_code == 201, response.text
        wait_until(lambda: visible(alice, "#bell-badge") and alice.find_element(By.CSS_SELECTOR, "#bell-badge").text == str(number), what=f"bell badge {number}", driver=alice)
    # Bob (another user) got nothing.
    assert not visible(web.bob, "#bell-badge")
    # Open the bell: the list shows both; mark one read over Socket.IO, then all.
    click(alice, "#bell-button")
    wait_until(lambda: len(alice.find_elements(By.CSS_SELECTOR, "#bell-list .bell-item")) == 2, what="two notifications listed", driver=alice)
    assert "It is on its way <b>today</b>." in alice.find_element(By.CSS_SELECTOR, "#bell-list").text
    save_screenshot(alice, "watch-bell.png")
    alice.find_element(By.CSS_SELECTOR, "#bell-list .bell-item.unread button").click()
    wait_until(lambda: alice.find_element(By.CSS_SELECTOR, "#bell-badge").text == "1", what="badge 1 after reading one", driver=alice)
    click(alice, "#read-all")
    wait_until(lambda: not visible(alice, "#bell-badge"), what="badge cleared", driver=alice)
    alice_token = js(alice, "return localStorage.getItem('livehub.viewerToken')")
    assert requests.get(f"{hub.base}/v1/notifications/unread-count", headers={"Authorization": f"Bearer {alice_token}"}).json()["count"] == 0
    click(alice, "#bell-button")  # close


def test_rooms_page_lists_live_rooms_with_thumbnails(web):
    need_room(web)
    driver = web.bob
    driver.get(f"{web.hub.base}/rooms")

    def thumbnail_loaded():
        cards = driver.find_elements(By.CSS_SELECTOR, f"#live-rooms .room-card[data-room-id='{web.room_id}']")
        if not cards:
            return False
        loaded = js(driver, "const i = arguments[0].querySelector('img'); return !!i && i.complete && i.naturalWidth > 0", cards[0])
        if not loaded:
            driver.refresh()
        return loaded

    wait_until(thumbnail_loaded, timeout=30, interval=2, what="room card with a thumbnail", driver=driver)
    card = driver.find_element(By.CSS_SELECTOR, f"#live-rooms .room-card[data-room-id='{web.room_id}']")
    assert "Spring sale" in card.text and "LIVE" in card.text
    assert web.stream_key not in driver.page_source
    save_screenshot(driver, "rooms.png")
    card.find_element(By.CSS_SELECTOR, "a").click()
    wait_until(lambda: driver.current_url.endswith(f"/watch/{web.room_id}"), what="card opens the watch page", driver=driver)


def clear_toasts(driver):
    js(driver, "document.querySelectorAll('#toasts .toast').forEach(t => t.remove())")


def test_screenshots_and_phone_width(web):
    need_room(web)
    studio, alice = web.studio, web.alice
    clear_toasts(studio)
    clear_toasts(alice)
    js(studio, "window.scrollTo(0, 0)")
    time.sleep(0.5)
    save_screenshot(studio, "studio.png", "studio.png")
    js(alice, "window.scrollTo(0, 0)")
    wait_until(lambda: js(alice, "return document.querySelector('#video').currentTime") > 1, what="alice still playing", driver=alice)
    post_order(web, "dave", "sku-2", "Linen Shirt", 29.0)
    wait_until(lambda: "dave" in (js(alice, "const t = document.querySelector('#order-toasts .order-toast:last-child'); return t && t.textContent") or ""), what="dave's order toast", driver=alice)
    time.sleep(0.4)  # the toast's slide-in
    save_screenshot(alice, "watch.png", "watch.png")

    phone = web.driver("phone", width=390, height=844, mobile=True)
    phone.get(f"{web.hub.base}/")
    js(phone, "localStorage.setItem('livehub.ownerToken', arguments[0]); localStorage.setItem('livehub.viewerToken', arguments[0])", web.owner_token)
    for name, path in [("watch", f"/watch/{web.room_id}"), ("studio", f"/#room={web.room_id}"), ("rooms", "/rooms")]:
        phone.get(f"{web.hub.base}{path}")
        if name == "watch":
            wait_until(lambda: js(phone, "return document.querySelector('#video').currentTime") > 0.5, timeout=30, what="phone: video playing", driver=phone)
        elif name == "studio":
            wait_until(lambda: phone.find_element(By.CSS_SELECTOR, "#stream-key").get_attribute("value"), what="phone: studio room", driver=phone)
        else:
            wait_until(lambda: phone.find_elements(By.CSS_SELECTOR, "#live-rooms .room-card"), what="phone: rooms", driver=phone)
        time.sleep(0.5)
        width = js(phone, "return [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[1] == 390
        assert width[0] <= width[1], f"{name} overflows horizontally at phone width: {width}"
        save_screenshot(phone, f"{name}-phone.png")

    # Signing in to the studio with the token `livehub` prints at start-up (pasted).
    js(phone, "localStorage.clear()")
    phone.get(f"{web.hub.base}/")
    wait_until(lambda: visible(phone, "#signin"), what="phone: sign-in card", driver=phone)
    fill(phone, "#token-input", web.hub.tokens["owner"])
    phone.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
    wait_until(lambda: visible(phone, "#workspace") and visible(phone, "#no-rooms"), what="phone: studio with the printed owner token", driver=phone)
    assert js(phone, "return document.documentElement.scrollWidth <= window.innerWidth")


def test_publisher_drop_shows_reconnecting_then_resumes(web):
    need_room(web)
    studio, alice, bob = web.studio, web.alice, web.bob
    bob.get(web.watch_url("?player=mse"))
    wait_until(lambda: js(bob, "return document.querySelector('#video').currentTime") > 0.5, timeout=30, what="bob playing again", driver=bob)
    stop(web.publisher)
    for name, driver in [("alice", alice), ("bob", bob)]:
        wait_until(lambda: js(driver, "return document.querySelector('#status-badge').dataset.status") == "reconnecting", timeout=20, what=f"{name}: reconnecting", driver=driver)
        assert "reconnecting" in driver.find_element(By.CSS_SELECTOR, "#status-banner").text.lower()
    wait_until(lambda: studio.find_element(By.CSS_SELECTOR, "#stat-status").text.strip().lower() == "reconnecting", what="studio: reconnecting", driver=studio)
    save_screenshot(alice, "watch-reconnecting.png")
    before = {name: js(d, "return document.querySelector('#video').currentTime") for name, d in [("alice", alice), ("bob", bob)]}
    web.publisher = publish(web.hub.rtmp_url(web.stream_key))
    for name, driver in [("alice", alice), ("bob", bob)]:
        wait_until(lambda: js(driver, "return document.querySelector('#status-badge').dataset.status") == "live", timeout=20, what=f"{name}: live again", driver=driver)
        banner = driver.find_element(By.CSS_SELECTOR, "#status-banner")
        assert not banner.is_displayed() or js(driver, "return arguments[0].dataset.kind", banner) == "live", banner.text
    # Our MSE player crosses the discontinuity (new init section) and keeps playing.
    wait_until(lambda: js(bob, "const v = document.querySelector('#video'); return !v.paused && v.currentTime > arguments[0] + 2", before["bob"]),
               timeout=30, what="bob (MSE) playing after the reconnect", driver=bob)
    wait_until(lambda: js(alice, "const v = document.querySelector('#video'); return !v.paused && v.currentTime > arguments[0] + 2", before["alice"]),
               timeout=30, what="alice (auto player) playing after the reconnect", driver=alice)


def test_ending_the_show_shows_stats(web):
    need_room(web)
    studio, alice = web.studio, web.alice
    click(studio, "#end-room")
    assert "again" in studio.find_element(By.CSS_SELECTOR, "#end-room").text
    click(studio, "#end-room")
    wait_until(lambda: js(alice, "return document.querySelector('#status-badge').dataset.status") == "ended", what="ended on the watch page", driver=alice)
    banner = wait_until(lambda: visible(alice, "#status-banner") and alice.find_element(By.CSS_SELECTOR, "#status-banner").text, what="ended banner", driver=alice)
    assert "ended" in banner and "2 orders" in banner, banner
    assert visible(alice, "#overlay") and "ended" in alice.find_element(By.CSS_SELECTOR, "#overlay").text
    wait_until(lambda: studio.find_element(By.CSS_SELECTOR, "#stat-status").text.strip().lower() == "ended", what="studio: ended", driver=studio)
    assert studio.find_element(By.CSS_SELECTOR, "#start-room").get_attribute("disabled") is not None
    save_screenshot(alice, "watch-ended.png")
    for name, driver in web.drivers.items():
        errors = [e for e in console_errors(driver) if "/hls/" not in e and "404" not in e]
        assert not errors, f"{name}: console errors {errors}"
