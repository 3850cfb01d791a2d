"""Storing one chunk of an /api upload: in place where it can, durably, then its row."""
import logging
import time
from typing import BinaryIO

from flask import current_app
from sqlalchemy import update

from ...core.database import end_reads, reads_only
from ...core.extensions import db
from ...core.logs import event_fields
from ...core.models import Upload, UploadEvent
from ...storage import UploadGone, md5_of, stream_size
from ...storage.md5state import Md5State
from .. import hashing, metrics, statements
from ..errors import (
    ChunkMd5Mismatch,
    ChunkSizeConflict,
    FileTooLarge,
    MergeInProgress,
    TotalChunksConflict,
    UploadNotFound,
)
from ..followups import Outcome
from ..stores import chunk_files, holding, joins_transaction, store, transaction
from ..uploads import reload, reload_with_chunk
from .uploads import (
    Progress,
    check_file_size,
    find_with_chunk,
    forget_chunks,
    forget_if_lost_in_restart,
    get_or_create,
    note_file_size,
)

log = logging.getLogger(__name__)


def store_chunk(md5: str, file_name: str, total: int, index: int, src: BinaryIO,
                file_size: int | None = None,
                chunk_md5: str | None = None) -> Outcome[Progress]:
    """Store one chunk (durably, unless FSYNC is "complete"); re-sending a stored chunk
    replaces it harmlessly. A chunk that does not match its chunk_md5 is refused before
    anything is recorded. If it is the chunk the upload's hash needs next, hashing it is
    left for after the answer."""
    if chunk_md5 is not None and md5_of(src) != chunk_md5:
        raise ChunkMd5Mismatch()
    check_file_size(file_size)
    size = stream_size(src)
    check_declared_size(total, index, size, None)
    upload, recorded, read_in = _find_or_create(md5, file_name, total, index, file_size)
    if upload.is_completed:
        return Outcome(Progress(total, total))
    if upload.total_chunks != total:
        raise TotalChunksConflict()
    upload = note_file_size(upload, file_size)
    started = time.monotonic()
    if read_in is None:
        end_reads()
    forget_if_lost_in_restart(upload)
    return _put_under_lock(upload, index, size, src, started, recorded, read_in)


def _put_under_lock(upload: Upload, index: int, size: int, src: BinaryIO, started: float,
                    recorded: bool, read_in) -> Outcome[Progress]:
    """Hold the upload's shared lock (taken in `read_in` where it can: stores.holding) and
    put the chunk; once more if the upload's bytes were removed under it."""
    total = upload.total_chunks
    for attempt in range(2):
        try:
            with holding(upload.key, exclusive=False, chunk=index, read_in=read_in) as kept:
                if not kept:  # under the lock: what a merge or a DELETE did before is seen
                    upload, recorded = reload_with_chunk(upload, index)
                    if upload.is_completed:
                        return Outcome(Progress(total, total))
                return _put_chunk(upload, index, size, src, started, recorded)
        except UploadGone:
            read_in = None
            upload = reload(upload)  # 404 if deleted meanwhile
            if upload.is_completed:
                return Outcome(Progress(total, total))
            if attempt == 0:  # its bytes were removed under a live upload: make room again
                forget_chunks(upload)
                store().create(upload.key)
    raise MergeInProgress("This upload changed meanwhile; retry.")


def _find_or_create(md5: str, file_name: str, total: int, index: int,
                    file_size: int | None) -> tuple[Upload, bool, object]:
    """The upload, whether chunk `index` is recorded, and the transaction it was read in
    under its row lock, if it was: where the upload's lock is taken in that transaction
    (the database's leases), the row is not read again once held."""
    joined = joins_transaction()
    if joined:
        upload, recorded = find_with_chunk(md5, file_name, index, lock=True)
    else:  # nothing held: on SQLite, no wait behind other workers' writes to read the row
        with reads_only():
            upload, recorded = find_with_chunk(md5, file_name, index, lock=False)
    if upload is None:
        return get_or_create(md5, file_name, total, file_size), False, None
    return upload, recorded, transaction() if joined else None


def check_declared_size(total: int, index: int, size: int, chunk_size: int | None) -> None:
    """Refuse a chunk that makes the file larger than MAX_FILE_SIZE (413)."""
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
        upload = reload(upload)
        db.session.commit()
    if upload.chunk_size is not None:
        if (size != upload.chunk_size) if not last else (size > upload.chunk_size):
            raise ChunkSizeConflict()
        check_declared_size(upload.total_chunks, index, size, upload.chunk_size)
    return upload.chunk_size


def _put_chunk(upload: Upload, index: int, size: int, src: BinaryIO, started: float,
               recorded: bool) -> Outcome[Progress]:
    """Write a chunk's bytes, in place where it can, and record it; the caller holds the
    upload's shared lock, and read the row and whether the chunk was recorded under it."""
    chunk_size = _fix_chunk_size(upload, index, size)
    with chunk_files().claim(upload.key, index) as claimed:
        offset, prefix = (_place_of(upload, index, chunk_size, recorded) if claimed
                          else (None, None))
        chunk_files().write_chunk(upload.key, index, src, offset,
                                  () if prefix is None else (prefix,))
        return _record_chunk(upload, index, size, time.monotonic() - started, prefix)


def _place_of(upload: Upload, index: int, chunk_size: int | None,
              recorded: bool) -> tuple[int | None, Md5State | None]:
    """The offset at which a claimed chunk is written in place, or None when it goes aside:
    it was recorded before (a re-send; the bytes in place may be hashed already), or its
    offset is not known yet (the last chunk, before any other has told the chunk size).
    With it, the prefix hash to carry through the chunk, if it stands right before it."""
    end_reads()  # before the bytes are written
    if recorded or (chunk_size is None and index):
        return None, None
    return index * (chunk_size or 0), hashing.passing(upload.hashed_chunks, upload.md5_state,
                                                      index)


def _record_chunk(upload: Upload, index: int, size: int, seconds: float,
                  prefix: Md5State | None = None) -> Outcome[Progress]:
    # The upload's row is locked first: writers of the same upload then queue on it, where
    # the chunk insert's foreign-key check would otherwise let MySQL deadlock them. The hash
    # carried through the bytes as they passed is saved with it if it still stands where it
    # stood then (a chunk recorded for the first time changes no byte hashed before it).
    if not statements.touch(upload, index, None if prefix is None else prefix.save()):
        db.session.rollback()  # removed meanwhile by a DELETE
        store().delete(upload.key)
        raise UploadNotFound()
    # Under the row lock, so a racing store of the same chunk is seen here too.
    stored, had_this, hashed = statements.counts(upload, index)
    if had_this:  # its bytes may have changed under the prefix hash (saved or not)
        hashing.stop(upload)
    statements.upsert_chunk(upload.id, index, size)
    # No chunk is hashed before it is recorded: past this one, the hash is this one's.
    passed = not had_this and prefix is not None and hashed == index + 1
    statements.add_event(UploadEvent.CHUNK_STORED, upload, bytes=size,
                         duration_ms=int(seconds * 1000))
    store().locker.ending(upload.key)  # the chunk's work under the upload's lock ends here
    db.session.commit()
    metrics.chunk_stored(upload.protocol, size, seconds)
    log.info("upload %s chunk %d stored (%d bytes, %.3f s)", upload.key, index, size, seconds,
             extra=event_fields(UploadEvent.CHUNK_STORED, upload, chunk_index=index, bytes=size,
                                duration_ms=round(seconds * 1000, 3)))
    progress = Progress(stored + (0 if had_this else 1), upload.total_chunks)
    if had_this:
        return Outcome(progress)
    if passed:  # chunks after it recorded before it wait for a catch-up
        return Outcome(progress, (hashing.catch_up_later(upload),) if stored > index else ())
    if not hashing.needs_next(hashed, index):
        hashing.keep_up(upload, hashed, index)
        return Outcome(progress)
    return Outcome(progress, (hashing.catch_up_later(upload),))
