"""Signing what the service sends to hooks: HMAC-SHA256 over a timestamp and the body, in
one header, as GitHub and Stripe sign their webhooks (docs/hooks.md shows how to verify)."""
import hashlib
import hmac
import time

SIGNATURE_HEADER = "Uploadsvc-Signature"
# How far a receiver should accept a signature's time from its own clock (replays beyond).
TOLERANCE_SECONDS = 300


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The signature header's value: ``t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">``."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(secret: str, body: bytes, header: str, now: float | None = None,
           tolerance: int = TOLERANCE_SECONDS) -> bool:
    """Whether header signs body with secret, made within tolerance seconds of now."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split(",v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))
