"""The HTTP layer: blueprints, JSON error rendering and WSGI middlewares."""
from flask import Flask

from ..core.extensions import cors
from ..services import access, errors, metrics
from . import api, downloads, limits, openapi, page, proxy, requests, socketbody, tus


def init_app(app: Flask) -> None:
    """Serve every protocol, each error in the API's JSON shape."""
    requests.init_app(app)
    proxy.init_app(app)
    access.init_app(app)
    limits.init_app(app)
    socketbody.init_app(app)
    app.register_blueprint(api.bp)
    metrics.init_app(app)
    app.register_blueprint(downloads.bp)
    app.register_blueprint(page.bp)
    tus.init_app(app)
    openapi.init_app(app)
    cors.init_app(app, resources={r"/api/*": {"origins": app.config["CORS_ORIGINS"]},
                                  **tus.cors_resources(app)})
    errors.register_error_handlers(app)
