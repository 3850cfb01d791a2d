"""uploadsvc: resumable chunked uploads of very large files, with verified results."""
import os

from .version import __version__

__all__ = ["__version__", "create_app"]


def create_app(test_config: dict | None = None):
    """Build the application; each step below wires one part in.

    Flask and the server's layers are imported here, not at module top: the command-line
    client (uploadsvc.client) lives in this package too and needs none of them.
    """
    from flask import Flask

    from . import cli, http, services
    from .cli.errors import CommandError
    from .core import database, logs, settings
    from .storage import StorageError

    app = Flask(
        __name__,
        instance_relative_config=True,
        instance_path=os.environ.get("UPLOADSVC_INSTANCE_PATH") or None,
    )
    settings.load(app, test_config)
    logs.init_app(app)
    database.init_app(app)
    try:
        services.init_app(app)
    except StorageError as exc:  # a bucket that cannot be used: one line, now
        raise CommandError(f"cannot start: {exc}") from None
    http.init_app(app)
    cli.init_app(app)
    return app
