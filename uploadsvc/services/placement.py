"""Placing verified files under uploads/ and recording their uploads as completed.

Shared by the /api merge, instant upload and tus. Bytes first (the file is linked into place
under a name reserved in the database), then the row that says the upload is completed.
"""
import logging

from flask import current_app
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from ..core import naming
from ..core.extensions import db
from ..core.logs import event_fields
from ..core.models import Chunk, Upload, UploadEvent
from ..storage.local import ChunkStore, Merged, NameTaken
from . import metrics

log = logging.getLogger(__name__)


def chunk_store() -> ChunkStore:
    return current_app.extensions["chunk_store"]


def place_and_finish(upload: Upload, merged: Merged, seconds: float,
                     drop_chunks: bool = True) -> Upload:
    """Put a verified file under uploads/ and record its upload as completed."""
    _place_or_discard(upload, merged)
    return _finish(upload, merged.size, seconds, drop_chunks)


def _place_or_discard(upload: Upload, merged: Merged) -> None:
    try:
        _place(upload, merged)
    except BaseException:
        chunk_store().discard(merged)
        raise


def _place(upload: Upload, merged: Merged) -> None:
    """Put a verified file under uploads/ at a name reserved for this upload."""
    recovered = upload.stored_name is not None  # reserved by an attempt that crashed
    while True:
        if upload.stored_name is None:
            _reserve_name(upload)
        try:
            chunk_store().place(merged, upload.stored_name, replace=recovered)
            return
        except NameTaken:  # a file appeared under that name outside the service
            upload.stored_name, recovered = None, False


def _reserve_name(upload: Upload) -> None:
    for candidate in naming.candidates(upload.file_name):
        taken = db.session.execute(select(Upload.id).filter_by(stored_name=candidate)).first()
        if taken or chunk_store().has_file(candidate):
            continue
        upload.stored_name = candidate
        try:
            db.session.commit()
            return
        except IntegrityError:  # reserved by a racing upload
            db.session.rollback()
            upload.stored_name = None


def drop_chunks(key: str) -> None:
    """Remove a completed upload's chunk directory (run after complete-upload has answered)."""
    chunk_store().delete_chunks(key)


def _finish(upload: Upload, size: int, seconds: float, drop_chunks: bool = True) -> Upload:
    db.session.execute(delete(Chunk).filter_by(upload_id=upload.id))
    upload.mark_completed(size)
    db.session.add(UploadEvent.of(UploadEvent.COMPLETED, upload, bytes=size,
                                  duration_ms=upload.upload_time_ms))
    db.session.commit()
    if drop_chunks:
        chunk_store().delete_chunks(upload.key)
    metrics.upload_completed()
    log.info("upload %s completed: %s (%d bytes, merged in %.3f s)",
             upload.key, upload.stored_name, size, seconds,
             extra=event_fields(UploadEvent.COMPLETED, upload, bytes=size,
                                duration_ms=upload.upload_time_ms,
                                merge_ms=round(seconds * 1000, 3), path=upload.path))
    return upload
