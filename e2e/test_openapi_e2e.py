"""Issue 17 §6 end to end: schemathesis fuzzes the real binary from its own `/openapi.json`, once with
a viewer token, once with a shop-owner token and once with no token at all (the first two also hold
the internal token for the internal operations). No 5xx, every status documented, every response
of its documented type and schema, and every refusal exactly `{error, message}`.

The path ids come half of the time from real rooms, products, chat lines and notifications made
before the run (schemathesis dictionaries), so the operations get past "no such room" into their
validation and state checks. Deterministic: fixed seed, one worker, no example database; about
30 s per caller with 50 examples per operation (about 2,300 requests each)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from stomp_client import StompWS

# Overridable for a longer exploratory run: E2E_SCHEMATHESIS_SEED=… E2E_SCHEMATHESIS_MAX_EXAMPLES=500 pytest …
SEED = int(os.environ.get("E2E_SCHEMATHESIS_SEED", "17"))
MAX_EXAMPLES = int(os.environ.get("E2E_SCHEMATHESIS_MAX_EXAMPLES", "50"))
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
])
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def toml_string(value):
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def seed_data(hub):
    """Rooms with products, chat lines (a viewer's and an order's), notifications for both users; a
    room kept for `endRoom` alone (an ended room refuses most other operations) and one whose
    stream key goes to the callbacks."""
    owner, internal = hub.headers("owner"), hub.headers("internal")
    rooms = [hub.create_room(f"fuzz room {index}") for index in range(3)]
    endable, callbacks = hub.create_room("fuzz room to end"), hub.create_room("fuzz room for callbacks")
    products, chats = [], []
    for room in rooms[:2]:
        created = requests.post(f"{hub.api}/rooms/{room['id']}/products", headers=owner,
                               json={"productId": f"p-{room['id'][:4]}", "livePrice": 10, "originalPrice": 12})
        assert created.status_code == 201, created.text
        products.append(created.json()["id"])
        order = {"orderId": f"seed-{room['id']}", "roomId": room["id"], "productId": f"p-{room['id'][:4]}", "amount": 10}
        assert requests.post(f"{hub.api}/orders", json=order, headers=internal).status_code == 201
    viewer = StompWS(f"ws://127.0.0.1:{hub.http_port}/ws/live", token=hub.tokens["viewer"])
    try:
        topic = f"/topic/live/{rooms[0]['id']}/chat"
        viewer.subscribe(topic, "s", receipt="ready")
        viewer.send_json(f"/app/live/{rooms[0]['id']}/chat", {"message": "a line to pin"})
        viewer.messages(topic, 1)
    finally:
        viewer.close()
    for room in rooms[:2]:
        chats += [line["id"] for line in requests.get(f"{hub.api}/rooms/{room['id']}/chats").json()]
    # Issue 22: a flash deal to claim, list and (try to) cancel.
    deal = requests.post(f"{hub.api}/rooms/{rooms[0]['id']}/deals", headers=owner,
                         json={"liveProductId": products[0], "dealPrice": 5, "quantity": 1000, "perBuyerLimit": 1000, "durationSeconds": 3600})
    assert deal.status_code == 201, deal.text
    notifications = []
    for user in ("dev-viewer", "dev-owner"):
        made = requests.post(f"{hub.base}/internal/notifications", headers=internal,
                             json={"userId": user, "type": "FUZZ", "title": "seeded"})
        assert made.status_code == 201, made.text
        notifications.append(made.json()["id"])
    return {"ids": [room["id"] for room in rooms] + notifications, "rooms": [room["id"] for room in rooms], "endable": [endable["id"]],
            "keys": [callbacks["streamKey"]], "products": products, "chats": chats,
            "deals": [deal.json()["id"]]}


def write_config(path, tokens, data):
    lines = []
    for name, values in data.items():
        lines += [f"[dictionaries.{name}]", "values = [" + ", ".join(toml_string(v) for v in values) + "]", ""]
    lines += [
        "[parameters]",
        '"path.id" = { dictionary = "ids", probability = 0.5 }',
        '"path.roomId" = { dictionary = "ids", probability = 0.5 }',
        '"path.liveProductId" = { dictionary = "products", probability = 0.5 }',
        '"path.chatId" = { dictionary = "chats", probability = 0.5 }',
        '"path.dealId" = { dictionary = "deals", probability = 0.5 }',
        '"body.roomId" = { dictionary = "ids", probability = 0.5 }',
        '"query.name" = { dictionary = "keys", probability = 0.5 }',
        "",
        "[[operations]]",
        'include-operation-id = "endRoom"',
        'parameters = { "path.id" = { dictionary = "endable", probability = 0.5 } }',
        "",
        # Money and counts: mostly a real room, more examples, so that the numbers get fuzzed past
        # "no such room" (an order amount ≥ 2^63 once ended the process).
        "[[operations]]",
        'include-operation-id = "applyOrder"',
        'parameters = { "body.roomId" = { dictionary = "rooms", probability = 0.9 } }',
        f"generation = {{ max-examples = {3 * MAX_EXAMPLES} }}",
        "",
        "[[operations]]",
        'include-operation-id = "addProduct"',
        'parameters = { "path.id" = { dictionary = "rooms", probability = 0.9 } }',
        f"generation = {{ max-examples = {3 * MAX_EXAMPLES} }}",
        "",
    ]
    for scheme, token in tokens.items():
        lines += [f"[auth.openapi.{scheme}]", f"bearer = {toml_string(token)}", ""]
    path.write_text("\n".join(lines))


@pytest.mark.parametrize("who", ["viewer", "owner", "none"])
def test_schemathesis_finds_nothing_with_each_kind_of_caller(livehub, tmp_path, who):
    schema = requests.get(f"{livehub.base}/openapi.json")
    assert schema.status_code == 200 and schema.json()["openapi"] == "3.1.0"
    data = seed_data(livehub)
    tokens = {} if who == "none" else {"userToken": livehub.tokens[who], "internalToken": livehub.tokens["internal"]}
    config = tmp_path / "schemathesis.toml"
    write_config(config, tokens, data)
    har = tmp_path / "interactions.har"
    command = [
        str(SCHEMATHESIS), "--config-file", str(config), "--no-color", "run", f"{livehub.base}/openapi.json",
        "--checks", CHECKS, "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED), "--workers", "1",
        "--generation-database", "none", "--request-timeout", "10",
        "--report", "har", "--report-har-path", str(har),
    ]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    report = run.stdout[-12000:] + run.stderr[-3000:]
    assert run.returncode == 0, f"schemathesis ({who}) found problems:\n{report}\n--- server log ---\n{livehub.output()[-3000:]}"
    assert livehub.proc.poll() is None, "the server must still run"
    assert requests.get(f"{livehub.base}/healthz").status_code == 200

    # Independently of the document: every refusal the server sent was exactly {error, message}.
    entries = json.loads(har.read_text())["log"]["entries"]
    assert len(entries) > 300, f"only {len(entries)} requests were made"
    statuses = {}
    for entry in entries:
        response = entry["response"]
        status = response["status"]
        statuses[status] = statuses.get(status, 0) + 1
        assert status < 500, f"{entry['request']['method']} {entry['request']['url']} → {status}"
        if status >= 400:
            content_type = next((h["value"] for h in response["headers"] if h["name"].lower() == "content-type"), "")
            assert content_type.startswith("application/json"), (entry["request"]["url"], status, content_type)
            body = json.loads(response["content"]["text"])
            assert set(body) == {"error", "message"} and body["error"] and body["message"], (entry["request"]["url"], body)
    assert any(200 <= status < 300 for status in statuses), statuses
    print(f"schemathesis ({who}): {len(entries)} requests, statuses {dict(sorted(statuses.items()))}")
