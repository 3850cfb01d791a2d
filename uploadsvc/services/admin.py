"""Operator queries (the original server's history, stats and logs), scoped to one owner.

Every query is bounded: LIMIT for rows, GROUP BY on the UTC day for figures (DATE() means the
same on SQLite and MySQL: the columns hold naive UTC times), so nothing large is read.
"""
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select

from ..core.extensions import db
from ..core.models import COMPLETED, UPLOADING, EventDay, Upload, UploadEvent, utcnow
from . import stats
from .access import owner_id

# Events older than this are not listed (the original server's log window).
LOG_WINDOW = timedelta(days=7)
# Event kinds as the API names them, in the order `flask stats` prints them.
EVENT_NAMES = {
    UploadEvent.CREATED: "created",
    UploadEvent.CHUNK_STORED: "chunksStored",
    UploadEvent.COMPLETED: "completed",
    UploadEvent.VERIFICATION_FAILED: "verificationFailed",
    UploadEvent.DELETED: "deleted",
    UploadEvent.EXPIRED: "expired",
}


@dataclass(frozen=True)
class Day:
    """One UTC day's figures, computed as `flask stats` computes its figures."""

    day: date
    events: dict[str, int]
    bytes_received: int
    success_rate: float | None
    throughput: int | None


def history(status: str, limit: int) -> list[Upload]:
    """The owner's uploads with this status, the most recently started first."""
    query = (select(Upload).filter_by(owner_id=owner_id(), status=status)
             .order_by(Upload.started_at.desc(), Upload.id.desc()).limit(limit))
    uploads = list(db.session.execute(query).scalars())
    db.session.commit()
    return uploads


def recent_events(limit: int, now: datetime | None = None) -> list[UploadEvent]:
    """The owner's events of the last LOG_WINDOW, newest first."""
    since = (now or utcnow()) - LOG_WINDOW
    query = (select(UploadEvent).filter_by(owner_id=owner_id())
             .where(UploadEvent.created_at >= since)
             .order_by(UploadEvent.created_at.desc(), UploadEvent.id.desc()).limit(limit))
    events = list(db.session.execute(query).scalars())
    db.session.commit()
    return events


def current_counts() -> dict[str, int]:
    """The owner's uploads by status, now."""
    query = (select(Upload.status, func.count()).filter_by(owner_id=owner_id())
             .group_by(Upload.status))
    by_status = dict(db.session.execute(query).all())
    db.session.commit()
    return {UPLOADING: by_status.get(UPLOADING, 0), COMPLETED: by_status.get(COMPLETED, 0)}


def daily(days: int, now: datetime | None = None) -> list[Day]:
    """The owner's figures for each of the last `days` UTC days (today included), newest
    first; a day without events has zero counts."""
    today = (now or utcnow()).date()
    since = datetime.combine(today - timedelta(days=days - 1), time.min)
    day = func.date(UploadEvent.created_at)
    window = (UploadEvent.owner_id == owner_id(), UploadEvent.created_at >= since)
    counts = db.session.execute(
        select(day, UploadEvent.kind, func.count(), func.coalesce(func.sum(UploadEvent.bytes), 0))
        .where(*window).group_by(day, UploadEvent.kind)).all()
    timed = db.session.execute(
        select(day, func.sum(UploadEvent.bytes), func.sum(UploadEvent.duration_ms))
        .where(*window, UploadEvent.kind == UploadEvent.COMPLETED, UploadEvent.duration_ms > 0)
        .group_by(day)).all()
    folded = db.session.execute(  # pruned events, kept as daily totals
        select(EventDay.day, EventDay.kind, EventDay.count, EventDay.bytes)
        .where(EventDay.owner_id == owner_id(), EventDay.day >= since.date())).all()
    db.session.commit()
    # DATE() is a string on SQLite and a date on MySQL: both print as YYYY-MM-DD.
    rows: dict[str, dict[str, tuple[int, int]]] = {}
    for when, kind, count, total in counts:
        rows.setdefault(str(when), {})[kind] = (count, int(total))
    for when, kind, count, total in folded:
        kept = rows.setdefault(str(when), {}).get(kind, (0, 0))
        rows[str(when)][kind] = (kept[0] + count, kept[1] + total)
    speeds = {str(when): stats.throughput(total, ms) for when, total, ms in timed}
    result = []
    for offset in range(days):
        key = (today - timedelta(days=offset)).isoformat()
        kinds = rows.get(key, {})
        events = {name: kinds.get(kind, (0, 0))[0] for kind, name in EVENT_NAMES.items()}
        result.append(Day(
            day=date.fromisoformat(key), events=events,
            bytes_received=kinds.get(UploadEvent.CHUNK_STORED, (0, 0))[1],
            success_rate=stats.success_rate(events["completed"], events["created"]),
            throughput=speeds.get(key)))
    return result
