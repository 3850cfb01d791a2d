"""Upload flows: the one place that opens and commits transactions.

Order of durability: bytes are written (and fsync'd, unless FSYNC is "complete") first, then
the row that says they exist is committed. Transactions are ended before any long file I/O
or lock wait, so a slow disk never holds a database lock. Requests for the same upload
coordinate through the store's per-upload lock (shared for chunk writes, exclusive for merge
and delete) and through unique constraints, never through process memory.
"""
import logging
import time
import uuid
from dataclasses import dataclass, replace
from typing import BinaryIO

from flask import current_app
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from ..core.extensions import db
from ..core.logs import event_fields
from ..core.models import Chunk, Upload, UploadEvent, name_digest
from ..storage.local import LockBusy, UploadGone
from . import access, incremental, metrics, statements
from .errors import (
    ChunkSizeConflict,
    FileTooLarge,
    Md5Mismatch,
    MergeInProgress,
    MissingChunks,
    TooManyUploads,
    TotalChunksConflict,
    UploadNotFound,
)
from .placement import chunk_store, place_and_finish

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    """How many of an upload's chunks are stored."""

    uploaded: int
    total: int
    # Set when the upload's hash can advance now: see fold_arrived().
    fold_due: incremental.Target | None = None

    @property
    def percent(self) -> int:
        return 100 * self.uploaded // self.total if self.total else 100


def find(md5: str, file_name: str) -> Upload | None:
    """The upload with this identity of this request's owner, if any."""
    query = select(Upload).filter_by(owner_id=access.owner_id(), md5=md5,
                                     name_digest=name_digest(file_name))
    return db.session.execute(query).scalar_one_or_none()


def stored_indices(upload: Upload) -> list[int]:
    query = select(Chunk.chunk_index).filter_by(upload_id=upload.id).order_by(Chunk.chunk_index)
    return list(db.session.execute(query).scalars())


def status(md5: str, file_name: str) -> tuple[Upload, list[int]]:
    """An upload and its stored chunk indices; 404 if never seen or deleted."""
    upload = find(md5, file_name)
    if upload is None:
        raise UploadNotFound()
    return upload, [] if upload.is_completed else stored_indices(upload)


def active_count() -> int:
    query = select(func.count()).select_from(Upload).filter_by(status="uploading")
    return db.session.execute(query).scalar_one()


def check_chunks(md5: str, file_name: str, total: int) -> tuple[Upload | None, list[int]]:
    """The upload (None if never seen) and its stored chunk indices; a file whose md5 was
    already completed under any name is completed here at once from that copy."""
    upload = find(md5, file_name)
    if upload is not None and upload.is_completed and not chunk_store().has_file(
            upload.stored_name):
        upload = _forget_lost_file(upload)
    if upload is None or not upload.is_completed:
        source = _completed_copy(md5)
        if source is not None:
            upload = _complete_from_copy(upload or _get_or_create(md5, file_name, total), source)
    if upload is None or upload.is_completed:
        db.session.commit()
        return upload, list(range(total)) if upload else []
    if upload.total_chunks != total:
        raise TotalChunksConflict()
    db.session.commit()
    if chunk_store().written_before_restart(upload.key):
        _forget_unsynced(upload)
    indices = stored_indices(upload)
    db.session.commit()
    return upload, indices


def _forget_lost_file(upload: Upload) -> None:
    """A completed upload whose file was removed by hand is forgotten, so it can be sent again."""
    gone = db.session.execute(delete(Upload).filter_by(id=upload.id, key=upload.key,
                                                       status=upload.status))
    if gone.rowcount:
        db.session.add(UploadEvent.of(UploadEvent.DELETED, upload))
        log.warning("upload %s: its file %s is gone from uploads/; forgotten",
                    upload.key, upload.stored_name)
    db.session.commit()
    return None


def store_chunk(md5: str, file_name: str, total: int, index: int, src: BinaryIO,
                fold_now: bool = True) -> Progress:
    """Store one chunk (durably, unless FSYNC is "complete"); re-sending a stored chunk
    replaces it harmlessly.

    If it is the chunk the upload's hash needs next, it is hashed now, or with fold_now
    False left to the caller (Progress.fold_due), who calls fold_arrived() after answering.
    """
    size = chunk_store().stream_size(src)
    _check_declared_size(total, index, size, None)
    upload = _get_or_create(md5, file_name, total)
    if upload.is_completed:
        return Progress(total, total)
    if upload.total_chunks != total:
        raise TotalChunksConflict()
    started = time.monotonic()
    db.session.commit()  # never wait for the lock inside a transaction (SQLite: a write lock)
    if chunk_store().written_before_restart(upload.key):
        _forget_unsynced(upload)
    for attempt in range(2):
        try:
            with chunk_store().lock(upload.key, exclusive=False, timeout=_lock_wait()):
                upload = _reload(upload)
                if upload.is_completed:
                    return Progress(total, total)
                progress = _put_chunk(upload, index, size, src, started)
                return _fold_if_next(upload, progress, fold_now)
        except LockBusy:
            raise MergeInProgress() from None
        except UploadGone:
            upload = _reload(upload)  # 404 if deleted meanwhile
            if upload.is_completed:
                return Progress(total, total)
            if attempt == 0:  # the directory was removed under a live upload: make it again
                _forget_chunks(upload)  # their bytes went with it
                chunk_store().create(upload.key)
    raise MergeInProgress("This upload changed meanwhile; retry.")


def fold_arrived(target: incremental.Target) -> None:
    """Hash the chunks that are ready (after the chunk's answer was sent)."""
    incremental.advance(chunk_store(), target)


def complete(md5: str, file_name: str, total: int, drop_chunks: bool = True) -> Upload:
    """Merge and verify the upload; exactly one of concurrent callers merges.

    With drop_chunks False the chunk files stay for the caller to remove with drop_chunks()
    after answering (unlinking a GiB of chunks takes most of a second on some disks); if it
    never does, `flask cleanup` removes them as debris of a completed upload.
    """
    upload = find(md5, file_name)
    if upload is None:
        raise UploadNotFound()
    if upload.is_completed:
        return upload
    if upload.total_chunks != total:
        raise TotalChunksConflict()
    db.session.commit()  # never wait for the lock inside a transaction (SQLite: a write lock)
    try:
        with chunk_store().lock(upload.key, exclusive=True, timeout=_lock_wait()):
            upload = _reload(upload)
            if upload.is_completed:
                return upload
            return _merge(upload, drop_chunks)
    except LockBusy:
        raise MergeInProgress() from None
    except UploadGone:
        upload = _reload(upload)
        if upload.is_completed:
            return upload
        raise MergeInProgress("This upload changed meanwhile; retry.") from None


def delete_upload(md5: str, file_name: str) -> None:
    """Remove an upload's chunks, state and, once completed, its file under this name."""
    upload = find(md5, file_name)
    if upload is None:
        raise UploadNotFound()
    db.session.commit()
    try:
        with chunk_store().lock(upload.key, exclusive=True, timeout=_lock_wait()):
            remove(_reload(upload), UploadEvent.DELETED)
    except LockBusy:
        raise MergeInProgress() from None
    except UploadGone:
        remove(_reload(upload), UploadEvent.DELETED)


def remove(upload: Upload, kind: str) -> None:
    """Delete an upload's rows, then its bytes; the caller holds its lock if it has one."""
    db.session.execute(delete(Chunk).filter_by(upload_id=upload.id))
    db.session.delete(upload)
    db.session.add(UploadEvent.of(kind, upload))
    db.session.commit()
    chunk_store().delete_chunks(upload.key)
    if upload.stored_name:
        chunk_store().delete_file(upload.stored_name)
    metrics.upload_removed(kind)
    log.info("upload %s %s (%s, %s)", upload.key, kind, upload.md5, upload.file_name,
             extra=event_fields(kind, upload))


# -- internals ------------------------------------------------------------------------------


def _lock_wait() -> float:
    return float(current_app.config["LOCK_WAIT_SECONDS"])


def _reload(upload: Upload) -> Upload:
    """A fresh copy of the row in a new transaction; 404 if it is gone."""
    db.session.commit()
    # By key too: SQLite hands a deleted row's id to the next new row, and that upload has
    # another chunk directory and lock.
    query = (select(Upload).filter_by(id=upload.id, key=upload.key)
             .execution_options(populate_existing=True))
    fresh = db.session.execute(query).scalar_one_or_none()
    if fresh is None:
        raise UploadNotFound()
    return fresh


def _get_or_create(md5: str, file_name: str, total: int) -> Upload:
    for _ in range(3):
        upload = find(md5, file_name)
        if upload is not None:
            return upload
        client = access.client_id()
        check_room(client)
        # The directory exists before the row does, so every row's directory exists.
        key = uuid.uuid4().hex
        chunk_store().create(key)
        upload = Upload(key=key, md5=md5, file_name=file_name, owner_id=access.owner_id(),
                        client=client, name_digest=name_digest(file_name), total_chunks=total)
        db.session.add(upload)
        db.session.add(UploadEvent.of(UploadEvent.CREATED, upload))
        try:
            db.session.commit()
            metrics.upload_created()
            log.info("upload %s created (%s, %s, %d chunks)", key, md5, file_name, total,
                     extra=event_fields(UploadEvent.CREATED, upload, total_chunks=total))
            return upload
        except IntegrityError:  # another request created it first
            db.session.rollback()
            chunk_store().delete_chunks(key)
    raise MergeInProgress("This upload is being created concurrently; retry.")


def check_room(client: str) -> None:
    """Refuse a new upload beyond the limits of unfinished uploads (per client, in all).

    Counted, not reserved: racing requests may overshoot a limit by a few, never by many.
    """
    config = current_app.config
    unfinished = select(func.count()).select_from(Upload).filter_by(status="uploading")
    per_client = config["MAX_ACTIVE_UPLOADS_PER_CLIENT"]
    if per_client and db.session.execute(
            unfinished.filter_by(client=client)).scalar_one() >= per_client:
        raise TooManyUploads(f"At most {per_client} unfinished uploads per client; complete "
                             "or delete some first.")
    limit = config["MAX_ACTIVE_UPLOADS"]
    if limit and db.session.execute(unfinished).scalar_one() >= limit:
        raise TooManyUploads("The server has too many unfinished uploads; retry later.")


def _check_declared_size(total: int, index: int, size: int, chunk_size: int | None) -> None:
    limit = current_app.config["MAX_FILE_SIZE"]
    if index < total - 1:
        least = (total - 1) * size + 1
    else:
        least = (total - 1) * (chunk_size or 0) + size
    if size > limit or least > limit:
        raise FileTooLarge(f"The file would be at least {least} bytes; the limit is {limit}.")


def _fix_chunk_size(upload: Upload, index: int, size: int) -> int | None:
    """Record the common chunk size from the first non-last chunk; refuse ones that differ.
    Returns the chunk size (None while only the last chunk has come)."""
    last = index == upload.total_chunks - 1
    if not last and upload.chunk_size is None:
        db.session.execute(update(Upload).filter_by(id=upload.id, chunk_size=None)
                           .values(chunk_size=size))
        upload = _reload(upload)
    db.session.commit()
    if upload.chunk_size is not None:
        if (size != upload.chunk_size) if not last else (size > upload.chunk_size):
            raise ChunkSizeConflict()
        _check_declared_size(upload.total_chunks, index, size, upload.chunk_size)
    return upload.chunk_size


def _forget_chunks(upload: Upload) -> None:
    """Delete the rows of the upload's chunks and start its hash again."""
    db.session.execute(delete(Chunk).filter_by(upload_id=upload.id))
    statements.set_hash(upload, 0, None)
    db.session.commit()


def _put_chunk(upload: Upload, index: int, size: int, src: BinaryIO,
               started: float) -> Progress:
    """Write a chunk's bytes, in place where it can, and record it; the caller holds the
    upload's shared lock."""
    chunk_size = _fix_chunk_size(upload, index, size)
    with chunk_store().claim(upload.key, index) as claimed:
        offset = _place_of(upload, index, chunk_size) if claimed else None
        if offset is None:
            chunk_store().put_chunk(upload.key, index, src)
        else:
            chunk_store().put_chunk_at(upload.key, index, src, offset)
        return _record_chunk(upload, index, size, time.monotonic() - started)


def _place_of(upload: Upload, index: int, chunk_size: int | None) -> int | None:
    """The offset at which a claimed chunk is written into the upload's data file, or None
    when it goes to a chunk file of its own: it was recorded before (a re-send; the bytes in
    place may be hashed already), or its offset is not known yet (the last chunk, before any
    other has told the chunk size)."""
    if chunk_size is None and index:
        return None
    recorded = statements.counts(upload, index).had_this
    db.session.commit()
    return None if recorded else index * (chunk_size or 0)


def _forget_unsynced(upload: Upload) -> None:
    """Forget the chunks of an upload that were written without fsync before the machine
    restarted: any of them may hold zeros, so the client is told to send them again."""
    try:
        with chunk_store().lock(upload.key, exclusive=True, timeout=_lock_wait()):
            upload = _reload(upload)
            if chunk_store().written_before_restart(upload.key):
                _clear_chunks(upload)
    except LockBusy:
        raise MergeInProgress() from None
    except UploadGone:
        pass  # deleted or completed meanwhile


def _clear_chunks(upload: Upload) -> None:
    """Rows first, then bytes; the caller holds the upload's exclusive lock."""
    _forget_chunks(upload)
    chunk_store().clear_chunks(upload.key)
    log.warning("upload %s: its chunks were written without fsync before the machine "
                "restarted; forgotten, to be sent again", upload.key)


def _record_chunk(upload: Upload, index: int, size: int, seconds: float) -> Progress:
    # The upload's row is locked first: writers of the same upload then queue on it, where
    # the chunk insert's foreign-key check would otherwise let MySQL deadlock them.
    if not statements.touch(upload):  # removed meanwhile by a DELETE that found no directory
        db.session.rollback()
        chunk_store().delete_chunks(upload.key)
        raise UploadNotFound()
    # Under the row lock, so a racing store of the same chunk is seen here too.
    stored, had_this, hashed = statements.counts(upload, index)
    if had_this:  # its bytes may have changed under a fold
        incremental.forget(upload)
    statements.upsert_chunk(upload.id, index, size)
    statements.add_event(UploadEvent.CHUNK_STORED, upload, bytes=size,
                         duration_ms=int(seconds * 1000))
    db.session.commit()
    metrics.chunk_stored(size, seconds)
    log.info("upload %s chunk %d stored (%d bytes, %.3f s)", upload.key, index, size, seconds,
             extra=event_fields(UploadEvent.CHUNK_STORED, upload, chunk_index=index, bytes=size,
                                duration_ms=round(seconds * 1000, 3)))
    due = not had_this and incremental.is_next(hashed, index)
    return Progress(stored + (0 if had_this else 1), upload.total_chunks,
                    incremental.Target(upload.id, upload.key) if due else None)


def _fold_if_next(upload: Upload, progress: Progress, fold_now: bool) -> Progress:
    if progress.fold_due is None or not fold_now:
        return progress
    incremental.advance(chunk_store(), upload)
    return replace(progress, fold_due=None)


def _merge(upload: Upload, drop_chunks: bool = True) -> Upload:
    store = chunk_store()
    if store.written_before_restart(upload.key):
        _clear_chunks(upload)
    rows = dict(db.session.execute(
        select(Chunk.chunk_index, Chunk.size).filter_by(upload_id=upload.id)
    ).all())
    on_disk = store.stored_sizes(upload.key, rows, upload.chunk_size)
    lost = [i for i, size in rows.items() if on_disk.get(i) != size]
    if lost:  # a row whose bytes vanished is not stored: forget it, so the client re-sends
        db.session.execute(delete(Chunk).filter_by(upload_id=upload.id)
                           .where(Chunk.chunk_index.in_(lost)))
        incremental.forget(upload)
    missing = [i for i in range(upload.total_chunks) if i not in rows or i in lost]
    db.session.commit()
    if missing:
        raise MissingChunks(missingChunks=missing)
    started = time.monotonic()
    merged = incremental.sealed(store, upload, sum(rows.values()), _lock_wait())
    if merged.md5 != upload.md5:
        store.discard(merged)
        db.session.add(UploadEvent.of(UploadEvent.VERIFICATION_FAILED, upload, bytes=merged.size))
        db.session.commit()
        metrics.verification_failed()
        log.warning("upload %s failed verification: md5 %s", upload.key, merged.md5,
                    extra=event_fields(UploadEvent.VERIFICATION_FAILED, upload,
                                       bytes=merged.size, actual_md5=merged.md5))
        raise Md5Mismatch(expected=upload.md5, actual=merged.md5)
    seconds = time.monotonic() - started
    metrics.merged(seconds)
    return place_and_finish(upload, merged, seconds, drop_chunks)


def _completed_copy(md5: str) -> Upload | None:
    # Only the owner's own files: another key's upload must not even be seen to exist.
    query = (select(Upload).filter_by(owner_id=access.owner_id(), md5=md5, status="completed")
             .order_by(Upload.id))
    for upload in db.session.execute(query).scalars():
        if chunk_store().has_file(upload.stored_name):
            return upload
    return None


def _complete_from_copy(upload: Upload, source: Upload) -> Upload:
    """Instant upload: the same bytes under this upload's own name, without a transfer."""
    db.session.commit()
    try:
        with chunk_store().lock(upload.key, exclusive=True, timeout=_lock_wait()):
            upload = _reload(upload)
            if upload.is_completed:
                return upload
            return place_and_finish(upload, chunk_store().snapshot(source.stored_name), 0.0)
    except LockBusy:
        raise MergeInProgress() from None
    except UploadGone:  # the source file was deleted meanwhile: upload as usual
        return _reload(upload)
