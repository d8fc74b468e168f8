"""Issue 22 §4 end to end: recovery after a reconnect. A STOMP subscriber that was away re-subscribes
with `recover-offset` / `recover-epoch` and gets exactly what it missed, in order, then a RECOVERY
marker, then live messages (chat from the database, product and viewers from the history ring);
the bell replays missed notifications to a python-socketio client that gives `lastNotificationId`."""
import json
import threading
import time

import requests
import socketio
import stomp

from stomp_client import StompWS

# A ring of 3 messages per topic: a product gap of 4 is beyond it; chat recovers from the database.
ENV = {"LIVEHUB_HUB_HISTORY_SIZE": "3", "LIVEHUB_BELL_REPLAY_MAX": "3"}


def ws_url(hub):
    return f"ws://127.0.0.1:{hub.http_port}/ws/live"


def topic(room_id, name):
    return f"/topic/live/{room_id}/{name}"


def last_position(messages):
    headers = messages[-1][0]
    return headers["offset"], headers["epoch"]


def recover(client, destination, sub_id, position):
    offset, epoch = position
    client.send_frame("SUBSCRIBE", {"destination": destination, "id": sub_id, "ack": "auto", "recover-offset": offset, "recover-epoch": epoch})


def until_marker(client, destination, timeout=10):
    """MESSAGEs of `destination` up to and including the RECOVERY marker: (missed, marker headers, marker body)."""
    missed = []
    while True:
        _, headers, body = client.expect("MESSAGE", timeout=timeout, where=lambda h, b: h.get("destination") == destination)
        parsed = json.loads(body)
        if "recovered" in headers:
            return missed, headers, parsed
        missed.append((headers, parsed))


def add_product(hub, room_id, n):
    r = requests.post(f"{hub.api}/rooms/{room_id}/products", json={"productId": n, "livePrice": 10 * n, "productName": f"P{n}"}, headers=hub.headers())
    assert r.status_code == 201, r.text


def test_a_subscriber_dropped_for_5_seconds_gets_exactly_what_it_missed_in_order_then_live_ones(make_livehub):
    hub = make_livehub(env=ENV).start()
    room = hub.create_room("recovery")
    rid = room["id"]
    chat, product, viewers = topic(rid, "chat"), topic(rid, "product"), topic(rid, "viewers")
    owner = StompWS(ws_url(hub), token=hub.tokens["owner"])
    witness = StompWS(ws_url(hub))  # stays connected the whole time
    away = StompWS(ws_url(hub))
    try:
        for client in (witness, away):
            client.subscribe(chat, "c")
            client.subscribe(product, "p")
            client.subscribe(viewers, "v", receipt="ready")
        owner.send_json(f"/app/live/{rid}/chat", {"message": "before"})
        add_product(hub, rid, 1)
        seen = {name: away.messages(dest, 1) for name, dest in (("chat", chat), ("product", product))}
        assert seen["chat"][0][1]["message"] == "before"
        assert int(seen["chat"][0][0]["offset"]) > 0 and seen["chat"][0][0]["epoch"]
        witness.messages(chat, 1)
        witness.messages(product, 1)
        away.close()

        # 5 s away: 6 chat lines, 2 products, a viewer joining and leaving.
        joiner = StompWS(ws_url(hub))
        started = time.time()
        for i in range(6):
            owner.send_json(f"/app/live/{rid}/chat", {"message": f"missed {i}"})
            time.sleep(0.3)
        add_product(hub, rid, 2)
        joiner.send_json(f"/app/live/{rid}/join", {})
        add_product(hub, rid, 3)
        joiner.send_json(f"/app/live/{rid}/leave", {})
        missed_chat = witness.messages(chat, 6)
        missed_products = witness.messages(product, 2)
        missed_viewers = witness.messages(viewers, 2)
        time.sleep(max(0, 5 - (time.time() - started)))

        back = StompWS(ws_url(hub))
        recover(back, chat, "c", last_position(seen["chat"]))
        recover(back, product, "p", last_position(seen["product"]))
        got_chat, marker, body = until_marker(back, chat)
        assert [m[1]["message"] for m in got_chat] == [f"missed {i}" for i in range(6)]
        assert [m[0]["offset"] for m in got_chat] == [m[0]["offset"] for m in missed_chat], "the same offsets the live subscriber saw"
        assert marker["recovered"] == "true" and body == {"type": "RECOVERY", "recovered": True, "missed": 6, "offset": got_chat[-1][0]["offset"], "epoch": marker["epoch"]}
        got_products, pmarker, pbody = until_marker(back, product)
        assert [m[1] for m in got_products] == [m[1] for m in missed_products]
        assert pmarker["recovered"] == "true" and pbody["missed"] == 2
        # Viewers: recover from before the join.
        recover(back, viewers, "v", (str(int(missed_viewers[0][0]["offset"]) - 1), missed_viewers[0][0]["epoch"]))
        got_viewers, vmarker, _ = until_marker(back, viewers)
        assert [m[1] for m in got_viewers] == [m[1] for m in missed_viewers] and vmarker["recovered"] == "true"

        # Then live ones, once.
        owner.send_json(f"/app/live/{rid}/chat", {"message": "live"})
        live = back.messages(chat, 1)
        assert live[0][1]["message"] == "live" and int(live[0][0]["offset"]) > int(got_chat[-1][0]["offset"])
        assert not [f for f in back.drain(0.3) if f[0] == "MESSAGE" and f[1].get("destination") == chat]

        # A pin re-announces a line with its own offset; a recovery from before it replays it.
        before_pin = last_position(live)
        pinned_id = live[0][1]["id"]
        assert requests.put(f"{hub.api}/rooms/{rid}/chats/{pinned_id}/pin", headers=hub.headers()).status_code == 200
        pin = back.messages(chat, 1)
        assert pin[0][1]["isPinned"] and int(pin[0][0]["offset"]) > int(before_pin[0])
        again = StompWS(ws_url(hub))
        recover(again, chat, "c", before_pin)
        replayed, m2, _ = until_marker(again, chat)
        assert [(h["offset"], b["id"], b["isPinned"]) for h, b in replayed] == [(pin[0][0]["offset"], pinned_id, True)] and m2["recovered"] == "true"
        again.close()
        back.close()
        joiner.close()
    finally:
        owner.close()
        witness.close()


def test_a_wrong_epoch_a_gap_older_than_the_ring_and_bad_headers_say_recovered_false_or_refuse(make_livehub):
    hub = make_livehub(env=ENV).start()
    rid = hub.create_room("gap")["id"]
    product, chat = topic(rid, "product"), topic(rid, "chat")
    owner = StompWS(ws_url(hub), token=hub.tokens["owner"])
    client = StompWS(ws_url(hub))
    try:
        client.subscribe(product, "p", receipt="r")
        add_product(hub, rid, 1)
        first = client.messages(product, 1)
        for n in range(2, 6):  # 4 more: the ring keeps 3
            add_product(hub, rid, n)
        latest = client.messages(product, 4)
        late = StompWS(ws_url(hub))
        recover(late, product, "p", last_position(first))
        missed, marker, body = until_marker(late, product)
        assert missed == [] and marker["recovered"] == "false" and body["recovered"] is False
        assert marker["offset"] == latest[-1][0]["offset"], "the marker carries the current offset to continue from after a REST reload"
        recover(late, chat, "c", ("0", "not-this-epoch"))
        missed, marker, _ = until_marker(late, chat)
        assert missed == [] and marker["recovered"] == "false"
        # A stomp.py client sees the marker too.
        listener = Listener()
        conn = stomp.WSStompConnection([("127.0.0.1", hub.http_port)], ws_path="/ws/live")
        conn.set_listener("l", listener)
        conn.connect(wait=True)
        conn.subscribe(product, id="py", headers={"recover-offset": latest[-2][0]["offset"], "recover-epoch": latest[-2][0]["epoch"]})
        hub.wait_for(lambda: len(listener.messages) >= 2, timeout=5, what="stomp.py recovery")
        assert json.loads(listener.messages[0][1]) == latest[-1][1]
        assert listener.messages[1][0]["recovered"] == "true"
        conn.disconnect()
        # Hostile headers: refused on the error queue, the connection stays.
        late.subscribe("/user/queue/errors", "err")
        for offset, epoch in [("99999999999999999999", "e"), ("-1", "e"), ("1", "bad epoch"), ("9223372036854775808", "e")]:
            late.send_frame("SUBSCRIBE", {"destination": product, "id": f"x{offset}", "recover-offset": offset, "recover-epoch": epoch})
            _, headers, body = late.expect("MESSAGE", where=lambda h, b: h.get("destination") == "/user/queue/errors")
            assert headers["error-code"] == "invalid-recover-header", body
        late.send_frame("SUBSCRIBE", {"destination": product, "id": "half", "recover-offset": "1"})
        late.expect("MESSAGE", where=lambda h, b: h.get("error-code") == "invalid-recover-header")
        add_product(hub, rid, 9)
        assert late.messages(product, 1)[0][1][-1]["productId"] == "9", "the connection still works"
        late.close()
    finally:
        owner.close()
        client.close()


class Listener(stomp.ConnectionListener):
    def __init__(self):
        self.messages = []

    def on_message(self, frame):
        self.messages.append((frame.headers, frame.body))


def notify(hub, user_id, title):
    r = requests.post(f"{hub.base}/internal/notifications", json={"userId": user_id, "type": "INFO", "title": title},
                      headers={"Authorization": f"Bearer {hub.tokens['internal']}"})
    assert r.status_code == 201, r.text
    return r.json()


class Bell:
    def __init__(self, hub, auth):
        self.events = []
        self.lock = threading.Lock()
        self.client = socketio.Client(reconnection=False)
        for name in ("notification:new", "unreadCount:updated", "notification:resync"):
            self.client.on(name, self._recorder(name))
        self.client.connect(f"http://127.0.0.1:{hub.http_port}", transports=["websocket"], auth=auth, wait_timeout=5)

    def _recorder(self, name):
        def record(data=None):
            with self.lock:
                self.events.append((name, data))
        return record

    def wait(self, predicate, timeout=5):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if predicate(list(self.events)):
                    return list(self.events)
            time.sleep(0.02)
        raise AssertionError(f"bell: {self.events}")


def test_the_bell_replays_missed_notifications_then_the_exact_unread_count(make_livehub):
    hub = make_livehub(env=ENV).start()
    token = hub.tokens["viewer"]
    # A tab that stays: once it has all five live, no push of them is still on its way (with
    # PostgreSQL the broker delivers after the REST answer), so what the next tabs get is the replay.
    witness = Bell(hub, {"token": token})
    made = [notify(hub, "dev-viewer", f"n{i}") for i in range(5)]
    witness.wait(lambda ev: len([e for e in ev if e[0] == "notification:new"]) == 5)
    witness.client.disconnect()
    # Missed n3, n4 since n2: replayed in order, then the exact count (5 unread).
    bell = Bell(hub, {"token": token, "lastNotificationId": made[2]["id"]})
    try:
        events = bell.wait(lambda ev: len([e for e in ev if e[0] == "notification:new"]) >= 2 and any(e[0] == "unreadCount:updated" for e in ev[2:]))
        news = [d for n, d in events if n == "notification:new"]
        assert [n["title"] for n in news] == ["n3", "n4"]
        after = [d for n, d in events[events.index(("notification:new", news[-1])):] if n == "unreadCount:updated"]
        assert after and after[-1]["count"] == 5
        time.sleep(0.3)
        assert len([e for e in bell.events if e[0] == "notification:new"]) == 2, "nothing twice"
    finally:
        bell.client.disconnect()
    # Four missed since n0, more than LIVEHUB_BELL_REPLAY_MAX=3: reload by REST.
    bell = Bell(hub, {"token": token, "lastNotificationId": made[0]["id"]})
    try:
        events = bell.wait(lambda ev: any(e[0] == "notification:resync" for e in ev))
        assert not [e for e in events if e[0] == "notification:new"]
        assert [d for n, d in events if n == "notification:resync"][0] == {"reason": "too-many-missed", "unreadCount": 5}
    finally:
        bell.client.disconnect()
    # Through the AUTH event (connect first, authenticate after).
    client = socketio.Client(reconnection=False)
    got = []
    client.on("notification:new", lambda d=None: got.append(d["title"]))
    client.connect(f"http://127.0.0.1:{hub.http_port}", transports=["websocket"], wait_timeout=5)
    try:
        client.call("AUTH", {"token": token, "lastNotificationId": made[3]["id"]}, timeout=5)
        hub.wait_for(lambda: got == ["n4"], timeout=5, what="replay after AUTH")
    finally:
        client.disconnect()
