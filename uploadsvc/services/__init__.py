"""The upload flows: the only code that opens and commits transactions."""
from flask import Flask

from ..storage import open_store


def init_app(app: Flask) -> None:
    """Give the app its store, as the configuration names it, and its hooks."""
    from . import hooks

    app.extensions["store"] = open_store(app.config["DATA_DIR"], fsync=app.config["FSYNC"])
    hooks.init_app(app)
