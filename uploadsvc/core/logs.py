"""Logging to stdout, as text for people or as JSON lines for log shippers (LOG_FORMAT).

gunicorn logs one line per request itself (its access log); the app logs one line per
upload event. In JSON mode gunicorn.conf.py also renders gunicorn's own lines as JSON, with
gunicorn_config() below, so that every line of the server's output is one JSON object.
"""
import logging.config
from collections.abc import Mapping

from flask import Flask
from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s"
TEXT_DATEFMT = "[%Y-%m-%d %H:%M:%S %z]"  # as gunicorn writes its own lines
JSON_FIELDS = "%(levelname)s %(name)s %(process)d %(message)s"
JSON_RENAMED = {"levelname": "level", "name": "logger", "process": "pid"}
# gunicorn's access-log atoms, as JSON fields.
ACCESS_FIELDS = {"remote": "h", "method": "m", "path": "U", "query": "q", "protocol": "H",
                 "status": "s", "bytes": "B", "duration_ms": "M", "user_agent": "a",
                 "referer": "f"}
_INTEGER_ATOMS = {"s", "B", "M"}

_applied: tuple | None = None


def event_fields(event: str, upload, **more) -> dict:
    """The fields of an upload event line, for `extra=`: JSON lines carry them, text skips."""
    return {"event": event, "upload_id": upload.key, "md5": upload.md5,
            "file_name": upload.file_name, **more}


class AccessJsonFormatter(JsonFormatter):
    """gunicorn's access lines as JSON: the atoms it formats its line from become fields."""

    def add_fields(self, log_data, record, message_dict) -> None:
        super().add_fields(log_data, record, message_dict)
        atoms = record.args if isinstance(record.args, Mapping) else {}
        for field, atom in ACCESS_FIELDS.items():
            value = atoms.get(atom)
            if atom in _INTEGER_ATOMS and value is not None:
                try:
                    value = int(value)
                except (TypeError, ValueError):
                    pass
            log_data[field] = value


def formatter(log_format: str, factory=JsonFormatter) -> dict:
    """A dictConfig formatter for LOG_FORMAT: "json" or anything else for text."""
    if log_format == "json":
        return {"()": factory, "fmt": JSON_FIELDS, "rename_fields": JSON_RENAMED,
                "timestamp": "time"}
    return {"format": TEXT_FORMAT, "datefmt": TEXT_DATEFMT}


def app_config(log_format: str, level: str) -> dict:
    """The process's logging: records to stdout; the app's at `level`, others' at WARNING."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"uploadsvc": formatter(log_format)},
        "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "uploadsvc",
                                "stream": "ext://sys.stdout"}},
        "root": {"level": "WARNING", "handlers": ["stdout"]},
        "loggers": {"uploadsvc": {"level": level}},
    }


def gunicorn_config(level: str) -> dict:
    """gunicorn's logconfig_dict for JSON lines: access lines to stdout, its own to stderr."""
    def handler(name: str, stream: str) -> dict:
        return {"class": "logging.StreamHandler", "formatter": name, "stream": stream}

    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": formatter("json"),
                       "access": formatter("json", factory=AccessJsonFormatter)},
        "handlers": {"error": handler("json", "ext://sys.stderr"),
                     "access": handler("access", "ext://sys.stdout")},
        "root": {"level": "WARNING", "handlers": ["error"]},
        "loggers": {
            "gunicorn.error": {"level": level.upper(), "handlers": ["error"],
                               "propagate": False, "qualname": "gunicorn.error"},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False,
                                "qualname": "gunicorn.access"},
        },
    }


def init_app(app: Flask) -> None:
    """Configure logging once per process (again only if LOG_FORMAT or LOG_LEVEL change)."""
    global _applied
    wanted = (str(app.config["LOG_FORMAT"]).lower(), str(app.config["LOG_LEVEL"]).upper())
    if wanted != _applied:
        logging.config.dictConfig(app_config(*wanted))
        _applied = wanted
