"""Upload statistics: counts by status, bytes received, success rate, throughput."""
from datetime import timedelta

from sqlalchemy import func, select

from ..core.extensions import db
from ..core.models import (
    API,
    COMPLETED,
    IETF,
    TUS,
    UPLOADING,
    EventDay,
    Upload,
    UploadEvent,
    utcnow,
)

# The protocols uploads arrive by (chunks of /api, tus 1.0, the IETF draft), always listed.
PROTOCOLS = (API, TUS, IETF)
# The event kinds counted, besides chunks stored (whose bytes are the bytes received).
KINDS = [UploadEvent.CREATED, UploadEvent.COMPLETED, UploadEvent.VERIFICATION_FAILED,
         UploadEvent.DELETED, UploadEvent.EXPIRED]


def success_rate(completed: int, created: int) -> float | None:
    """Completed per created upload, to 4 places; None when none was created."""
    return round(completed / created, 4) if created else None


def throughput(total_bytes: int | None, total_ms: int | None) -> int | None:
    """Mean bytes per second of completed uploads; None without a timed one."""
    return int(total_bytes * 1000 / total_ms) if total_ms else None


def collect_stats(now=None) -> dict:
    """Counts by status, bytes received, success rate, throughput, and the last 24 hours."""
    now = now or utcnow()
    counted = db.session.execute(
        select(Upload.protocol, Upload.status, func.count())
        .group_by(Upload.protocol, Upload.status)).all()
    by_status: dict[str, int] = {}
    by_protocol = {protocol: {UPLOADING: 0, COMPLETED: 0} for protocol in PROTOCOLS}
    for protocol, status, count in counted:
        by_status[status] = by_status.get(status, 0) + count
        by_protocol.setdefault(protocol, {UPLOADING: 0, COMPLETED: 0})[status] = count
    events = _event_totals(None)
    recent = _event_totals(now - timedelta(hours=24))
    timed = db.session.execute(
        select(func.sum(UploadEvent.bytes), func.sum(UploadEvent.duration_ms))
        .filter_by(kind=UploadEvent.COMPLETED).where(UploadEvent.duration_ms > 0)
    ).one()
    db.session.commit()
    created = events["created"]
    return {
        "uploads": {UPLOADING: by_status.get(UPLOADING, 0), COMPLETED: by_status.get(COMPLETED, 0)},
        "uploadsByProtocol": by_protocol,
        "bytesReceived": events["bytes_received"],
        "successRate": success_rate(events["completed"], created),
        "meanThroughputBytesPerSecond": throughput(*timed),
        "events": events,
        "last24h": recent,
    }


def _event_totals(since) -> dict:
    query = select(UploadEvent.kind, func.count(), func.coalesce(func.sum(UploadEvent.bytes), 0))
    if since is not None:
        query = query.where(UploadEvent.created_at >= since)
    rows = {kind: (count, total) for kind, count, total in
            db.session.execute(query.group_by(UploadEvent.kind)).all()}
    if since is None:  # all time: with the events pruned into daily totals
        for kind, count, total in db.session.execute(
                select(EventDay.kind, func.sum(EventDay.count), func.sum(EventDay.bytes))
                .group_by(EventDay.kind)).all():
            kept = rows.get(kind, (0, 0))
            rows[kind] = (kept[0] + int(count), int(kept[1]) + int(total))
    totals = {kind: rows.get(kind, (0, 0))[0] for kind in KINDS}
    totals["chunks_stored"] = rows.get(UploadEvent.CHUNK_STORED, (0, 0))[0]
    totals["bytes_received"] = int(rows.get(UploadEvent.CHUNK_STORED, (0, 0))[1])
    return totals
