"""What uploads of both protocols share: a fresh read of the row, the limits on unfinished
uploads, and removal (rows first, then bytes)."""
import logging

from flask import current_app
from sqlalchemy import delete, exists, func, select

from ..core.database import end_reads
from ..core.extensions import db
from ..core.logs import event_fields
from ..core.models import UPLOADING, Chunk, Upload
from . import metrics
from .errors import TooManyUploads, UploadNotFound
from .events import outbox
from .stores import store

log = logging.getLogger(__name__)


def reload(upload: Upload) -> Upload:
    """A fresh copy of the row (in a new transaction, where an old one could see an older
    one); 404 if it is gone."""
    return _fresh(upload)[0]


def reload_with_chunk(upload: Upload, index: int) -> tuple[Upload, bool]:
    """reload(), and whether chunk `index` is recorded, in one statement."""
    recorded = exists().where(Chunk.upload_id == Upload.id, Chunk.chunk_index == index)
    fresh, found = _fresh(upload, recorded)
    return fresh, bool(found)


def _fresh(upload: Upload, *also):
    end_reads()
    # By key too: SQLite hands a deleted row's id to the next new row, and that upload has
    # other bytes and another lock.
    found = db.session.execute(
        select(Upload, *also).filter_by(id=upload.id, key=upload.key)
        .execution_options(populate_existing=True)).one_or_none()
    if found is None:
        raise UploadNotFound()
    return found


def active_count() -> int:
    query = select(func.count()).select_from(Upload).filter_by(status=UPLOADING)
    return db.session.execute(query).scalar_one()


def check_room(client: str) -> None:
    """Refuse a new upload beyond the limits of unfinished uploads (per client, in all).

    Counted, not reserved: racing requests may overshoot a limit by a few, never by many.
    """
    config = current_app.config
    unfinished = select(func.count()).select_from(Upload).filter_by(status=UPLOADING)
    per_client = config["MAX_ACTIVE_UPLOADS_PER_CLIENT"]
    if per_client and db.session.execute(
            unfinished.filter_by(client=client)).scalar_one() >= per_client:
        raise TooManyUploads(f"At most {per_client} unfinished uploads per client; complete "
                             "or delete some first.")
    limit = config["MAX_ACTIVE_UPLOADS"]
    if limit and db.session.execute(unfinished).scalar_one() >= limit:
        raise TooManyUploads("The server has too many unfinished uploads; retry later.")


def remove(upload: Upload, kind: str, *still) -> bool:
    """Delete an upload's rows, then its bytes; the caller holds its lock if it has one.

    The row goes only as it is (by key, and while it meets the conditions `still`): of two
    removals racing (a DELETE and a cleanup, cleanups on several hosts), one records the
    event and removes the bytes, the other finds nothing to do and answers False."""
    removed = db.session.execute(
        delete(Upload).filter_by(id=upload.id, key=upload.key).where(*still)
        .execution_options(synchronize_session=False)).rowcount
    if removed != 1:
        db.session.commit()  # (it changed nothing; a rollback would expire the caller's rows)
        return False
    db.session.execute(delete(Chunk).filter_by(upload_id=upload.id))
    if upload in db.session:
        db.session.expunge(upload)
    outbox.record(kind, upload)
    db.session.commit()
    store().delete(upload.key)
    if upload.stored_name:
        store().delete_file(upload.stored_name)
    metrics.upload_removed(upload.protocol, kind)
    log.info("upload %s %s (%s, %s)", upload.key, kind, upload.md5, upload.file_name,
             extra=event_fields(kind, upload))
    return True
