"""Rate limits per client (API key, else remote address) with Flask-Limiter."""
from flask import Flask
from flask_limiter import Limiter

from ..services import access


def init_app(app: Flask) -> None:
    """One budget per client across all routes (RATE_LIMIT), off when it is empty."""
    config = app.config
    config.setdefault("RATELIMIT_ENABLED", bool(config["RATE_LIMIT"]))
    config.setdefault("RATELIMIT_APPLICATION", config["RATE_LIMIT"] or None)
    config.setdefault("RATELIMIT_STORAGE_URI", config["RATE_LIMIT_STORAGE_URI"])
    config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    # One Limiter per app: its settings and storage are per instance, not per app.
    Limiter(key_func=access.client_id, app=app)
