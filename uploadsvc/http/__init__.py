"""The HTTP layer: one blueprint per protocol, JSON error rendering and WSGI middlewares."""
from flask import Flask

from ..core.extensions import cors
from . import (
    admin,
    api,
    auth,
    downloads,
    errors,
    followups,
    metrics,
    middleware,
    openapi,
    page,
    ratelimit,
    requests,
    tus,
)


def init_app(app: Flask) -> None:
    """Serve every protocol, each error in the API's JSON shape."""
    requests.init_app(app)
    followups.init_app(app)
    middleware.install(app)
    auth.init_app(app)
    ratelimit.init_app(app)
    app.register_blueprint(api.bp)
    admin.init_app(app)
    metrics.init_app(app)
    app.register_blueprint(downloads.bp)
    app.register_blueprint(page.bp)
    tus.init_app(app)
    openapi.init_app(app)
    cors.init_app(app, resources={r"/api/*": {"origins": app.config["CORS_ORIGINS"]},
                                  **tus.cors_resources(app)})
    errors.register_error_handlers(app)
