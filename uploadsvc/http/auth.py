"""Requests need an API key (Authorization: Bearer) when AUTH_REQUIRED is on."""
from flask import Flask, current_app, g, request

from ..services.access import authenticate
from ..services.errors import AuthRequired

# Paths that need a key when access control is on (and the tus endpoint, TUS_PREFIX);
# health and the API document stay public.
PROTECTED_PREFIXES = ("/api/", "/uploads/")
PUBLIC_ENDPOINTS = {"api.health", "openapi.openapi_document"}


def _require_key() -> None:
    if not current_app.config["AUTH_REQUIRED"] or request.method == "OPTIONS":
        return
    prefixes = (*PROTECTED_PREFIXES, current_app.config.get("TUS_PREFIX") or "/files")
    if request.endpoint in PUBLIC_ENDPOINTS or not request.path.startswith(prefixes):
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthRequired()
    key = authenticate(token.strip())
    if key is None:
        raise AuthRequired("The API key is not valid or has been revoked.")
    g.api_key_id = key.id


def init_app(app: Flask) -> None:
    app.before_request(_require_key)
