"""The upload flows: the only code that opens and commits transactions."""
from flask import Flask

from ..storage import open_store


def init_app(app: Flask) -> None:
    """Give the app its store, as the configuration names it, and its hooks."""
    from . import events, leases

    config = app.config
    app.extensions["store"] = open_store(
        config["DATA_DIR"], fsync=config["FSYNC"], storage_url=config["STORAGE_URL"],
        addressing_style=config["S3_ADDRESSING_STYLE"], timeout=float(config["S3_TIMEOUT"]),
        part_size=int(config["S3_PART_SIZE"]), equal_parts=config["S3_EQUAL_PARTS"],
        orphan_age=config["S3_ORPHAN_AGE"].total_seconds(),
        max_parts=int(config["S3_MAX_PARTS"]))
    limit = app.extensions["store"].max_chunks
    if limit and int(config["MAX_TOTAL_CHUNKS"]) > limit:  # refused with 400, not at completion
        config["MAX_TOTAL_CHUNKS"] = limit
    leases.init_app(app)
    events.init_app(app)
