"""The OpenAPI 3 document of the HTTP API, built from the code and served at /api/openapi.json.

Each protocol has a module here with an ``add_paths(spec, config)`` that registers its
operations; ``MODULES`` lists them. The document keeps only what the app routes under its
configuration (``served``). Tests check real answers against the document, so it cannot
drift.
"""
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, current_app

from ...version import __version__
from . import admin, api, operations, pages, served, tus
from .responses import UNAVAILABLE, UNAVAILABLE_ANSWER

MODULES = [api, pages, tus, operations, admin]

bp = Blueprint("openapi", __name__)


def build(app: Flask) -> dict:
    """The document of what app serves, as a dict, with limits from its configuration."""
    config = app.config
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
    served.keep_routed(document, app.url_map)
    served.drop_unused(document)
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
        cache["document"] = build(current_app)
    return cache["document"]


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
