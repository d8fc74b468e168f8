"""Issue 22 §1 in headless Chromium: the watch page's featured card shows the flash deal's price, a
countdown on the server's clock (the browser's clock is set two hours wrong and the countdown is
still right), "N left", and a Claim button that reserves a unit."""
import re
import tempfile
import time
from pathlib import Path

import pytest
import requests

from conftest import LiveHubProcess
from jwt_helper import sign
from test_web_e2e import CHROMIUM, CHROMEDRIVER, console_errors, js, make_driver, visible, wait_until

pytestmark = pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()), reason="chromium / chromedriver not installed")

# Runs before the page's scripts: the browser believes it is two hours earlier than it is.
SKEWED_CLOCK = "(() => { const real = Date.now.bind(Date); Date.now = () => real() - 2 * 3600 * 1000; })();"


@pytest.fixture
def hub():
    with tempfile.TemporaryDirectory(prefix="livehub-e2e-deals-web-") as directory:
        server = LiveHubProcess(Path(directory) / "data", env={"LIVEHUB_LOG_LEVEL": "warning"}).start()
        try:
            yield server
        finally:
            server.stop()


def text(driver, selector):
    return js(driver, "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", selector)


def test_the_featured_card_counts_down_on_the_server_clock_and_claims(hub):
    room = hub.create_room("deal show")
    api = f"{hub.api}/rooms/{room['id']}"
    product = requests.post(f"{api}/products", headers=hub.headers(),
                            json={"productId": "lamp", "livePrice": 80, "originalPrice": 120, "productName": "Desk Lamp"}).json()
    assert requests.put(f"{api}/products/{product['id']}/feature", headers=hub.headers()).status_code == 200
    secret = (hub.data_dir / "jwt-secret").read_text().strip()
    viewer = sign(secret, {"sub": "web-buyer", "username": "Web Buyer", "roles": ["USER"], "exp": int(time.time()) + 3600})
    driver = make_driver()
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": SKEWED_CLOCK})
        driver.get(f"{hub.base}/rooms")
        js(driver, "localStorage.setItem('livehub.viewerToken', arguments[0])", viewer)
        driver.get(f"{hub.base}/watch/{room['id']}")
        assert js(driver, "return Math.round((Date.now() - new Date().getTime()) / 60000)") == -120, "the page's clock is skewed"
        wait_until(lambda: visible(driver, "#featured-spot"), what="the featured card", driver=driver)
        deal = requests.post(f"{api}/deals", headers=hub.headers(),
                             json={"liveProductId": product["id"], "dealPrice": 49, "quantity": 5, "perBuyerLimit": 2,
                                   "startsInSeconds": 4, "durationSeconds": 30}).json()
        wait_until(lambda: visible(driver, "#featured-spot .deal-box"), timeout=10, what="the deal box", driver=driver)
        assert "49" in text(driver, ".deal-price") and "120" in text(driver, ".deal-original")
        assert text(driver, ".deal-left") == "5 left"
        countdown = text(driver, ".deal-countdown")
        match = re.fullmatch(r"Starts in 0:0(\d)", countdown)
        assert match and 1 <= int(match.group(1)) <= 4, f"a 4 s countdown despite the skewed clock, not {countdown!r}"
        assert js(driver, "return document.querySelector('.deal-claim').disabled") is True, "no claim before the start"
        wait_until(lambda: (text(driver, ".deal-countdown") or "").startswith("Ends in 0:"), timeout=8, what="the start", driver=driver)
        remaining = int(re.fullmatch(r"Ends in 0:(\d\d)", text(driver, ".deal-countdown")).group(1))
        assert 27 <= remaining <= 30, remaining
        wait_until(lambda: js(driver, "return document.querySelector('.deal-claim').disabled") is False, timeout=5, what="claimable", driver=driver)
        driver.find_element("css selector", ".deal-claim").click()
        wait_until(lambda: text(driver, ".deal-left") == "4 left", timeout=5, what="the stock event", driver=driver)
        listed = requests.get(f"{api}/deals").json()[0]
        assert listed["id"] == deal["id"] and listed["remaining"] == 4
        assert not console_errors(driver)
    finally:
        driver.quit()


def test_the_studio_creates_a_deal_on_the_featured_product(hub):
    room = hub.create_room("studio deal")
    api = f"{hub.api}/rooms/{room['id']}"
    product = requests.post(f"{api}/products", headers=hub.headers(), json={"productId": "mug", "livePrice": 20, "productName": "Mug"}).json()
    assert requests.put(f"{api}/products/{product['id']}/feature", headers=hub.headers()).status_code == 200
    driver = make_driver()
    try:
        driver.get(f"{hub.base}/rooms")
        js(driver, "localStorage.setItem('livehub.ownerToken', arguments[0])", hub.tokens["owner"])
        driver.get(f"{hub.base}/#room={room['id']}")
        wait_until(lambda: visible(driver, "#deal-form") and js(driver, "return !document.querySelector('#deal-form button').disabled"),
                   what="the deal form for the featured product", driver=driver)
        assert "Mug" in text(driver, "#deal-target")
        js(driver, """
            const set = (id, v) => { document.querySelector('#' + id).value = v; };
            set('deal-price', '12.5'); set('deal-quantity', '7'); set('deal-per-buyer', '2'); set('deal-starts', '60'); set('deal-duration', '120');
        """)
        driver.find_element("css selector", "#deal-form button").click()
        deals = wait_until(lambda: requests.get(f"{api}/deals").json(), what="the created deal", driver=driver)
        assert [(d["dealPrice"], d["quantity"], d["perBuyerLimit"], d["status"], d["liveProductId"]) for d in deals] == [(12.5, 7, 2, "scheduled", product["id"])]
        # A duration under 10 s: the form refuses it (and so would the server, 400).
        js(driver, "document.querySelector('#deal-duration').value = '5'")
        assert js(driver, "return document.querySelector('#deal-duration').validity.valid") is False
        driver.find_element("css selector", "#deal-form button").click()
        time.sleep(0.5)
        assert len(requests.get(f"{api}/deals").json()) == 1, "an invalid duration created nothing"
        assert not console_errors(driver)
    finally:
        driver.quit()
