"""Publishing verified files and recording their uploads as completed.

Shared by the /api merge, instant upload and tus. Bytes first (the file is published under
a name reserved in the database), then the row that says the upload is completed.
"""
import logging
from collections.abc import Callable

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from ..core import naming
from ..core.extensions import db
from ..core.logs import event_fields
from ..core.models import Chunk, Upload, UploadEvent
from ..storage import NameTaken, Sealed
from . import metrics
from .events import outbox
from .stores import store

log = logging.getLogger(__name__)


def place_and_finish(upload: Upload, sealed: Sealed, seconds: float,
                     check: Callable[[Upload], None] | None = None) -> Upload:
    """Publish a verified file and record its upload as completed; its bytes stay for the
    caller to delete (after the answer, where it can). `check` may look at the placed file
    before the upload is recorded as completed (until then nothing serves it), and raise
    after removing it."""
    _place_or_discard(upload, sealed)
    if check is not None:
        check(upload)
    return _finish(upload, sealed.size, seconds)


def _place_or_discard(upload: Upload, sealed: Sealed) -> None:
    try:
        _place(upload, sealed)
    except BaseException:
        store().discard(sealed)
        raise


def _place(upload: Upload, sealed: Sealed) -> None:
    """Publish a verified file at a name reserved for this upload."""
    recovered = upload.stored_name is not None  # reserved by an attempt that crashed
    while True:
        if upload.stored_name is None:
            _reserve_name(upload)
        try:
            store().publish(sealed, upload.stored_name, replace=recovered)
            return
        except NameTaken:  # a file appeared under that name outside the service
            upload.stored_name, recovered = None, False


def _reserve_name(upload: Upload) -> None:
    for candidate in naming.candidates(upload.file_name):
        taken = db.session.execute(select(Upload.id).filter_by(stored_name=candidate)).first()
        if taken or store().has_file(candidate):
            continue
        upload.stored_name = candidate
        try:
            db.session.commit()
            return
        except IntegrityError:  # reserved by a racing upload
            db.session.rollback()
            upload.stored_name = None


def _finish(upload: Upload, size: int, seconds: float) -> Upload:
    db.session.execute(delete(Chunk).filter_by(upload_id=upload.id))
    upload.mark_completed(size)
    outbox.record(UploadEvent.COMPLETED, upload, bytes=size, duration_ms=upload.upload_time_ms)
    db.session.commit()
    metrics.upload_completed(upload.protocol)
    log.info("upload %s completed: %s (%d bytes, merged in %.3f s)",
             upload.key, upload.stored_name, size, seconds,
             extra=event_fields(UploadEvent.COMPLETED, upload, bytes=size,
                                duration_ms=upload.upload_time_ms,
                                merge_ms=round(seconds * 1000, 3), path=upload.path))
    return upload
