"""Cleanup of abandoned uploads and of debris a crash or a race left in the store."""
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import and_, or_, select

from ..core.extensions import db
from ..core.models import TUS, UPLOADING, Upload, UploadEvent, utcnow
from . import leases
from .stores import store
from .uploads import remove

log = logging.getLogger(__name__)

# An upload's place in the store is made just before its row is committed, and temp files
# are written while a request runs: never treat anything younger than this as debris.
MIN_DEBRIS_AGE = timedelta(minutes=1)


@dataclass
class CleanupReport:
    """What cleanup removed, or would remove with dry_run."""

    expired: list[Upload] = field(default_factory=list)
    orphan_dirs: list[str] = field(default_factory=list)  # where bytes of no upload were
    temp_files: list[str] = field(default_factory=list)


def cleanup(older_than: timedelta, dry_run: bool = False) -> CleanupReport:
    """Remove unfinished uploads idle for longer than older_than (tus uploads: past their
    Upload-Expires), bytes no unfinished upload owns, and stale temp files. Completed files
    are never touched."""
    report = CleanupReport()
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
    for key, mtime in list(store().upload_keys()):
        if key not in owned and mtime < debris_cutoff and not _is_uploading(key):
            report.orphan_dirs.append(store().location(key))
            if not dry_run:
                store().delete(key)
    for name, mtime in list(store().temp_files()):
        if mtime < debris_cutoff:
            report.temp_files.append(name)
            if not dry_run:
                store().remove_temp_file(name)
    if not dry_run:
        leases.sweep()
    return report


def _expire(upload: Upload, cutoff, now) -> bool:
    """Remove one idle upload unless a request is using it or it moved meanwhile."""
    with store().locker.try_hold(upload.key) as held:
        return held and _expire_locked(upload, cutoff, now)


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
    remove(fresh, UploadEvent.EXPIRED)
    return True


def _is_uploading(key: str) -> bool:
    # Re-checked per directory: an upload created after the first query owns its directory.
    found = db.session.execute(select(Upload.status).filter_by(key=key)).scalar_one_or_none()
    db.session.commit()
    return found == UPLOADING
