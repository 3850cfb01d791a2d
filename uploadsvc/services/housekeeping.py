"""Cleanup of abandoned uploads and of debris a crash or a race left in the store.

Safe to run on several hosts at once (cron on each): a row goes by a conditional delete,
so only one cleanup records an upload as expired; removing bytes is idempotent; and what
no row owns is taken only once older than the store's margin (Store.orphan_age), so that
a request in flight on another host keeps its objects."""
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import and_, or_, select

from ..core.extensions import db
from ..core.models import STREAMED, UPLOADING, Upload, UploadEvent, utcnow
from ..storage import FileListing
from . import leases
from .stores import store
from .uploads import remove

log = logging.getLogger(__name__)

# An upload's place in the store is made just before its row is committed, and temp files
# are written while a request runs: never treat anything younger than this as debris.
MIN_DEBRIS_AGE = timedelta(minutes=1)
BATCH = 500


@dataclass
class CleanupReport:
    """What cleanup removed, or would remove with dry_run."""

    expired: list[Upload] = field(default_factory=list)
    orphan_dirs: list[str] = field(default_factory=list)  # where bytes of no upload were
    orphan_files: list[str] = field(default_factory=list)  # finished files of no upload
    temp_files: list[str] = field(default_factory=list)


def cleanup(older_than: timedelta, dry_run: bool = False) -> CleanupReport:
    """Remove unfinished uploads idle for longer than older_than (tus uploads: past their
    Upload-Expires), bytes no unfinished upload owns, finished files no upload references
    (where the store lists them), and stale temp files. Completed uploads' files are never
    touched."""
    report = CleanupReport()
    now = utcnow()
    cutoff = now - older_than
    stale = db.session.execute(select(Upload).where(_stale(cutoff, now))).scalars().all()
    db.session.commit()
    for upload in stale:
        if dry_run or _expire(upload, cutoff, now):
            report.expired.append(upload)

    margin = store().orphan_age
    if margin is None:
        margin = max(older_than, MIN_DEBRIS_AGE).total_seconds()
    _remove_debris(report, time.time() - margin, dry_run)
    if not dry_run:
        leases.sweep()
    return report


def _remove_debris(report: CleanupReport, debris_cutoff: float, dry_run: bool) -> None:
    """Remove (or with dry_run, only report) what no row owns, older than the cutoff."""
    owned = set(db.session.execute(select(Upload.key).filter_by(status=UPLOADING)).scalars())
    db.session.commit()
    for key, mtime in list(store().upload_keys()):
        if key not in owned and mtime < debris_cutoff and not _is_uploading(key):
            report.orphan_dirs.append(store().location(key))
            if not dry_run:
                store().delete(key)
    for name in _orphan_files(debris_cutoff):
        report.orphan_files.append(name)
        if not dry_run:
            store().delete_file(name)
    for name, mtime in list(store().temp_files()):
        if mtime < debris_cutoff:
            report.temp_files.append(name)
            if not dry_run:
                store().remove_temp_file(name)


def _stale(cutoff, now):
    """The unfinished uploads idle past cutoff (tus uploads: past their expiry), in SQL."""
    return and_(Upload.status == UPLOADING, or_(
        and_(Upload.protocol.not_in(STREAMED), Upload.updated_at < cutoff),
        and_(Upload.protocol.in_(STREAMED), Upload.expires_at <= now)))


def _expire(upload: Upload, cutoff, now) -> bool:
    """Remove one idle upload unless a request is using it or it moved meanwhile."""
    with store().locker.try_hold(upload.key) as held:
        return held and _expire_locked(upload, cutoff, now)


def _expire_locked(upload: Upload, cutoff, now) -> bool:
    # By key too: SQLite hands a deleted row's id to the next new row.
    fresh = db.session.execute(select(Upload).filter_by(id=upload.id, key=upload.key)
                               .where(_stale(cutoff, now))
                               .execution_options(populate_existing=True)).scalar_one_or_none()
    if fresh is None:
        db.session.commit()
        return False
    # Only while still idle: a chunk on another host, or another host's cleanup, first.
    return remove(fresh, UploadEvent.EXPIRED, _stale(cutoff, now))


def _orphan_files(debris_cutoff: float) -> Iterator[str]:
    """Finished files older than the cutoff that no upload's row references (a crash
    between a removed row and its file, on a store shared by hosts)."""
    found = store()
    if not isinstance(found, FileListing):
        return
    old = (name for name, mtime in found.finished_files() if mtime < debris_cutoff)
    while batch := [name for _, name in zip(range(BATCH), old, strict=False)]:
        referenced = set(db.session.execute(
            select(Upload.stored_name).where(Upload.stored_name.in_(batch))).scalars())
        db.session.commit()
        # A name is reserved in its row before its file is published: none can be taken
        # from an upload completing now.
        yield from (name for name in batch if name not in referenced)


def _is_uploading(key: str) -> bool:
    # Re-checked per directory: an upload created after the first query owns its directory.
    found = db.session.execute(select(Upload.status).filter_by(key=key)).scalar_one_or_none()
    db.session.commit()
    return found == UPLOADING
