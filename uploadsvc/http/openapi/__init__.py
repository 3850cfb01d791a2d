"""The OpenAPI 3 document of the HTTP API, built from the code and served at /api/openapi.json.

Each protocol has a module here with an ``add_paths(spec, config)`` that registers its
operations; ``MODULES`` lists them. Tests check real answers against the document, so it
cannot drift.
"""
from collections.abc import Mapping

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, current_app

from ...version import __version__
from . import admin, api, operations, pages, tus
from .responses import UNAVAILABLE, UNAVAILABLE_ANSWER

MODULES = [api, pages, tus, operations, admin]

bp = Blueprint("openapi", __name__)


def build(config: Mapping) -> dict:
    """The document as a dict, with limits taken from the app's configuration."""
    spec = APISpec(
        title="uploadsvc", version=__version__, openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Resumable chunked uploads of very large files."},
    )
    spec.components.security_scheme("apiKey", {"type": "http", "scheme": "bearer"})
    spec.components.response(UNAVAILABLE, UNAVAILABLE_ANSWER)
    for module in MODULES:
        module.add_paths(spec, config)
    document = spec.to_dict()
    # An API key is needed only when UPLOADSVC_AUTH_REQUIRED is on: either way is documented.
    document["security"] = [{}, {"apiKey": []}]
    schemas = document["components"]["schemas"]
    for name in ("Identity", "ChunkUpload"):
        schemas[name]["properties"]["totalChunks"]["maximum"] = config["MAX_TOTAL_CHUNKS"]
    return document


@bp.get("/api/openapi.json")
def openapi_document():
    """This service's OpenAPI 3 document."""
    cache = current_app.extensions.setdefault("openapi", {})
    if "document" not in cache:
        cache["document"] = build(current_app.config)
    return cache["document"]


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
