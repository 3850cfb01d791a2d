"""The original server's operator endpoints under /api: upload history, daily figures, events.

They name every user's files, so they exist only with ADMIN_API on: off, the blueprint is
not registered and each of them is an unknown route (the same 404, 405 and preflight as
any). With API keys on, an owner sees only their own uploads and events.
"""
from flask import Blueprint, Flask, request

from ..core.models import Upload, UploadEvent
from ..core.units import parse_bool
from ..services import admin
from .admin_schemas import DatabaseStatsQuery, HistoryQuery, LogsQuery
from .answers import iso
from .schemas import load

bp = Blueprint("admin", __name__, url_prefix="/api")


def _present(**fields) -> dict:
    """The fields that have a value: unknown ones are left out, as upload-status does."""
    return {name: value for name, value in fields.items() if value is not None}


def upload_item(upload: Upload) -> dict:
    """One upload as history lists it: never its key, hash state, client or name digest."""
    return _present(fileName=upload.file_name, md5=upload.md5, size=upload.size,
                    status=upload.status, protocol=upload.protocol, path=upload.path,
                    startTime=iso(upload.started_at), lastUpdate=iso(upload.updated_at),
                    completedAt=iso(upload.completed_at))


def event_item(event: UploadEvent) -> dict:
    """One event as the logs list it (without the upload's key)."""
    return _present(id=event.id, kind=event.kind, fileName=event.file_name, md5=event.md5,
                    bytes=event.bytes, durationMs=event.duration_ms,
                    createdAt=iso(event.created_at))


def day_item(day: admin.Day) -> dict:
    return _present(date=day.day.isoformat(), events=day.events,
                    bytesReceived=day.bytes_received, successRate=day.success_rate,
                    meanThroughputBytesPerSecond=day.throughput)


@bp.get("/uploads/history")
def history():
    """The uploads with a status, the most recently started first."""
    args = load(HistoryQuery(), request.args)
    uploads = admin.history(args["status"], args["limit"])
    return {"success": True, "data": [upload_item(upload) for upload in uploads]}


@bp.get("/database/stats")
def database_stats():
    """Uploads by status now, and the figures of each of the last `days` UTC days."""
    args = load(DatabaseStatsQuery(), request.args)
    days = admin.daily(args["days"])
    return {"success": True, "data": {"uploads": admin.current_counts(), "days": args["days"],
                                      "daily": [day_item(day) for day in days]}}


@bp.get("/logs")
def logs():
    """The upload events of the last 7 days, newest first."""
    args = load(LogsQuery(), request.args)
    events = admin.recent_events(args["limit"])
    return {"success": True, "data": [event_item(event) for event in events]}


def init_app(app: Flask) -> None:
    """Serve the operator endpoints only when ADMIN_API is on."""
    if parse_bool(app.config["ADMIN_API"]):
        app.register_blueprint(bp)
