"""Token mangling for tests (no secret needed: the results must be refused)."""
import base64
import json


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def expired_like(token):
    """The same claims with `exp` in the past, keeping the old signature (so: a bad signature)."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["exp"] = 1
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


def sign(secret, claims):
    """HS256 with the server's dev secret (read from its data directory)."""
    import hashlib
    import hmac
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def expired_token(data_dir, user_id="dev-viewer"):
    secret = (data_dir / "jwt-secret").read_text().strip()
    return sign(secret, {"sub": user_id, "username": user_id, "exp": 1_000_000_000})
