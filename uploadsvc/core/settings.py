"""Configuration loading: defaults, instance file, environment, test overrides."""
import os

from flask import Flask

from .config import DefaultConfig
from .units import parse_bool, parse_duration, parse_fsync, parse_origins

# The original Node server's environment names, kept for existing deployments.
SEED_ENV_KEYS = {"MAX_FILE_SIZE": int}
# The longest a presigned URL can be valid (Signature Version 4).
MAX_PRESIGN_SECONDS = 7 * 86400


def load(app: Flask, test_config: dict | None) -> None:
    """Apply configuration in order, then derive the values other parts read."""
    app.config.from_object(DefaultConfig)
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env("UPLOADSVC")
    for key, cast in SEED_ENV_KEYS.items():
        if key in os.environ:
            app.config[key] = cast(os.environ[key])
    if test_config:
        app.config.update(test_config)
    _derive(app)
    app.json.sort_keys = False  # keep answers in the documented key order


def _derive(app: Flask) -> None:
    config = app.config
    data_dir = os.path.abspath(str(config["DATA_DIR"] or app.instance_path))
    config["DATA_DIR"] = data_dir
    os.makedirs(data_dir, exist_ok=True)
    url = config["DATABASE_URL"] or "sqlite:///" + os.path.join(data_dir, "uploadsvc.sqlite3")
    config["DATABASE_URL"] = url
    config["SQLALCHEMY_DATABASE_URI"] = url
    config["MAX_FILE_SIZE"] = int(config["MAX_FILE_SIZE"])
    config["FSYNC"] = parse_fsync(config["FSYNC"])
    config["UPLOAD_EXPIRY"] = parse_duration(config["UPLOAD_EXPIRY"])
    config["S3_ORPHAN_AGE"] = parse_duration(config["S3_ORPHAN_AGE"])
    # On/off switches as written in the environment ("off" is a string, and truthy).
    for key in ("S3_EQUAL_PARTS", "DOWNLOADS", "UPLOAD_PAGE", "RESUMABLE_INTERIM"):
        config[key] = parse_bool(config[key])
    config["CORS_ORIGINS"] = parse_origins(config["CORS_ORIGINS"])
    # A chunk can never be larger than the file; leave room for the multipart envelope.
    config["MAX_CONTENT_LENGTH"] = config["MAX_FILE_SIZE"] + 1024 * 1024
    config["S3_PRESIGNED_DOWNLOADS"] = _presign_seconds(config["S3_PRESIGNED_DOWNLOADS"])


def _presign_seconds(value) -> int:
    """S3_PRESIGNED_DOWNLOADS as whole seconds: 0 (off), or up to SigV4's 7 days."""
    seconds = int(parse_duration(value or 0).total_seconds())
    if not 0 <= seconds <= MAX_PRESIGN_SECONDS:
        raise ValueError(f"UPLOADSVC_S3_PRESIGNED_DOWNLOADS must be 0 (off) to "
                         f"{MAX_PRESIGN_SECONDS} seconds (7 days), not {value!r}")
    return seconds
