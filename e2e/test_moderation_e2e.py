"""Issue 22 §3 end to end: moderation with real STOMP clients (websocket-client frames and
stomp.py) against the real binary — deletes broadcast and gone from the history, mutes and bans
refused on /user/queue/errors (a ban survives a new connection), slow mode, links, held lines and
the moderation log. One server for the module; each test has its own room."""
import json
import tempfile
import time
from pathlib import Path

import pytest
import requests
import stomp

from conftest import LiveHubProcess
from jwt_helper import sign
from stomp_client import StompWS

ERRORS = "/user/queue/errors"


@pytest.fixture(scope="module")
def hub():
    with tempfile.TemporaryDirectory(prefix="livehub-e2e-mod-") as directory:
        server = LiveHubProcess(Path(directory) / "data").start()
        try:
            yield server
        finally:
            server.stop()


def token(hub, user_id, roles=("USER",)):
    secret = (hub.data_dir / "jwt-secret").read_text().strip()
    return sign(secret, {"sub": user_id, "username": f"name-{user_id}", "roles": list(roles), "exp": int(time.time()) + 3600})


def bearer(value):
    return {"Authorization": f"Bearer {value}"}


def ws_url(hub):
    return f"ws://127.0.0.1:{hub.http_port}/ws/live"


def chat_topic(room_id):
    return f"/topic/live/{room_id}/chat"


def connect(hub, user_token, room_id):
    client = StompWS(ws_url(hub), token=user_token)
    client.subscribe(ERRORS, "errors")
    client.subscribe(chat_topic(room_id), "chat", receipt="ready")
    return client


def say(client, room_id, message, receipt):
    """Sends a line; returns the RECEIPT's headers (status refused + error-code when refused)."""
    client.send_json(f"/app/live/{room_id}/chat", {"message": message}, receipt=receipt)
    return client.expect("RECEIPT", where=lambda h, b: h.get("receipt-id") == receipt)[1]


def refused_with(client, room_id, message, receipt, code):
    headers = say(client, room_id, message, receipt)
    assert headers.get("status") == "refused" and headers.get("error-code") == code, headers
    _, error_headers, body = client.expect("MESSAGE", where=lambda h, b: h.get("destination") == ERRORS and h.get("receipt-id") == receipt)
    error = json.loads(body)
    assert error["error"] == code and error["message"]
    return error


def history(hub, room_id):
    response = requests.get(f"{hub.api}/rooms/{room_id}/chats?limit=100", timeout=5)
    assert response.status_code == 200
    return response.json()


def test_a_deleted_line_is_broadcast_as_deleted_and_gone_from_the_history(hub):
    room = hub.create_room("delete")["id"]
    mod_token = token(hub, "mod-del")
    assert requests.post(f"{hub.api}/rooms/{room}/moderators", json={"userId": "mod-del"}, headers=hub.headers(), timeout=5).status_code == 201
    speaker = connect(hub, token(hub, "spammer-1"), room)
    watcher = connect(hub, hub.tokens["viewer"], room)
    try:
        assert say(speaker, room, "buy my stuff", "s1").get("status") is None
        line = watcher.messages(chat_topic(room), 1)[0][1]
        assert line["message"] == "buy my stuff"
        keep = say(speaker, room, "a fine line", "s2")
        assert keep.get("status") is None
        watcher.messages(chat_topic(room), 1)
        # A viewer may not delete; the moderator may.
        assert requests.delete(f"{hub.api}/rooms/{room}/chats/{line['id']}", headers=bearer(token(hub, "nobody")), timeout=5).status_code == 403
        assert requests.delete(f"{hub.api}/rooms/{room}/chats/{line['id']}", timeout=5).status_code == 401
        response = requests.delete(f"{hub.api}/rooms/{room}/chats/{line['id']}", headers=bearer(mod_token), timeout=5)
        assert response.status_code == 200, response.text
        _, deleted = watcher.messages(chat_topic(room), 1)[0]
        assert deleted == {"type": "DELETED", "id": line["id"]}
        assert [entry["message"] for entry in history(hub, room)] == ["a fine line"]
        assert requests.delete(f"{hub.api}/rooms/{room}/chats/{line['id']}", headers=bearer(mod_token), timeout=5).status_code == 404
    finally:
        speaker.close()
        watcher.close()


def test_mute_and_ban_are_refused_on_the_error_queue_and_a_ban_survives_a_reconnect(hub):
    room = hub.create_room("mute-ban")["id"]
    user_token = token(hub, "loud-1")
    client = connect(hub, user_token, room)
    try:
        response = requests.post(f"{hub.api}/rooms/{room}/mutes", json={"userId": "loud-1", "minutes": 10}, headers=hub.headers(), timeout=5)
        assert response.status_code == 201, response.text
        error = refused_with(client, room, "hello?", "m1", "muted")
        assert response.json()["until"] in error["message"]
        assert requests.delete(f"{hub.api}/rooms/{room}/mutes/loud-1", headers=hub.headers(), timeout=5).status_code == 204
        assert say(client, room, "I am back", "m2").get("status") is None
        assert requests.post(f"{hub.api}/rooms/{room}/bans", json={"userId": "loud-1"}, headers=hub.headers(), timeout=5).status_code == 201
        refused_with(client, room, "still here", "b1", "banned")
    finally:
        client.close()
    # A new connection (stomp.py this time) of the banned user is still refused.
    errors = []

    class Listener(stomp.ConnectionListener):
        def on_message(self, frame):
            if frame.headers.get("destination") == ERRORS:
                errors.append(json.loads(frame.body))

    conn = stomp.WSStompConnection([("127.0.0.1", hub.http_port)], ws_path="/ws/live")
    conn.set_listener("l", Listener())
    conn.connect(headers={"Authorization": f"Bearer {user_token}"}, wait=True)
    try:
        conn.subscribe(ERRORS, id="errors")
        conn.send(f"/app/live/{room}/chat", json.dumps({"message": "new socket, same me"}), content_type="application/json")
        deadline = time.time() + 5
        while not errors and time.time() < deadline:
            time.sleep(0.05)
        assert errors and errors[0]["error"] == "banned", errors
    finally:
        conn.disconnect()
    assert [entry["message"] for entry in history(hub, room)] == ["I am back"]
    assert requests.delete(f"{hub.api}/rooms/{room}/bans/loud-1", headers=hub.headers(), timeout=5).status_code == 204


def test_slow_mode_links_and_held_lines(hub):
    room = hub.create_room("rules")["id"]
    viewer = connect(hub, token(hub, "chatty-1"), room)
    owner = connect(hub, hub.tokens["owner"], room)
    try:
        settings = {"slowModeSeconds": 2, "blockedWords": ["spam"], "blockedWordAction": "hold", "linksOnlyFromModerators": True}
        response = requests.put(f"{hub.api}/rooms/{room}/chat-settings", json=settings, headers=hub.headers(), timeout=5)
        assert response.status_code == 200 and response.json() == settings, response.text
        assert say(viewer, room, "first", "v1").get("status") is None
        refused_with(viewer, room, "second", "v2", "slow-mode")
        # The owner is exempt from slow mode and may post links.
        for index in range(2):
            assert say(owner, room, f"owner line {index} at https://shop.example/deal", f"o{index}").get("status") is None
        time.sleep(2.05)
        refused_with(viewer, room, "cheap at deals.example.com", "v3", "links-not-allowed")
        refused_with(viewer, room, "free SPAM here", "v4", "held-for-review")
        viewer.drain(0.2)
        held = requests.get(f"{hub.api}/rooms/{room}/held-chats", headers=hub.headers(), timeout=5).json()
        assert [line["message"] for line in held] == ["free SPAM here"]
        assert "free SPAM here" not in [line["message"] for line in history(hub, room)]
        response = requests.post(f"{hub.api}/rooms/{room}/held-chats/{held[0]['id']}/approve", headers=hub.headers(), timeout=5)
        assert response.status_code == 201, response.text
        _, approved = viewer.messages(chat_topic(room), 1)[0]
        assert approved["message"] == "free SPAM here" and approved["userId"] == "chatty-1"
        assert history(hub, room)[-1]["message"] == "free SPAM here"
        # Drop instead of hold.
        settings["blockedWordAction"] = "drop"
        settings["slowModeSeconds"] = 0
        assert requests.put(f"{hub.api}/rooms/{room}/chat-settings", json=settings, headers=hub.headers(), timeout=5).status_code == 200
        refused_with(viewer, room, "spam again", "v5", "blocked-word")
    finally:
        viewer.close()
        owner.close()


def test_the_moderation_log_lists_every_action(hub):
    room = hub.create_room("log")["id"]
    api = f"{hub.api}/rooms/{room}"
    owner = hub.headers()
    speaker = connect(hub, token(hub, "target-1"), room)
    try:
        assert requests.post(f"{api}/moderators", json={"userId": "mod-log"}, headers=owner, timeout=5).status_code == 201
        mod = bearer(token(hub, "mod-log"))
        assert say(speaker, room, "to be deleted", "t1").get("status") is None
        line = history(hub, room)[-1]
        assert requests.delete(f"{api}/chats/{line['id']}", headers=mod, timeout=5).status_code == 200
        assert requests.post(f"{api}/mutes", json={"userId": "target-1", "minutes": 5}, headers=mod, timeout=5).status_code == 201
        assert requests.delete(f"{api}/mutes/target-1", headers=mod, timeout=5).status_code == 204
        assert requests.post(f"{api}/bans", json={"userId": "target-1"}, headers=mod, timeout=5).status_code == 201
        assert requests.delete(f"{api}/bans/target-1", headers=mod, timeout=5).status_code == 204
        assert requests.put(f"{api}/chat-settings", json={"blockedWords": ["junk"]}, headers=mod, timeout=5).status_code == 200
        for receipt in ("h1", "h2"):
            refused_with(speaker, room, "junk mail", receipt, "held-for-review")
        held = requests.get(f"{api}/held-chats", headers=mod, timeout=5).json()
        assert requests.post(f"{api}/held-chats/{held[0]['id']}/approve", headers=mod, timeout=5).status_code == 201
        assert requests.delete(f"{api}/held-chats/{held[1]['id']}", headers=mod, timeout=5).status_code == 204
        assert requests.delete(f"{api}/moderators", json={"userId": "mod-log"}, headers=owner, timeout=5).status_code == 200
        # The removed moderator may no longer read the log; the owner may.
        assert requests.get(f"{api}/moderation-log", headers=mod, timeout=5).status_code == 403
        assert requests.get(f"{api}/moderation-log", headers=bearer(token(hub, "someone")), timeout=5).status_code == 403
        assert requests.get(f"{api}/moderation-log", timeout=5).status_code == 401
        log = requests.get(f"{api}/moderation-log?limit=50", headers=owner, timeout=5).json()
        assert [entry["action"] for entry in reversed(log)] == [
            "MODERATOR_ADDED", "CHAT_DELETED", "USER_MUTED", "USER_UNMUTED", "USER_BANNED", "USER_UNBANNED", "SETTINGS_CHANGED",
            "HELD_APPROVED", "HELD_DROPPED", "MODERATOR_REMOVED",
        ]
        assert log[-2]["targetChatId"] == line["id"] and log[-2]["detail"]["message"] == "to be deleted"
        assert {entry["actorId"] for entry in log} == {"dev-owner", "mod-log"}
        page = requests.get(f"{api}/moderation-log?limit=3&before={log[2]['id']}", headers=owner, timeout=5).json()
        assert [entry["id"] for entry in page] == [entry["id"] for entry in log[3:6]]
    finally:
        speaker.close()
