"""The upload flows: the only code that opens and commits transactions."""
from flask import Flask

from ..storage.local import ChunkStore


def init_app(app: Flask) -> None:
    """Give the app its store, rooted at the configured data directory."""
    app.extensions["chunk_store"] = ChunkStore(app.config["DATA_DIR"], fsync=app.config["FSYNC"])
