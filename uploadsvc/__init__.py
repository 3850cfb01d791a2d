"""uploadsvc: resumable chunked uploads of very large files, with verified results."""
import os

from flask import Flask

__version__ = "1.0.0"


def create_app(test_config: dict | None = None) -> Flask:
    """Build the application; each step below wires one part in."""
    app = Flask(
        __name__,
        instance_relative_config=True,
        instance_path=os.environ.get("UPLOADSVC_INSTANCE_PATH") or None,
    )
    # Imported here, not at module top: these modules import __version__ from this package.
    from . import (
        access,
        api,
        cli,
        database,
        downloads,
        errors,
        limits,
        logs,
        metrics,
        openapi,
        page,
        proxy,
        settings,
        socketbody,
        spooling,
        storage,
        tus,
    )
    from .extensions import cors

    settings.load(app, test_config)
    logs.init_app(app)
    database.init_app(app)
    storage.init_app(app)
    spooling.init_app(app)
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
    cli.init_app(app)
    return app
