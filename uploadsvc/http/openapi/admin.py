"""The operator endpoints (history, daily figures, events), for the OpenAPI document: kept
in it only when UPLOADSVC_ADMIN_API registers them."""
from collections.abc import Mapping

from apispec import APISpec
from marshmallow import fields

from ...core.models import COMPLETED, UPLOADING, UploadEvent
from ..admin_schemas import DatabaseStatsQuery, HistoryQuery, LogsQuery
from .pages import error
from .responses import PATH_DOC, TIME_DOC, UNAVAILABLE, Answer

# A tus upload's md5 is empty until its finished file has been hashed.
MD5_OR_EMPTY = {"pattern": "^([0-9a-fA-F]{32})?$",
                "description": "hex MD5 of the whole file; empty while a tus upload is unfinished"}
KINDS = [UploadEvent.CREATED, UploadEvent.CHUNK_STORED, UploadEvent.COMPLETED,
         UploadEvent.VERIFICATION_FAILED, UploadEvent.DELETED, UploadEvent.EXPIRED,
         UploadEvent.CONCATENATED]
OFF = ("Served (and listed here) only when UPLOADSVC_ADMIN_API is true; off, it is an "
       "unknown route (404). With UPLOADSVC_AUTH_REQUIRED on, a key sees only its own "
       "uploads and events.")


def _count(**metadata) -> fields.Integer:
    return fields.Integer(required=True, metadata={"minimum": 0, **metadata})


def _ok() -> fields.Boolean:
    return fields.Boolean(required=True, metadata={"enum": [True]})


class HistoryItem(Answer):
    fileName = fields.String(required=True)
    md5 = fields.String(required=True, metadata=MD5_OR_EMPTY)
    status = fields.String(required=True, metadata={"enum": [UPLOADING, COMPLETED]})
    protocol = fields.String(required=True, metadata={"enum": ["api", "tus", "ietf"]})
    startTime = fields.String(required=True, metadata=TIME_DOC)
    lastUpdate = fields.String(required=True, metadata=TIME_DOC)
    size = fields.Integer(metadata={"minimum": 0, "description": "completed uploads only"})
    path = fields.String(metadata={**PATH_DOC, "description": "completed uploads only"})
    completedAt = fields.String(metadata={**TIME_DOC, "description": "completed uploads only"})


class History(Answer):
    success = _ok()
    data = fields.List(fields.Nested(HistoryItem), required=True,
                       metadata={"description": "the most recently started first"})


class EventCounts(Answer):
    created = _count()
    chunksStored = _count()
    completed = _count()
    verificationFailed = _count()
    deleted = _count()
    expired = _count()


class DayFigures(Answer):
    date = fields.String(required=True, metadata={"format": "date", "description": "UTC day"})
    events = fields.Nested(EventCounts, required=True)
    bytesReceived = _count(description="bytes of the chunks and tus writes stored that day")
    successRate = fields.Float(metadata={
        "minimum": 0, "description": "completed / created that day (above 1 when uploads "
                                     "begun earlier completed); absent without creations"})
    meanThroughputBytesPerSecond = fields.Integer(metadata={
        "minimum": 0, "description": "uploads completed that day, start to completion; "
                                     "absent without any"})


class UploadCounts(Answer):
    uploading = _count()
    completed = _count()


class DatabaseFigures(Answer):
    uploads = fields.Nested(UploadCounts, required=True, metadata={"description": "now"})
    days = fields.Integer(required=True, metadata={"minimum": 1})
    daily = fields.List(fields.Nested(DayFigures), required=True, metadata={
        "description": "one entry per UTC day, today first, `days` entries"})


class DatabaseStats(Answer):
    success = _ok()
    data = fields.Nested(DatabaseFigures, required=True)


class LogEvent(Answer):
    id = fields.Integer(required=True, metadata={"minimum": 1})
    kind = fields.String(required=True, metadata={"enum": KINDS})
    fileName = fields.String(required=True)
    md5 = fields.String(required=True, metadata=MD5_OR_EMPTY)
    createdAt = fields.String(required=True, metadata=TIME_DOC)
    bytes = fields.Integer(metadata={"minimum": 0})
    durationMs = fields.Integer(metadata={"minimum": 0})


class Logs(Answer):
    success = _ok()
    data = fields.List(fields.Nested(LogEvent), required=True,
                       metadata={"description": "the last 7 days, newest first"})


def _get(operation_id: str, summary: str, query, answer: str, description: str) -> dict:
    return {"get": {
        "summary": summary, "operationId": operation_id, "description": OFF,
        "parameters": [{"in": "query", "schema": query}],
        "responses": {
            "200": {"description": description,
                    "content": {"application/json": {"schema": answer}}},
            "400": error(400, "A query parameter is not valid (`invalid_input`)."),
            "401": error(401),
            "429": error(429, "A rate limit (UPLOADSVC_RATE_LIMIT)."), "500": error(500),
            "503": UNAVAILABLE,
        }}}


def add_paths(spec: APISpec, config: Mapping) -> None:
    """Register the operator endpoints on spec."""
    for name, schema in [("AdminHistoryItem", HistoryItem), ("AdminHistory", History),
                         ("AdminEventCounts", EventCounts), ("AdminDay", DayFigures),
                         ("AdminUploadCounts", UploadCounts),
                         ("AdminDatabaseFigures", DatabaseFigures),
                         ("AdminDatabaseStats", DatabaseStats), ("AdminLogEvent", LogEvent),
                         ("AdminLogs", Logs)]:
        spec.components.schema(name, schema=schema)
    spec.path("/api/uploads/history", operations=_get(
        "uploadHistory", "Uploads with a status, the most recently started first",
        HistoryQuery, "AdminHistory", "The uploads."))
    spec.path("/api/database/stats", operations=_get(
        "databaseStats", "Uploads by status now, and figures of each of the last days",
        DatabaseStatsQuery, "AdminDatabaseStats", "The figures."))
    spec.path("/api/logs", operations=_get(
        "logs", "Upload events of the last 7 days, newest first", LogsQuery, "AdminLogs",
        "The events."))
