"""Validation of the operator endpoints' query parameters (the rules docs/api.md states)."""
from marshmallow import EXCLUDE, Schema, fields, validate

from ..core.models import COMPLETED, UPLOADING
from .schemas import FormInteger

MAX_LIMIT = 1000
MAX_DAYS = 366


class Query(Schema):
    """Query parameters: unknown ones are ignored, as the other routes ignore unknown fields."""

    class Meta:
        unknown = EXCLUDE


def _limit(default: int) -> FormInteger:
    return FormInteger(load_default=default, validate=validate.Range(1, MAX_LIMIT),
                       metadata={"description": f"most rows to answer, 1 to {MAX_LIMIT}"})


class HistoryQuery(Query):
    """GET /api/uploads/history."""

    status = fields.String(load_default=COMPLETED,
                           validate=validate.OneOf([UPLOADING, COMPLETED]),
                           metadata={"description": "the uploads with this status"})
    limit = _limit(50)


class DatabaseStatsQuery(Query):
    """GET /api/database/stats."""

    days = FormInteger(load_default=7, validate=validate.Range(1, MAX_DAYS),
                       metadata={"description": f"UTC days to report, today included, "
                                                f"1 to {MAX_DAYS}"})


class LogsQuery(Query):
    """GET /api/logs."""

    limit = _limit(100)
