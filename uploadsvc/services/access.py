"""API keys and who a request's client is (requests are checked in http.auth).

Off by default (existing front ends send no key); on with AUTH_REQUIRED. Only the SHA-256 of
a key is stored and looked up, so a copy of the database holds no usable key. Uploads belong
to the key that created them (the services filter by owner_id()): another key gets 404.
"""
import hashlib
import hmac
import logging
import secrets

from flask import g, has_request_context, request
from sqlalchemy import select

from ..core.extensions import db
from ..core.models import ApiKey, utcnow

log = logging.getLogger(__name__)

TOKEN_PREFIX = "usk_"


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_key(name: str) -> tuple[ApiKey, str]:
    """A new key and its token; the token is shown once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(name=name, key_hash=hash_key(token), prefix=token[:12])
    db.session.add(key)
    db.session.commit()
    log.info("api key %d (%s) created", key.id, name)
    return key, token


def list_keys() -> list[ApiKey]:
    keys = list(db.session.execute(select(ApiKey).order_by(ApiKey.id)).scalars())
    db.session.commit()
    return keys


def revoke_key(key_id: int) -> ApiKey | None:
    """Revoke a key at once; its uploads stay, reachable by no one until cleanup."""
    key = db.session.get(ApiKey, key_id)
    if key is not None and key.revoked_at is None:
        key.revoked_at = utcnow()
        log.info("api key %d (%s) revoked", key.id, key.name)
    db.session.commit()
    return key


def authenticate(token: str) -> ApiKey | None:
    """The active key with this token, if any (looked up by hash, compared in constant time)."""
    digest = hash_key(token)
    key = db.session.execute(select(ApiKey).filter_by(key_hash=digest)).scalar_one_or_none()
    db.session.commit()  # end the read: on SQLite every transaction holds the write lock
    if key is None or not hmac.compare_digest(key.key_hash, digest) or not key.is_active:
        return None
    return key


def owner_id() -> int:
    """The key uploads are scoped to in this request; 0 without access control."""
    return g.get("api_key_id", 0)


def client_id() -> str:
    """Who is asking, for per-client limits: the API key, else the remote address."""
    key_id = g.get("api_key_id", 0)
    if key_id:
        return f"key:{key_id}"
    return f"ip:{request.remote_addr or '-'}" if has_request_context() else "local"
