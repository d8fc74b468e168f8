"""Issue 17 §4 end to end: production auth with no dev back door, against the real binary.

Keys are generated here with `cryptography`, tokens are signed with PyJWT (as an auth service
would: Keycloak, Auth0, Spring Authorization Server), and the clients are real ones (requests,
websocket-client STOMP, python-socketio)."""
import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import threading
import time

import jwt
import pytest
import requests
import socketio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from conftest import BIN, free_port
from stomp_client import StompWS

SECRET = "e2e-production-secret-0123456789abcdef-long-enough-for-hs512-0123"  # 64+ bytes: HS512 too
INTERNAL = "e2e-internal-token-0123456789abcdef"


def pem(private_key):
    return private_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def jwk(private_key, kid, alg=None):
    """The public JWK of a key, as an identity provider publishes it."""
    if isinstance(private_key, rsa.RSAPrivateKey):
        entry = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key()))
    else:
        entry = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private_key.public_key()))
    entry["kid"] = kid
    if alg:
        entry["alg"] = alg
    entry["use"] = "sig"
    return entry


def claims(user="u1", lifetime=600, **extra):
    body = {"sub": user, "username": f"name-{user}", "exp": int(time.time()) + lifetime}
    body.update(extra)
    return body


def sign(key, algorithm, body, kid=None):
    return jwt.encode(body, key, algorithm=algorithm, headers={"kid": kid} if kid else None)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_with_raw_key(key_bytes, body):
    """HS256 by hand (PyJWT refuses to use a PEM as an HMAC secret, an attacker would not)."""
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(body).encode())
    signature = hmac.new(key_bytes, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


def unsigned(body):
    return f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{b64(json.dumps(body).encode())}."


def production(make_livehub, **env):
    """A livehub outside dev mode with the internal token and `env` (the key sources)."""
    settings = {"LIVEHUB_INTERNAL_TOKEN": INTERNAL}
    settings.update(env)
    return make_livehub(env=settings, dev=False).start()


def whoami(hub, token):
    """GET /rooms/mine: 200 for a valid token, 401 `{error, message}` otherwise."""
    return requests.get(f"{hub.api}/rooms/mine", headers={"Authorization": f"Bearer {token}"}, timeout=5)


def assert_refused(hub, token, message_part):
    response = whoami(hub, token)
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] == "UNAUTHORIZED"
    assert message_part in body["message"], body


@pytest.fixture(scope="module")
def keys():
    return {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "rsa2": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec": ec.generate_private_key(ec.SECP256R1()),
    }


# MARK: start-up


def run_briefly(env, args=()):
    """Runs livehub expecting it to stop by itself; returns (exit code, stdout + stderr)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEHUB_")}
    full_env.update({"LIVEHUB_HTTP_PORT": str(free_port()), "LIVEHUB_RTMP_PORT": str(free_port()), "LIVEHUB_HTTP_HOST": "127.0.0.1"})
    full_env.update(env)
    done = subprocess.run([BIN, *args], env=full_env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    return done.returncode, done.stdout + done.stderr


def test_production_refuses_to_start_without_a_key_or_internal_token(tmp_path):
    code, output = run_briefly({"LIVEHUB_DATA_DIR": str(tmp_path / "a")})
    assert code != 0
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "LIVEHUB_JWT_SECRET" in lines[0] and "--dev" in lines[0], output
    code, output = run_briefly({"LIVEHUB_DATA_DIR": str(tmp_path / "b"), "LIVEHUB_JWT_SECRET": SECRET})
    assert code != 0
    assert "LIVEHUB_INTERNAL_TOKEN" in output, output
    # A key file that cannot be used stops start-up too, naming its variable.
    (tmp_path / "bad.json").write_text("{ nope")
    code, output = run_briefly({"LIVEHUB_DATA_DIR": str(tmp_path / "c"), "LIVEHUB_JWT_JWKS_FILE": str(tmp_path / "bad.json"), "LIVEHUB_INTERNAL_TOKEN": INTERNAL})
    assert code != 0
    assert "LIVEHUB_JWT_JWKS_FILE" in output, output
    # Nothing was created for a server that did not start.
    assert not (tmp_path / "a" / "jwt-secret").exists()


def test_the_dev_flag_turns_dev_mode_on(make_livehub):
    hub = make_livehub(dev=False, args=["--dev"]).start()
    assert "auth      dev mode (--dev / LIVEHUB_DEV=1)" in hub.output()
    assert hub.tokens.get("owner"), hub.output()
    assert whoami(hub, hub.tokens["owner"]).status_code == 200


def test_production_banner_says_which_mode_and_prints_no_tokens(make_livehub):
    hub = production(make_livehub, LIVEHUB_JWT_SECRET=SECRET)
    output = hub.output()
    assert "auth      production: JWT HS256, HS384, HS512 from LIVEHUB_JWT_SECRET; exp required, leeway 30 s" in output, output
    assert "shop-owner token" not in output and "internal token" not in output
    assert not hub.tokens


# MARK: algorithms and keys


def test_hs256_hs384_hs512_tokens_are_accepted_with_the_one_secret(make_livehub):
    hub = production(make_livehub, LIVEHUB_JWT_SECRET=SECRET)
    for algorithm in ["HS256", "HS384", "HS512"]:
        response = whoami(hub, sign(SECRET, algorithm, claims()))
        assert response.status_code == 200, (algorithm, response.text)
    owner = sign(SECRET, "HS384", claims("shop-1", roles=["SHOP_OWNER"]))
    created = requests.post(f"{hub.api}/rooms", json={"title": "HS384 room"}, headers={"Authorization": f"Bearer {owner}"}, timeout=5)
    assert created.status_code == 201, created.text
    assert created.json()["shopOwnerId"] == "shop-1"
    assert_refused(hub, sign("another-secret-another-secret-0123", "HS256", claims()), "signature is invalid")


def test_rs256_ps256_via_a_pem_public_key_and_no_algorithm_confusion(make_livehub, keys, tmp_path):
    key_file = tmp_path / "idp.pem"
    key_file.write_text(pem(keys["rsa"]))
    hub = production(make_livehub, LIVEHUB_JWT_PUBLIC_KEY=str(key_file))
    for algorithm in ["RS256", "PS256", "RS512", "PS384"]:
        response = whoami(hub, sign(keys["rsa"], algorithm, claims()))
        assert response.status_code == 200, (algorithm, response.text)
    assert_refused(hub, sign(keys["rsa2"], "RS256", claims()), "signature is invalid")
    # An HS256 token "signed" with the public key's bytes: no HMAC key exists, so it is refused.
    assert_refused(hub, hs256_with_raw_key(key_file.read_bytes(), claims()), "HS256 is not accepted")
    assert_refused(hub, sign(keys["ec"], "ES256", claims()), "ES256 is not accepted")


def test_es256_via_a_pem_public_key(make_livehub, keys, tmp_path):
    key_file = tmp_path / "ec.pem"
    key_file.write_text(pem(keys["ec"]))
    hub = production(make_livehub, LIVEHUB_JWT_PUBLIC_KEY=str(key_file))
    assert whoami(hub, sign(keys["ec"], "ES256", claims())).status_code == 200
    assert_refused(hub, sign(ec.generate_private_key(ec.SECP256R1()), "ES256", claims()), "signature is invalid")


def test_jwks_keys_by_kid_and_reload_on_sighup(make_livehub, keys, tmp_path):
    jwks_file = tmp_path / "jwks.json"
    # Keycloak-like: an RSA signing key without alg, an EC key with alg, and an encryption key.
    encryption = jwk(keys["rsa2"], "enc-1", alg="RSA-OAEP")
    encryption["use"] = "enc"
    jwks_file.write_text(json.dumps({"keys": [jwk(keys["rsa"], "rsa-1"), jwk(keys["ec"], "ec-1", alg="ES256"), encryption]}))
    hub = production(make_livehub, LIVEHUB_JWT_JWKS_FILE=str(jwks_file), LIVEHUB_JWT_SECRET=SECRET)
    assert "(SIGHUP re-reads)" in hub.output()
    for key, algorithm, kid in [(keys["rsa"], "RS256", "rsa-1"), (keys["rsa"], "PS256", "rsa-1"), (keys["ec"], "ES256", "ec-1")]:
        response = whoami(hub, sign(key, algorithm, claims(), kid=kid))
        assert response.status_code == 200, (algorithm, kid, response.text)
    # The secret still works next to the JWKS.
    assert whoami(hub, sign(SECRET, "HS256", claims())).status_code == 200
    assert_refused(hub, sign(keys["rsa"], "RS256", claims(), kid="ec-1"), "does not sign with RS256")

    # A key the identity provider rotated in: refused until the JWKS is re-read.
    rotated = sign(keys["rsa2"], "RS256", claims(), kid="rsa-2")
    assert_refused(hub, rotated, "no key with kid rsa-2")
    jwks_file.write_text(json.dumps({"keys": [jwk(keys["rsa"], "rsa-1"), jwk(keys["rsa2"], "rsa-2")]}))
    hub.proc.send_signal(signal.SIGHUP)
    hub.wait_for(lambda: whoami(hub, rotated).status_code == 200, timeout=10, what="the rotated key after SIGHUP")
    assert hub.proc.poll() is None

    # A broken file on reload keeps the previous keys and says why.
    jwks_file.write_text("{ half written")
    hub.proc.send_signal(signal.SIGHUP)
    hub.wait_for(lambda: "JWT key reload failed" in hub.output(), timeout=10, what="the reload failure in the log")
    assert whoami(hub, rotated).status_code == 200
    assert hub.proc.poll() is None


# MARK: claims


def test_claims_are_checked_with_clear_401s(make_livehub):
    hub = production(
        make_livehub, LIVEHUB_JWT_SECRET=SECRET, LIVEHUB_JWT_ISSUER="https://auth.example/realms/shop", LIVEHUB_JWT_AUDIENCE="livehub")
    good = claims(iss="https://auth.example/realms/shop", aud=["account", "livehub"])
    assert whoami(hub, sign(SECRET, "HS256", good)).status_code == 200
    no_exp = dict(good)
    del no_exp["exp"]
    assert_refused(hub, sign(SECRET, "HS256", no_exp), "no exp claim")
    assert_refused(hub, sign(SECRET, "HS256", dict(good, exp="9999999999")), "exp claim must be a number")
    assert_refused(hub, sign(SECRET, "HS256", dict(good, exp=int(time.time()) - 3600)), "expired")
    assert_refused(hub, sign(SECRET, "HS256", dict(good, iss="https://evil.example")), "not issued by https://auth.example/realms/shop")
    assert_refused(hub, sign(SECRET, "HS256", dict(good, aud="other-app")), "not meant for livehub")
    assert_refused(hub, unsigned(good), "alg none")
    assert_refused(hub, "not.a.jwt", "well-formed")
    # A huge exp is no trap: the token is accepted and the server carries on.
    assert whoami(hub, sign(SECRET, "HS256", dict(good, exp=10**30))).status_code == 200
    assert requests.get(f"{hub.base}/healthz", timeout=5).status_code == 200


# MARK: no dev back door


def test_the_dev_token_endpoint_is_404_outside_dev_mode(make_livehub):
    hub = production(make_livehub, LIVEHUB_JWT_SECRET=SECRET)
    response = requests.post(f"{hub.base}/v1/dev/tokens", json={"role": "SHOP_OWNER"}, timeout=5)
    assert response.status_code == 404
    assert set(response.json()) == {"error", "message"}


@pytest.mark.parametrize("trust_loopback", [False, True])
def test_callbacks_from_loopback_need_the_internal_token_outside_dev_mode(make_livehub, trust_loopback):
    env = {"LIVEHUB_JWT_SECRET": SECRET}
    if trust_loopback:
        env["LIVEHUB_CALLBACK_TRUST_LOOPBACK"] = "1"
    hub = production(make_livehub, **env)
    owner = sign(SECRET, "HS256", claims("shop-1", roles=["SHOP_OWNER"]))
    room = requests.post(f"{hub.api}/rooms", json={"title": "callback"}, headers={"Authorization": f"Bearer {owner}"}, timeout=5).json()
    response = requests.post(f"{hub.api}/callback/start?name={room['streamKey']}", timeout=5)
    if trust_loopback:
        assert response.status_code == 200, response.text
        return
    assert response.status_code == 401, response.text
    assert set(response.json()) == {"error", "message"}
    assert hub.room(room["id"])["status"] == "PENDING"
    response = requests.post(f"{hub.api}/callback/start?name={room['streamKey']}", headers={"Authorization": f"Bearer {INTERNAL}"}, timeout=5)
    assert response.status_code == 200, response.text
    assert hub.room(room["id"])["status"] == "LIVE"


# MARK: WebSockets at token expiry


class Bell:
    """A python-socketio client recording `error` events and its disconnect."""

    def __init__(self, hub, token):
        self.errors = []
        self.disconnected = threading.Event()
        self.client = socketio.Client(reconnection=False)
        self.client.on("error", lambda data=None: self.errors.append(data))
        self.client.on("disconnect", lambda *reason: self.disconnected.set())
        self.client.connect(f"http://127.0.0.1:{hub.http_port}", transports=["websocket"], auth={"token": token}, wait_timeout=5)


def test_websockets_are_closed_when_their_token_expires_and_guests_stay(make_livehub):
    hub = production(make_livehub, LIVEHUB_JWT_SECRET=SECRET, LIVEHUB_JWT_LEEWAY="0")
    owner = sign(SECRET, "HS256", claims("shop-1", roles=["SHOP_OWNER"], lifetime=3600))
    room = requests.post(f"{hub.api}/rooms", json={"title": "expiry"}, headers={"Authorization": f"Bearer {owner}"}, timeout=5).json()
    topic = f"/topic/live/{room['id']}/chat"
    ws_url = f"ws://127.0.0.1:{hub.http_port}/ws/live"

    short = sign(SECRET, "HS256", claims("viewer-1", lifetime=4))
    expiring = StompWS(ws_url, token=short)
    expiring.subscribe(topic, "sub-0", receipt="r0")
    guest = StompWS(ws_url)
    guest.subscribe(topic, "sub-0", receipt="r1")
    lasting = StompWS(ws_url, token=sign(SECRET, "HS256", claims("viewer-2", lifetime=3600)))
    lasting.subscribe(topic, "sub-0", receipt="r2")
    bell_short = Bell(hub, sign(SECRET, "HS256", claims("viewer-1", lifetime=4)))
    bell_lasting = Bell(hub, sign(SECRET, "HS256", claims("viewer-2", lifetime=3600)))
    started = time.time()

    _, headers, body = expiring.expect("ERROR", timeout=15)
    assert headers["message"] == "token expired"
    assert body == "token expired"
    assert expiring.closed.wait(5), "the STOMP connection was not closed"
    assert bell_short.disconnected.wait(5), "the Socket.IO client saw no disconnect"
    assert {"error": "token_expired", "message": "token expired"} in bell_short.errors
    elapsed = time.time() - started
    assert 2 <= elapsed <= 10, elapsed

    # The guest and the long-lived user are still there and still get the room's chat.
    assert not guest.closed.is_set() and not lasting.closed.is_set()
    assert bell_lasting.client.connected and not bell_lasting.disconnected.is_set()
    lasting.send_json(f"/app/live/{room['id']}/chat", {"message": "still here"}, receipt="chat")
    lasting.expect("RECEIPT", where=lambda h, b: h.get("receipt-id") == "chat")
    for client in (guest, lasting):
        (_, message), = client.messages(topic, 1)
        assert message["message"] == "still here"
    guest.close()
    lasting.close()
    bell_lasting.client.disconnect()
