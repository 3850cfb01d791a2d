"""The URL of an upload on the tus endpoint, as both of its protocols announce it."""
from flask import current_app, url_for

from ..core.models import Upload


def location(upload: Upload) -> str:
    """TUS_BASE_URL/<key> if set (a proxy's public address), else this server's own."""
    base = current_app.config["TUS_BASE_URL"]
    if base:
        return f"{base.rstrip('/')}/{upload.key}"
    return url_for("tus.upload", key=upload.key, _external=True)
