"""Cleanup of abandoned uploads and debris, and upload statistics."""
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import and_, func, or_, select

from ..core.extensions import db
from ..core.models import COMPLETED, TUS, UPLOADING, Upload, UploadEvent, utcnow
from ..storage.local import LockBusy, UploadGone
from . import api_uploads

log = logging.getLogger(__name__)

# A chunk directory is made just before its row is committed, and temp files are written
# while a request runs: never treat anything younger than this as debris.
MIN_DEBRIS_AGE = timedelta(minutes=1)


@dataclass
class CleanupReport:
    """What cleanup removed, or would remove with dry_run."""

    expired: list[Upload] = field(default_factory=list)
    orphan_dirs: list[str] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)


def cleanup(older_than: timedelta, dry_run: bool = False) -> CleanupReport:
    """Remove unfinished uploads idle for longer than older_than (tus uploads: past their
    Upload-Expires), chunk directories no unfinished upload owns, and stale temp files.
    Completed files are never touched."""
    report = CleanupReport()
    store = api_uploads.chunk_store()
    now = utcnow()
    cutoff = now - older_than
    stale = db.session.execute(
        select(Upload).filter_by(status=UPLOADING).where(or_(
            and_(Upload.protocol != TUS, Upload.updated_at < cutoff),
            and_(Upload.protocol == TUS, Upload.expires_at <= now)))
    ).scalars().all()
    db.session.commit()
    for upload in stale:
        if dry_run or _expire(upload, cutoff, now):
            report.expired.append(upload)

    debris_cutoff = time.time() - max(older_than, MIN_DEBRIS_AGE).total_seconds()
    owned = set(db.session.execute(select(Upload.key).filter_by(status=UPLOADING)).scalars())
    db.session.commit()
    for key, mtime in list(store.chunk_dir_keys()):
        if key not in owned and mtime < debris_cutoff and not _is_uploading(key):
            report.orphan_dirs.append(store.relative(store.chunks_dir + "/" + key))
            if not dry_run:
                store.delete_chunks(key)
    for path, mtime in list(store.temp_files()):
        if mtime < debris_cutoff:
            report.temp_files.append(store.relative(path))
            if not dry_run:
                store.remove_temp_file(path)
    return report


def _expire(upload: Upload, cutoff, now) -> bool:
    """Remove one idle upload unless a request is using it or it moved meanwhile."""
    store = api_uploads.chunk_store()
    try:
        with store.lock(upload.key, exclusive=True, timeout=0):
            return _expire_locked(upload, cutoff, now)
    except LockBusy:
        return False
    except UploadGone:
        return _expire_locked(upload, cutoff, now)


def _is_stale(upload: Upload, cutoff, now) -> bool:
    if upload.protocol == TUS:
        return upload.expires_at is not None and upload.expires_at <= now
    return upload.updated_at < cutoff


def _expire_locked(upload: Upload, cutoff, now) -> bool:
    # By key too: SQLite hands a deleted row's id to the next new row.
    fresh = db.session.execute(select(Upload).filter_by(id=upload.id, key=upload.key)
                               .execution_options(populate_existing=True)).scalar_one_or_none()
    if fresh is None or fresh.status != UPLOADING or not _is_stale(fresh, cutoff, now):
        db.session.commit()
        return False
    api_uploads.remove(fresh, UploadEvent.EXPIRED)
    return True


def _is_uploading(key: str) -> bool:
    # Re-checked per directory: an upload created after the first query owns its directory.
    found = db.session.execute(select(Upload.status).filter_by(key=key)).scalar_one_or_none()
    db.session.commit()
    return found == UPLOADING


def collect_stats(now=None) -> dict:
    """Counts by status, bytes received, success rate, throughput, and the last 24 hours."""
    now = now or utcnow()
    by_status = dict(db.session.execute(
        select(Upload.status, func.count()).group_by(Upload.status)
    ).all())
    events = _event_totals(None)
    recent = _event_totals(now - timedelta(hours=24))
    throughput = db.session.execute(
        select(func.sum(UploadEvent.bytes), func.sum(UploadEvent.duration_ms))
        .filter_by(kind=UploadEvent.COMPLETED).where(UploadEvent.duration_ms > 0)
    ).one()
    db.session.commit()
    created = events["created"]
    return {
        "uploads": {UPLOADING: by_status.get(UPLOADING, 0), COMPLETED: by_status.get(COMPLETED, 0)},
        "bytesReceived": events["bytes_received"],
        "successRate": round(events["completed"] / created, 4) if created else None,
        "meanThroughputBytesPerSecond": (
            int(throughput[0] * 1000 / throughput[1]) if throughput[1] else None
        ),
        "events": events,
        "last24h": recent,
    }


def _event_totals(since) -> dict:
    query = select(UploadEvent.kind, func.count(), func.coalesce(func.sum(UploadEvent.bytes), 0))
    if since is not None:
        query = query.where(UploadEvent.created_at >= since)
    rows = {kind: (count, total) for kind, count, total in
            db.session.execute(query.group_by(UploadEvent.kind)).all()}
    kinds = [UploadEvent.CREATED, UploadEvent.COMPLETED, UploadEvent.VERIFICATION_FAILED,
             UploadEvent.DELETED, UploadEvent.EXPIRED]
    totals = {kind: rows.get(kind, (0, 0))[0] for kind in kinds}
    totals["chunks_stored"] = rows.get(UploadEvent.CHUNK_STORED, (0, 0))[0]
    totals["bytes_received"] = int(rows.get(UploadEvent.CHUNK_STORED, (0, 0))[1])
    return totals
