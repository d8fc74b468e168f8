"""Issue 6 end to end: the live-room hub with real WebSocket STOMP clients (hand-written over
websocket-client, stomp.py, and the SockJS framed transport) against the real binary."""
import json
import time

import requests
import stomp

from conftest import db_rows
from stomp_client import StompWS


def ws_url(hub, path="/ws/live", token=None):
    url = f"ws://127.0.0.1:{hub.http_port}{path}"
    return url + (f"?token={token}" if token else "")


def topics(room_id):
    return {name: f"/topic/live/{room_id}/{name}" for name in ("chat", "product", "status", "viewers")}


class StompPyListener(stomp.ConnectionListener):
    def __init__(self):
        self.messages = []
        self.errors = []

    def on_message(self, frame):
        self.messages.append((frame.headers, frame.body))

    def on_error(self, frame):
        self.errors.append(frame)


def test_an_owner_and_two_viewers_see_every_chat_once_and_in_order(livehub):
    room = livehub.create_room("chat room")
    t = topics(room["id"])
    owner = StompWS(ws_url(livehub), token=livehub.tokens["owner"])
    viewer = StompWS(ws_url(livehub, token=livehub.tokens["viewer"]))  # token as query parameter
    listener = StompPyListener()
    conn = stomp.WSStompConnection([("127.0.0.1", livehub.http_port)], ws_path="/ws/live")
    conn.set_listener("l", listener)
    conn.connect(headers={"Authorization": f"Bearer {livehub.tokens['viewer']}"}, wait=True)
    try:
        owner.subscribe(t["chat"], "sub-0", receipt="r0")
        viewer.subscribe(t["chat"], "sub-0", receipt="r1")
        conn.subscribe(t["chat"], id="py-sub")
        time.sleep(0.3)
        for index in range(4):
            owner.send_json(f"/app/live/{room['id']}/chat", {"message": f"owner {index}"})
            time.sleep(0.21)  # stay under 5 messages/s per user
        for index in range(3):
            viewer.send_json(f"/app/live/{room['id']}/chat", {"message": f"viewer {index}"})
            time.sleep(0.21)
        for client in (owner, viewer):
            got = client.messages(t["chat"], 7)
            texts = [body["message"] for _, body in got]
            assert [m for m in texts if m.startswith("owner")] == [f"owner {i}" for i in range(4)]
            assert [m for m in texts if m.startswith("viewer")] == [f"viewer {i}" for i in range(3)]
            headers = got[0][0]
            assert headers["subscription"] == "sub-0" and headers["message-id"] and headers["content-type"].startswith("application/json")
            assert all(body["type"] == "CHAT" and body["liveRoomId"] == room["id"] for _, body in got)
            assert not [f for f in client.drain() if f[0] == "MESSAGE" and f[1].get("destination") == t["chat"]], "no duplicates"
        deadline = time.time() + 5
        while len(listener.messages) < 7 and time.time() < deadline:
            time.sleep(0.05)
        assert [json.loads(body)["message"] for _, body in listener.messages] == [json.loads(b)["message"] for _, b in listener.messages]
        assert len(listener.messages) == 7 and listener.messages[0][0]["subscription"] == "py-sub"
        history = requests.get(f"{livehub.api}/rooms/{room['id']}/chats").json()
        assert len(history) == 7
        assert history[0]["username"] == "Dev Shop"
    finally:
        conn.disconnect()
        owner.close()
        viewer.close()


def test_a_guest_chat_is_refused_on_the_error_queue_and_the_connection_stays(livehub, data_dir):
    room = livehub.create_room("guests")
    t = topics(room["id"])
    guest = StompWS(ws_url(livehub))
    try:
        guest.subscribe("/user/queue/errors", "errors")
        guest.subscribe(t["chat"], "chat", receipt="ready")
        guest.send_json(f"/app/live/{room['id']}/chat", {"message": "hi"}, receipt="c1")
        _, headers, body = guest.expect("MESSAGE", where=lambda h, b: h.get("destination") == "/user/queue/errors")
        error = json.loads(body)
        assert error["error"] and "sign in" in error["message"]
        _, receipt, _ = guest.expect("RECEIPT", where=lambda h, b: h.get("receipt-id") == "c1")
        assert receipt.get("status") == "refused"
        # Still connected: a subscription round trip works.
        guest.subscribe(t["status"], "status", receipt="still-here")
        assert not guest.closed.is_set()
    finally:
        guest.close()
    assert db_rows(data_dir, "SELECT COUNT(*) FROM live_chat") == [["0"]]


def test_the_chat_rate_limit_triggers_and_the_connection_stays(livehub):
    room = livehub.create_room("flood")
    client = StompWS(ws_url(livehub), token=livehub.tokens["viewer"])
    try:
        client.subscribe("/user/queue/errors", "errors", receipt="ok")
        for index in range(20):
            client.send_json(f"/app/live/{room['id']}/chat", {"message": f"flood {index}"})
        _, headers, body = client.expect("MESSAGE", where=lambda h, b: h.get("destination") == "/user/queue/errors")
        assert "rate" in body.lower() or "slow" in body.lower()
        time.sleep(0.5)
        stored = requests.get(f"{livehub.api}/rooms/{room['id']}/chats?limit=100").json()
        assert 1 <= len(stored) < 20
        time.sleep(1.2)
        client.send_json(f"/app/live/{room['id']}/chat", {"message": "after the flood"}, receipt="late")
        _, receipt, _ = client.expect("RECEIPT", where=lambda h, b: h.get("receipt-id") == "late")
        assert receipt.get("status") != "refused"
    finally:
        client.close()


def test_join_leave_and_a_dropped_connection_update_the_viewer_count(livehub):
    room = livehub.create_room("viewers")
    t = topics(room["id"])
    watcher = StompWS(ws_url(livehub))
    a = StompWS(ws_url(livehub))
    b = StompWS(ws_url(livehub), token=livehub.tokens["viewer"])
    try:
        watcher.subscribe(t["viewers"], "v", receipt="ok")
        join = f"/app/live/{room['id']}/join"
        a.send_json(join, {})
        a.send_json(join, {})  # a connection counts once
        b.send_json(join, {})
        counts = [body["count"] for _, body in watcher.messages(t["viewers"], 2)]
        assert counts == [1, 2]
        a.send_json(f"/app/live/{room['id']}/leave", {})
        assert watcher.messages(t["viewers"], 1)[0][1]["count"] == 1
        b.ws.close()  # dropped without DISCONNECT
        _, last = watcher.messages(t["viewers"], 1)[0]
        assert last["count"] == 0 and last["peak"] == 2
        assert livehub.room(room["id"])["peakViewers"] == 2
    finally:
        for client in (watcher, a, b):
            client.close()


def test_products_orders_and_the_end_of_the_room_are_broadcast(livehub):
    room = livehub.create_room("shop")
    t = topics(room["id"])
    viewer = StompWS(ws_url(livehub))
    try:
        for name in ("product", "chat", "status"):
            viewer.subscribe(t[name], f"s-{name}")
        viewer.subscribe(t["viewers"], "ready", receipt="ready")
        api = f"{livehub.api}/rooms/{room['id']}"
        first = requests.post(f"{api}/products", json={"productId": 1, "livePrice": 900, "originalPrice": 1000, "productName": "Tea"}, headers=livehub.headers()).json()
        requests.post(f"{api}/products", json={"productId": 2, "livePrice": 50, "productName": "Cup"}, headers=livehub.headers())
        lists = [body for _, body in viewer.messages(t["product"], 2)]
        assert [p["productId"] for p in lists[1]] == ["1", "2"] and lists[0][0]["discountPercent"] == 10
        assert first["productId"] == "1", "201 answers the created product (the old service's LiveProductDto)"
        requests.put(f"{api}/products/{first['id']}/feature", headers=livehub.headers())
        featured = viewer.messages(t["product"], 1)[0][1]
        assert [p["isFeatured"] for p in featured] == [True, False]
        order = {"orderId": "o-1", "roomId": room["id"], "userId": "u9", "username": "kim", "productId": 1, "productName": "Tea", "amount": 900}
        internal = {"Authorization": f"Bearer {livehub.tokens['internal']}"}
        assert requests.post(f"{livehub.api}/orders", json=order, headers=internal).status_code == 201
        toast = viewer.messages(t["chat"], 1)[0][1]
        assert toast["type"] == "ORDER" and toast["productName"] == "Tea" and toast["username"] == "kim"
        after = viewer.messages(t["product"], 1)[0][1]
        assert after[0]["soldCount"] == 1
        assert requests.post(f"{livehub.api}/orders", json=order, headers=internal).status_code == 200  # idempotent
        stats = requests.get(f"{api}/stats").json()
        assert stats["totalOrders"] == 1 and stats["totalRevenue"] == 900
        requests.delete(f"{api}/products/{first['id']}", headers=livehub.headers())
        assert [p["productId"] for p in viewer.messages(t["product"], 1)[0][1]] == ["2"]
        requests.put(f"{api}/end", headers=livehub.headers())
        status = viewer.messages(t["status"], 1)[0][1]
        assert status["status"] == "ENDED" and status["stats"]["totalOrders"] == 1 and status["endedAt"]
        assert not [f for f in viewer.drain() if f[0] == "MESSAGE" and f[1]["destination"] == t["chat"]], "the duplicate order made no second toast"
    finally:
        viewer.close()


def test_the_sockjs_framed_transport_and_info_work(livehub):
    info = requests.get(f"{livehub.base}/ws/live/info")
    assert info.status_code == 200 and info.json()["websocket"] is True
    room = livehub.create_room("sockjs")
    t = topics(room["id"])
    client = StompWS(ws_url(livehub, "/ws/live/123/abcdefgh/websocket"), token=livehub.tokens["viewer"], sockjs=True, subprotocols=None)
    try:
        client.subscribe(t["chat"], "sub-0", receipt="r")
        client.send_json(f"/app/live/{room['id']}/chat", {"message": "über SockJS \"quoted\"\n"})
        body = client.messages(t["chat"], 1)[0][1]
        assert body["message"] == "über SockJS \"quoted\""
    finally:
        client.close()


def test_chat_history_survives_a_restart(make_livehub):
    first = make_livehub().start()
    room = first.create_room("durable")
    client = StompWS(ws_url(first), token=first.tokens["viewer"])
    client.subscribe(f"/topic/live/{room['id']}/chat", "c", receipt="r")
    for index in range(3):
        client.send_json(f"/app/live/{room['id']}/chat", {"message": f"kept {index}"})
    client.messages(f"/topic/live/{room['id']}/chat", 3)
    client.close()
    first.stop()
    second = make_livehub().start()
    history = requests.get(f"{second.api}/rooms/{room['id']}/chats").json()
    assert [line["message"] for line in history] == ["kept 0", "kept 1", "kept 2"]


def test_bad_frames_get_errors_store_nothing_and_leave_others_untouched(livehub, data_dir):
    room = livehub.create_room("hostile")
    t = topics(room["id"])
    bystander = StompWS(ws_url(livehub), token=livehub.tokens["viewer"])
    bystander.subscribe(t["chat"], "sub", receipt="r")
    cases = {
        "unknown command": "HELLO\n\n\x00",
        "malformed header": "CONNECT\naccept-version\n\n\x00",
        "1 MB body": "SEND\ndestination:/app/live/x/chat\n\n" + "x" * (1 << 20) + "\x00",
        "huge header": "SEND\ndestination:" + "d" * 200_000 + "\n\n\x00",
    }
    try:
        for name, raw in cases.items():
            client = StompWS(ws_url(livehub), token=livehub.tokens["viewer"])
            try:
                client.send_raw(raw)
                try:
                    command, headers, body = client.expect("ERROR", timeout=5)
                    assert headers.get("message"), name
                except AssertionError:
                    assert client.closed.wait(5), f"{name}: neither ERROR nor close"
            finally:
                client.close()
        # A frame without its NUL never completes: the limit closes it, nothing is processed.
        partial = StompWS(ws_url(livehub), token=livehub.tokens["viewer"])
        partial.send_raw(f"SEND\ndestination:/app/live/{room['id']}/chat\n\n" + '{"message":"never"}')
        time.sleep(0.5)
        partial.close()
        app = StompWS(ws_url(livehub), token=livehub.tokens["viewer"])
        app.subscribe("/user/queue/errors", "e", receipt="r")
        app.send_frame("SEND", {"destination": f"/app/live/{room['id']}/chat"}, "{not json")
        assert "json" in app.expect("MESSAGE", where=lambda h, b: h.get("destination") == "/user/queue/errors")[2].lower()
        app.send_json("/app/live/no-such-room/chat", {"message": "x"})
        assert "room" in app.expect("MESSAGE", where=lambda h, b: h.get("destination") == "/user/queue/errors")[2].lower()
        app.send_json(t["chat"], {"message": "straight to the topic"})
        app.expect("MESSAGE", where=lambda h, b: h.get("destination") == "/user/queue/errors")
        app.subscribe("/topic/live/no-such-room/chat", "bad")
        app.expect("MESSAGE", where=lambda h, b: h.get("destination") == "/user/queue/errors")
        app.close()
        assert db_rows(data_dir, "SELECT COUNT(*) FROM live_chat") == [["0"]]
        # The bystander is unaffected.
        bystander.send_json(f"/app/live/{room['id']}/chat", {"message": "still fine"})
        assert bystander.messages(t["chat"], 1)[0][1]["message"] == "still fine"
        assert requests.get(f"{livehub.base}/healthz").status_code == 200
    finally:
        bystander.close()


def test_forged_and_expired_tokens_get_an_error_frame_and_are_closed(livehub, data_dir):
    import jwt_helper
    for token in [jwt_helper.expired_token(data_dir), jwt_helper.expired_like(livehub.tokens["viewer"]), "garbage"]:
        client = StompWS(ws_url(livehub), connect=False)
        try:
            client.send_frame("CONNECT", {"accept-version": "1.2", "Authorization": f"Bearer {token}"})
            _, headers, _ = client.expect("ERROR")
            assert headers.get("message")
            assert client.closed.wait(5)
        finally:
            client.close()
    # The token as a query parameter is checked the same way.
    client = StompWS(ws_url(livehub, token=jwt_helper.expired_token(data_dir)), connect=False)
    client.send_frame("CONNECT", {"accept-version": "1.2"})
    assert "expired" in client.expect("ERROR")[1]["message"]
    client.close()
