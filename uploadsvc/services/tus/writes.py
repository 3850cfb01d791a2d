"""tus PATCH bodies: appended at the upload's offset, checked, recorded, and finished."""
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import BinaryIO

from flask import current_app
from sqlalchemy.orm.attributes import set_committed_value

from ...core.extensions import db
from ...core.logs import event_fields
from ...core.models import Upload, UploadEvent, utcnow
from ...storage import Written
from ...storage.md5state import Md5State
from .. import hashing, metrics, statements
from ..errors import (
    ChecksumMismatch,
    FileTooLarge,
    FinalUploadReadOnly,
    InvalidInput,
    OffsetConflict,
)
from ..followups import FollowUp, Outcome
from ..stores import joins_transaction, store, transaction
from .uploads import FINAL, PARTIAL, check_size, find, finish, locked, trust_offset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checksum:
    """An Upload-Checksum header: the algorithm (a hashlib name) and the expected digest."""

    algorithm: str
    digest: bytes


def write(key: str, offset: int, src: BinaryIO, content_length: int | None,
          checksum: Checksum | None = None, length: int | None = None) -> Outcome[Upload]:
    """Append a PATCH body at offset; a body that fails its checksum or runs past the
    upload's length is discarded and leaves the offset where it was. Hashing what arrived,
    or removing a finished upload's bytes, is left for after the answer."""
    # Where the upload's lock is taken in the transaction that reads its row (the
    # database's leases), the row is read under a row lock, and not again once held.
    joined = joins_transaction()
    upload = find(key, lock=joined)
    if upload.concat == FINAL:
        raise FinalUploadReadOnly()
    with locked(upload, transaction() if joined else None) as upload:
        upload = trust_offset(upload)
        limit = _check_write(upload, offset, content_length, length)
        if upload.is_completed:
            return Outcome(upload)
        started = time.monotonic()
        digest = hashlib.new(checksum.algorithm) if checksum else None
        received = receive(upload, offset, src, limit, _may_finish(upload, content_length),
                           [digest] if digest else [])
        written = received.written
        if written.overflow:
            store().truncate(key, offset)
            raise FileTooLarge("The body runs past the upload's length.")
        if digest is not None and (written.interrupted or digest.digest() != checksum.digest):
            store().truncate(key, offset)
            raise ChecksumMismatch()
        finishing = (offset + written.size == upload.upload_length
                     and upload.concat != PARTIAL)
        if written.size:
            record(upload, written.size, time.monotonic() - started, received.state,
                   finishing)
        if finishing:
            finish(upload, time.monotonic() - started, received.md5)
            return Outcome(upload, (FollowUp(store().delete, (key,)),))
        if received.state is not None:
            return Outcome(upload)
    later = hashing.after_write(upload)
    return Outcome(upload, (later,) if later else ())


@dataclass(frozen=True)
class Received:
    """A body stored at an offset: what write() said, the prefix hash's saved state if it
    reached the body's end, and the MD5 of the upload's bytes up to there if known."""

    written: Written
    state: bytes | None
    md5: str | None


def receive(upload: Upload, offset: int, src: BinaryIO, limit: int, finishing: bool,
            digests: list) -> Received:
    """Store a body at offset (the caller holds the lock and has checked the offset),
    feeding it to digests and to the prefix hash beside its receive (a catch-up after the
    answer hashes it only where the prefix hash stands further back). `finishing`: whether
    the body may end the upload (then a body from 0 is hashed whole, if there is no prefix
    hash)."""
    prefix = hashing.resume_at(upload, offset)
    whole = hashlib.md5() if prefix is None and finishing and offset == 0 else None
    written = store().write(upload.key, offset, src, limit,
                            [d for d in (*digests, prefix, whole) if d is not None])
    end = offset + written.size
    state = prefix.save() if prefix is not None and prefix.length == end else None
    md5 = (Md5State(state).hexdigest() if state is not None
           else whole.hexdigest() if whole is not None else None)
    return Received(written, state, md5)


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
    check_size(length)
    upload.upload_length = length
    db.session.commit()


def record(upload: Upload, size: int, seconds: float, state: bytes | None,
           finishing: bool) -> None:
    """Commit the new offset, and the prefix hash's state if it reached it (with prebuilt
    statements: this runs for every PATCH), and keep the caller's row in step without the
    ORM writing it again. Unless the upload is `finishing`, the PATCH's work ends here."""
    now = utcnow()
    expires = now + current_app.config["TUS_EXPIRY"]
    statements.record_write(upload, size, now, expires, state)
    statements.add_event(UploadEvent.CHUNK_STORED, upload, bytes=size,
                         duration_ms=int(seconds * 1000))
    if not finishing:
        store().locker.ending(upload.key)
    db.session.commit()
    changed = {"upload_offset": upload.upload_offset + size, "updated_at": now,
               "expires_at": expires}
    if state is not None:
        changed["md5_state"] = state
    for name, value in changed.items():
        set_committed_value(upload, name, value)
    metrics.chunk_stored(upload.protocol, size, seconds)
    log.info("%s upload %s: %d bytes stored at %d (%.3f s)", upload.protocol,
             upload.key, size, upload.upload_offset - size, seconds,
             extra=event_fields(UploadEvent.CHUNK_STORED, upload,
                                offset=upload.upload_offset - size, bytes=size,
                                duration_ms=round(seconds * 1000, 3)))


