"""Issue 17 §5 end to end: nothing acknowledged is lost. An order answered 201 and a chat line
already broadcast are in the SQLite file (synchronous=FULL, WAL) when the process dies with
SIGKILL right after; `/callback/end` does not end a room whose publisher is still streaming."""
import signal
import time

import requests

from conftest import BACKEND
from media import publish, stop
from stomp_client import StompWS


def test_an_order_answered_201_and_a_broadcast_chat_survive_kill_9(make_livehub):
    first = make_livehub().start()
    durability = "synchronous=FULL" if BACKEND == "sqlite" else "(PostgreSQL, pool of"
    assert durability in first.output(), "the banner names the storage and its durability setting"
    room = first.create_room("durable shop")
    api = f"{first.api}/rooms/{room['id']}"
    product = requests.post(f"{api}/products", json={"productId": "tea", "livePrice": 9.5, "productName": "Tea"}, headers=first.headers())
    assert product.status_code == 201, product.text
    chat_topic = f"/topic/live/{room['id']}/chat"
    observer = StompWS(f"ws://127.0.0.1:{first.http_port}/ws/live")
    viewer = StompWS(f"ws://127.0.0.1:{first.http_port}/ws/live", token=first.tokens["viewer"])
    try:
        observer.subscribe(chat_topic, "obs", receipt="ready")
        viewer.send_json(f"/app/live/{room['id']}/chat", {"message": "said just before the crash"})
        broadcast = observer.messages(chat_topic, 1)[0][1]
        assert broadcast["message"] == "said just before the crash"
        order = {"orderId": "crash-1", "roomId": room["id"], "userId": "u1", "username": "kim", "productId": "tea",
                 "productName": "Tea", "amount": 9.5}
        internal = {"Authorization": f"Bearer {first.tokens['internal']}"}
        answered = requests.post(f"{first.api}/orders", json=order, headers=internal)
        assert answered.status_code == 201, answered.text
        first.stop(signal.SIGKILL)  # no graceful shutdown, no checkpoint: only what was committed
    finally:
        observer.close()
        viewer.close()
    assert first.proc.returncode == -signal.SIGKILL

    second = make_livehub().start()
    history = requests.get(f"{second.api}/rooms/{room['id']}/chats").json()
    assert [(line["type"], line["message"]) for line in history] == [
        ("CHAT", "said just before the crash"), ("ORDER", "kim just bought Tea!")]
    assert history[0]["id"] == broadcast["id"]
    stats = requests.get(f"{second.api}/rooms/{room['id']}/stats").json()
    assert stats["totalOrders"] == 1 and stats["totalRevenue"] == 9.5
    assert requests.get(f"{second.api}/rooms/{room['id']}/products").json()[0]["soldCount"] == 1
    again = requests.post(f"{second.api}/orders", json=order, headers={"Authorization": f"Bearer {second.tokens['internal']}"})
    assert again.status_code == 200 and again.json()["applied"] is False, "the order id was remembered too"


def test_callback_end_while_the_publisher_streams_leaves_the_room_live(make_livehub):
    hub = make_livehub(env={"LIVEHUB_RECONNECT_GRACE": "2"}).start()
    room = hub.create_room("still streaming")
    ffmpeg = publish(hub.rtmp_url(room["streamKey"]))
    try:
        hub.wait_for(lambda: hub.room(room["id"])["status"] == "LIVE", what="LIVE")
        # nginx-rtmp's on_publish_done shape: a form body from a loopback caller.
        done = requests.post(f"{hub.api}/callback/end", data={"call": "publish_done", "app": "live", "name": room["streamKey"]})
        assert done.status_code == 200, done.text
        assert "still connected" in done.text
        assert "on_publish_done ignored: the room's RTMP publisher is still connected" in hub.output()
        time.sleep(3.5)  # longer than the reconnect grace
        state = hub.room(room["id"])
        assert state["status"] == "LIVE" and not state["reconnecting"]
        assert ffmpeg.poll() is None, "the publisher keeps streaming"
    finally:
        stop(ffmpeg)
    # Once the publisher is really gone, the same callback is an ordinary on_publish_done.
    hub.wait_for(lambda: hub.room(room["id"])["reconnecting"], what="reconnecting after the publisher left")
    gone = requests.post(f"{hub.api}/callback/end?name={room['streamKey']}")
    assert gone.status_code == 200 and gone.text == "OK"
    hub.wait_for(lambda: hub.room(room["id"])["status"] == "ENDED", timeout=10, what="ENDED after the grace")
    assert room["streamKey"] not in hub.output()
