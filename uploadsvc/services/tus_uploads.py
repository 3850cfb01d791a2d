"""tus 1.0 upload flows on the same store, rows and events as the /api uploads.

A tus upload is an Upload row (protocol "tus") whose bytes live in one data file in its
chunk directory, appended at the recorded offset. The row's upload_offset is the truth:
bytes are written (and fsync'd, unless FSYNC is "complete") first, then the new offset is
committed; a data file found shorter than its offset (a machine crash) lowers the offset.
Every write holds the upload's exclusive store lock, so two PATCHes never interleave, on any
worker. The data file is hashed as PATCHes land (tus_hashing); a finished upload is placed
under uploads/ exactly like a merged /api upload.
"""
import hashlib
import logging
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.orm.attributes import set_committed_value

from ..core.extensions import db
from ..core.logs import event_fields
from ..core.models import TUS, Upload, UploadEvent, name_digest, utcnow
from ..storage.local import LockBusy, UploadGone
from . import access, api_uploads, metrics, statements, tus_hashing
from .errors import (
    ChecksumMismatch,
    FileTooLarge,
    FinalUploadReadOnly,
    InvalidInput,
    MergeInProgress,
    OffsetConflict,
    UploadExpired,
    UploadLocked,
    UploadNotFound,
)

log = logging.getLogger(__name__)

PARTIAL = "partial"
FINAL = "final"
_KEY = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Checksum:
    """An Upload-Checksum header: the algorithm (a hashlib name) and the expected digest."""

    algorithm: str
    digest: bytes


def head(key: str) -> Upload:
    """The upload, for HEAD: its offset is what the data file holds."""
    return _trust_offset(find(key))


def find(key: str) -> Upload:
    """The live tus upload with this key: 404 if unknown, 410 if expired (also once cleanup
    has removed it: its expired event is kept)."""
    if not _KEY.fullmatch(key):
        raise UploadNotFound()
    upload = db.session.execute(
        select(Upload).filter_by(key=key, protocol=TUS, owner_id=access.owner_id())
    ).scalar_one_or_none()
    expired = upload is None and db.session.execute(
        select(UploadEvent.id).filter_by(upload_key=key, kind=UploadEvent.EXPIRED).limit(1)
    ).first() is not None
    db.session.commit()  # end the read: no transaction stays open across a lock wait or I/O
    if upload is None:
        raise UploadExpired() if expired else UploadNotFound()
    if is_expired(upload):
        raise UploadExpired()
    return upload


def is_expired(upload: Upload) -> bool:
    return (not upload.is_completed and upload.expires_at is not None
            and upload.expires_at <= utcnow())


def create(length: int | None, file_name: str, metadata: str | None,
           concat: str | None = None) -> Upload:
    """A new, empty tus upload; a zero-length one is finished at once."""
    _check_size(length or 0)
    client = access.client_id()
    api_uploads.check_room(client)
    key = uuid.uuid4().hex
    chunk_store = api_uploads.chunk_store()
    chunk_store.create(key)  # the directory exists before the row, as for /api uploads
    upload = Upload(key=key, md5="", file_name=file_name, total_chunks=1, protocol=TUS,
                    owner_id=access.owner_id(), client=client,
                    # Never a valid /api file name (NUL), so never an /api upload's identity.
                    name_digest=name_digest(f"\0tus/{key}"),
                    upload_length=length, upload_offset=0, upload_metadata=metadata,
                    concat=concat)
    _refresh_expiry(upload)
    db.session.add(upload)
    if concat != PARTIAL:  # parts are not uploads of their own in the statistics
        db.session.add(UploadEvent.of(UploadEvent.CREATED, upload))
    db.session.commit()
    if concat != PARTIAL:
        metrics.upload_created()
    log.info("tus upload %s created (%s bytes, %s)", key, length, concat or "single",
             extra=event_fields(UploadEvent.CREATED, upload, upload_length=length,
                                concat=concat))
    if length == 0 and concat is None:
        with _locked(upload) as upload:
            _finish(upload, 0.0)
    return upload


def write(key: str, offset: int, src: BinaryIO, content_length: int | None,
          checksum: Checksum | None = None, length: int | None = None) -> Upload:
    """Append a PATCH body at offset; a body that fails its checksum or runs past the
    upload's length is discarded and leaves the offset where it was."""
    upload = find(key)
    if upload.concat == FINAL:
        raise FinalUploadReadOnly()
    with _locked(upload) as upload:
        upload = _trust_offset(upload)
        limit = _check_write(upload, offset, content_length, length)
        if upload.is_completed:
            return upload
        started = time.monotonic()
        digest = hashlib.new(checksum.algorithm) if checksum else None
        # A file sent in one PATCH (tus-js-client's default) is hashed as it arrives; the
        # PATCHes of a file sent in several are hashed after their answers (tus_hashing).
        whole = hashlib.md5() if offset == 0 and _may_finish(upload, content_length) else None
        digests = [d for d in (digest, whole) if d is not None]
        written = api_uploads.chunk_store().write_at(key, offset, src, limit, digests)
        if written.overflow:
            api_uploads.chunk_store().truncate(key, offset)
            raise FileTooLarge("The body runs past the upload's length.")
        if digest is not None and (written.interrupted or digest.digest() != checksum.digest):
            api_uploads.chunk_store().truncate(key, offset)
            raise ChecksumMismatch()
        if written.size:
            _record_write(upload, written.size, time.monotonic() - started)
        if upload.upload_offset == upload.upload_length and upload.concat != PARTIAL:
            known = whole.hexdigest() if whole and written.size == upload.upload_length else None
            _finish(upload, time.monotonic() - started, known)
        return upload


def hash_arrived(target: tus_hashing.Target) -> None:
    """Hash what the PATCHes brought so far (after the answer was sent)."""
    tus_hashing.advance(api_uploads.chunk_store(), target)


def concatenate(part_keys: list[str], parts_header: str, file_name: str,
                metadata: str | None) -> Upload:
    """A final upload made of finished partial uploads, placed under uploads/ at once;
    the parts are removed once it is."""
    parts = [find(key) for key in part_keys]
    with ExitStack() as stack:
        for part in sorted(parts, key=lambda p: p.key):  # one order: no deadlock
            stack.enter_context(_locked(part))
        parts = [_trust_offset(_reload_live(part)) for part in parts]
        for part in parts:
            if part.concat != PARTIAL or part.upload_offset != part.upload_length:
                raise InvalidInput("Every part must be a finished partial upload.")
        total = sum(part.upload_length for part in parts)
        _check_size(total)
        final = create(total, file_name, metadata, concat=FINAL)
        final.concat_parts = parts_header
        # The transfer began with the first part: that is what upload time and stats measure.
        final.started_at = min(part.started_at for part in parts)
        started = time.monotonic()
        merged = api_uploads.chunk_store().concatenate([part.key for part in parts])
        final.md5 = merged.md5
        final.upload_offset = merged.size
        final.expires_at = None
        api_uploads.place_and_finish(final, merged, time.monotonic() - started)
        for part in parts:
            api_uploads.remove(part, UploadEvent.CONCATENATED)
    return final


def terminate(key: str) -> None:
    """Remove an upload's bytes and row (termination); a finished file goes too."""
    with _locked(find(key)) as upload:
        api_uploads.remove(upload, UploadEvent.DELETED)


# -- internals ------------------------------------------------------------------------------


@contextmanager
def _locked(upload: Upload) -> Iterator[Upload]:
    """Hold the upload's exclusive lock (bounded wait) and yield its row, fresh. `upload`
    was just read (or created) by the caller. A finished upload's row never changes and its
    chunk directory (with the lock file) is gone."""
    if upload.is_completed:
        yield upload
        return
    wait = float(current_app.config["LOCK_WAIT_SECONDS"])
    with ExitStack() as stack:
        try:
            stack.enter_context(api_uploads.chunk_store().lock(upload.key, True, wait))
        except LockBusy:
            raise UploadLocked() from None
        except UploadGone:  # finished or removed meanwhile
            upload = _reload_live(upload)
            if not upload.is_completed:
                raise MergeInProgress("This upload changed meanwhile; retry.") from None
            yield upload
            return
        yield _reload_live(upload)


def _reload_live(upload: Upload) -> Upload:
    """The row as committed now, read in a transaction of its own that is already ended."""
    db.session.commit()
    fresh = db.session.execute(
        select(Upload).filter_by(id=upload.id).execution_options(populate_existing=True)
    ).scalar_one_or_none()
    db.session.commit()
    if fresh is None:
        raise UploadNotFound()
    if is_expired(fresh):
        raise UploadExpired()
    return fresh


def _trust_offset(upload: Upload) -> Upload:
    """Lower the recorded offset to the bytes the data file holds.

    Only a machine crash makes them fewer (with FSYNC "complete", offsets are committed
    before the bytes reach the disk); the client then resumes from what is really there.
    """
    if upload.is_completed or upload.concat == FINAL or not upload.upload_offset:
        return upload
    held = api_uploads.chunk_store().data_size(upload.key)
    if held >= upload.upload_offset:
        return upload
    lowered = db.session.execute(
        update(Upload).filter_by(id=upload.id, key=upload.key,
                                 upload_offset=upload.upload_offset)
        .values(upload_offset=held, md5_state=None)).rowcount  # the hash restarts from 0
    db.session.commit()
    if lowered:
        log.warning("tus upload %s: %d bytes recorded but %d on disk (lost in a crash); "
                    "the offset is now %d", upload.key, upload.upload_offset, held, held)
    return _reload_live(upload)


def _may_finish(upload: Upload, content_length: int | None) -> bool:
    """Whether a PATCH may bring the rest of the upload (always, if either size is unknown)."""
    return (content_length is None or upload.upload_length is None
            or content_length >= upload.upload_length - upload.upload_offset)


def _check_write(upload: Upload, offset: int, content_length: int | None,
                 length: int | None) -> int:
    """Refuse a PATCH that does not fit the upload; the bytes it may bring at most."""
    if length is not None:
        _declare_length(upload, length)
    if upload.upload_offset != offset:
        raise OffsetConflict(uploadOffset=upload.upload_offset)
    limit = _remaining(upload)
    if content_length is not None and content_length > limit:
        raise FileTooLarge("The body runs past the upload's length.")
    return limit


def _check_size(size: int) -> None:
    limit = current_app.config["MAX_FILE_SIZE"]
    if size > limit:
        raise FileTooLarge(f"The upload would be {size} bytes; the limit is {limit}.")


def _remaining(upload: Upload) -> int:
    end = upload.upload_length
    if end is None:
        end = current_app.config["MAX_FILE_SIZE"]
    return max(0, end - upload.upload_offset)


def _declare_length(upload: Upload, length: int) -> None:
    """Set a deferred length once; it never changes afterwards."""
    if upload.upload_length is not None:
        if length != upload.upload_length:
            raise InvalidInput("Upload-Length is already set and cannot change.")
        return
    if length < upload.upload_offset:
        raise InvalidInput("Upload-Length is less than the bytes already received.")
    _check_size(length)
    upload.upload_length = length
    db.session.commit()


def _refresh_expiry(upload: Upload) -> None:
    upload.expires_at = utcnow() + current_app.config["TUS_EXPIRY"]


def _record_write(upload: Upload, size: int, seconds: float) -> None:
    """Commit the new offset (with prebuilt statements: this runs for every PATCH) and keep
    the caller's row in step without the ORM writing it again."""
    now = utcnow()
    expires = now + current_app.config["TUS_EXPIRY"]
    statements.record_write(upload, size, now, expires)
    statements.add_event(UploadEvent.CHUNK_STORED, upload, bytes=size,
                         duration_ms=int(seconds * 1000))
    db.session.commit()
    for name, value in (("upload_offset", upload.upload_offset + size), ("updated_at", now),
                        ("expires_at", expires)):
        set_committed_value(upload, name, value)
    metrics.chunk_stored(size, seconds)
    log.info("tus upload %s: %d bytes stored at %d (%.3f s)",
             upload.key, size, upload.upload_offset - size, seconds,
             extra=event_fields(UploadEvent.CHUNK_STORED, upload,
                                offset=upload.upload_offset - size, bytes=size,
                                duration_ms=round(seconds * 1000, 3)))


def _finish(upload: Upload, seconds: float, md5: str | None = None) -> Upload:
    """Hash the finished data file (unless its md5 is known; from where the incremental
    hash stands, if it does) and place it under uploads/; the caller holds the lock."""
    store = api_uploads.chunk_store()
    wait = float(current_app.config["LOCK_WAIT_SECONDS"])
    saved = None if md5 else tus_hashing.prefix_state(store, upload, wait)
    merged = store.seal(upload.key, upload.upload_length, md5, saved)
    upload.md5 = merged.md5
    upload.expires_at = None
    return api_uploads.place_and_finish(upload, merged, seconds)
