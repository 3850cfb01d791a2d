"""Completing /api uploads: merging and verifying their chunks, or completing at once from
a stored copy of the same file (instant upload, at check-chunks)."""
import logging
import time

from sqlalchemy import delete, select

from ...core.extensions import db
from ...core.logs import event_fields
from ...core.models import Chunk, Upload, UploadEvent
from ...storage import FileGone
from .. import access, followups, hashing, metrics
from ..errors import Md5Mismatch, MissingChunks, SizeMismatch, TotalChunksConflict, UploadNotFound
from ..events import outbox
from ..followups import FollowUp, Outcome
from ..placement import place_and_finish
from ..stores import chunk_files, holding, lock_wait, store
from ..uploads import reload
from .uploads import (
    check_file_size,
    clear_chunks,
    find,
    forget_if_lost_in_restart,
    forget_lost_file,
    get_or_create,
    note_file_size,
    stored_indices,
)

log = logging.getLogger(__name__)


def check_chunks(md5: str, file_name: str, total: int,
                 file_size: int | None = None) -> tuple[Upload, list[int]]:
    """The upload and its stored chunk indices; a file whose md5 was already completed
    under any name is completed here at once from that copy. A declared file size over the
    limit is refused first. A new upload starts here, admitted by the pre-create hook before
    the client sends a byte; its declared size is checked at completion."""
    check_file_size(file_size)
    upload = find(md5, file_name)
    if upload is not None and upload.is_completed and not store().has_file(
            upload.stored_name):
        upload = forget_lost_file(upload)
    if upload is None or not upload.is_completed:
        source = _completed_copy(md5)
        if source is not None:
            upload = _complete_from_copy(
                upload or get_or_create(md5, file_name, total, file_size), source)
    if upload is None:
        # The hook is asked before the client sends a byte, and the row is the admission's
        # record: no later request, on any worker or host, asks again.
        upload = get_or_create(md5, file_name, total, file_size)
    if total == 0 and not upload.is_completed:
        # A zero-byte file has nothing to send: it is completed here (the React page never
        # calls complete-upload when no chunk is missing).
        completed = complete(md5, file_name, total)
        followups.run(completed.later)
        upload = completed.value
    if upload.is_completed:
        db.session.commit()
        return upload, list(range(total))
    if upload.total_chunks != total:
        raise TotalChunksConflict()
    upload = note_file_size(upload, file_size)
    db.session.commit()
    forget_if_lost_in_restart(upload)
    indices = stored_indices(upload)
    db.session.commit()
    return upload, indices


def complete(md5: str, file_name: str, total: int) -> Outcome[Upload]:
    """Merge and verify the upload; exactly one of concurrent callers merges. Removing its
    bytes is left for after the answer (unlinking a GiB of chunks takes most of a second on
    some disks); if that never runs, `flask cleanup` removes them as debris."""
    upload = find(md5, file_name)
    if upload is None and total == 0:  # a zero-byte file: no chunk ever made it exist
        upload = get_or_create(md5, file_name, total)
    if upload is None:
        raise UploadNotFound()
    if upload.is_completed:
        return Outcome(upload)
    if upload.total_chunks != total:
        raise TotalChunksConflict()
    with holding(upload.key, exclusive=True):
        upload = reload(upload)
        if upload.is_completed:
            return Outcome(upload)
        upload = _merge(upload)
    return Outcome(upload, (FollowUp(store().delete, (upload.key,)),))


def _merge(upload: Upload) -> Upload:
    if store().lost_in_restart(upload.key):
        clear_chunks(upload)
    rows = dict(db.session.execute(
        select(Chunk.chunk_index, Chunk.size).filter_by(upload_id=upload.id)
    ).all())
    on_disk = chunk_files().stored_sizes(upload.key, rows, upload.chunk_size)
    lost = [i for i, size in rows.items() if on_disk.get(i) != size]
    if lost:  # a row whose bytes vanished is not stored: forget it, so the client re-sends
        db.session.execute(delete(Chunk).filter_by(upload_id=upload.id)
                           .where(Chunk.chunk_index.in_(lost)))
        hashing.stop(upload)
    missing = [i for i in range(upload.total_chunks) if i not in rows or i in lost]
    db.session.commit()
    if missing:
        raise MissingChunks(missingChunks=missing)
    size = sum(rows.values())
    if upload.file_size is not None and size != upload.file_size:
        _failed_verification(upload, size, f"size {size}")
        raise SizeMismatch(expectedSize=upload.file_size, actualSize=size)
    started = time.monotonic()
    sealed = hashing.sealed_chunks(upload, size, lock_wait())
    if sealed.md5 != upload.md5:
        store().discard(sealed)
        _failed_verification(upload, size, f"md5 {sealed.md5}", actual_md5=sealed.md5)
        raise Md5Mismatch(expected=upload.md5, actual=sealed.md5)
    seconds = time.monotonic() - started
    metrics.merged(upload.protocol, seconds)
    return place_and_finish(upload, sealed, seconds)


def _failed_verification(upload: Upload, size: int, what: str, **fields) -> None:
    """Record that the merged file is not the one the client described."""
    outbox.record(UploadEvent.VERIFICATION_FAILED, upload, bytes=size)
    db.session.commit()
    metrics.verification_failed(upload.protocol)
    log.warning("upload %s failed verification: %s", upload.key, what,
                extra=event_fields(UploadEvent.VERIFICATION_FAILED, upload, bytes=size,
                                   **fields))


def _completed_copy(md5: str) -> Upload | None:
    # Only the owner's own files: another key's upload must not even be seen to exist.
    query = (select(Upload).filter_by(owner_id=access.owner_id(), md5=md5, status="completed")
             .order_by(Upload.id))
    for upload in db.session.execute(query).scalars():
        if store().has_file(upload.stored_name):
            return upload
    return None


def _complete_from_copy(upload: Upload, source: Upload) -> Upload:
    """Instant upload: the same bytes under this upload's own name, without a transfer."""
    with holding(upload.key, exclusive=True):
        upload = reload(upload)
        if upload.is_completed:
            return upload
        try:
            copied = store().copy(source.stored_name)
        except FileGone:  # the source file was deleted meanwhile: upload as usual
            return upload
        upload = place_and_finish(upload, copied, 0.0)
    store().delete(upload.key)
    return upload
