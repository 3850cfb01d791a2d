"""Creating uploads of the draft and appending to them.

Unlike tus, an upload is complete only when a request says so (Upload-Complete: ?1) and its
whole body arrived: an offset that reaches the length completes nothing. A body cut short
keeps what arrived, and the upload stays incomplete. A body that would pass the upload's
length, or ends where the recorded length says it cannot, stores none of its bytes.
"""
import time
from collections.abc import Callable
from typing import BinaryIO

from flask import current_app

from ...core.extensions import db
from ...core.models import IETF, Upload
from .. import hashing
from ..errors import (
    FileTooLarge,
    InconsistentLength,
    OffsetConflict,
    UploadCompleted,
    UploadSuperseded,
)
from ..followups import FollowUp, Outcome
from ..stores import store
from ..tus.uploads import check_size, create, finish, locked, trust_offset
from ..tus.writes import receive, record
from .takeover import take_over, watching


def start(length: int | None, file_name: str, metadata: str | None, complete: bool,
          src: BinaryIO, content_length: int | None,
          announce: Callable[[Upload], None], cut: Callable[[], None]) -> Outcome[Upload]:
    """Upload creation: a new upload (announced before its body is read), then the body
    appended as by append()."""
    if complete and content_length is not None:
        if length is not None and length != content_length:
            raise InconsistentLength("Upload-Length and Content-Length disagree.")
        length = content_length
    check_size(length or 0)
    upload = create(length, file_name, metadata, protocol=IETF)
    announce(upload)
    return _append(upload, 0, src, content_length, complete, None, cut)


def append(key: str, offset: int, src: BinaryIO, content_length: int | None,
           complete: bool, length: int | None, cut: Callable[[], None],
           replay: bool = False) -> Outcome[Upload]:
    """Upload append: the body at offset, which must be the upload's; with `complete`, its
    end is the upload's end, and the upload is finished once all of it arrived. A completed
    upload refuses it (UploadCompleted), or with `replay` answers it as completed."""
    return _append(take_over(key), offset, src, content_length, complete, length, cut,
                   replay)


def _append(upload: Upload, offset: int, src: BinaryIO, content_length: int | None,
            complete: bool, length: int | None, cut, replay: bool = False) -> Outcome[Upload]:
    generation = upload.generation
    with locked(upload) as upload:
        if upload.generation != generation:  # taken over while this one waited
            raise_superseded(upload)
        upload = trust_offset(upload)
        if upload.is_completed and replay and offset == upload.upload_offset:
            return Outcome(upload)
        limit = _check(upload, offset, content_length, complete, length)
        started = time.monotonic()
        with watching(upload, cut) as watch:
            received = receive(upload, offset, src, limit, complete, [])
        written = received.written
        if written.overflow:
            store().truncate(upload.key, offset)
            _refuse_past(upload)
        finishing = complete and not written.interrupted and not watch.ended and (
            content_length is None or written.size == content_length)
        if finishing:
            _end_at(upload, offset + written.size)
        if written.size:
            record(upload, written.size, time.monotonic() - started, received.state,
                   finishing)
        if watch.ended:
            raise_superseded(upload)
        if finishing:
            finish(upload, time.monotonic() - started, received.md5)
            return Outcome(upload, (FollowUp(store().delete, (upload.key,)),))
        if received.state is not None:
            return Outcome(upload)
    later = hashing.after_write(upload)
    return Outcome(upload, (later,) if later else ())


def _check(upload: Upload, offset: int, content_length: int | None, complete: bool,
           length: int | None) -> int:
    """Refuse an append that does not fit the upload; the bytes it may bring at most."""
    if upload.is_completed:
        raise UploadCompleted(uploadOffset=upload.upload_offset)
    if length is not None:
        _declare(upload, length)
    if offset != upload.upload_offset:
        raise OffsetConflict(uploadOffset=upload.upload_offset)
    if complete and content_length is not None:
        _declare(upload, offset + content_length)
    return _room(upload, content_length)


def _end_at(upload: Upload, end: int) -> None:
    """A completing body ended at `end`: that is the upload's length (the bytes past the
    offset are dropped if the recorded one says otherwise)."""
    if upload.upload_length is None:
        check_size(end)
        upload.upload_length = end
        db.session.commit()
    elif upload.upload_length != end:
        store().truncate(upload.key, upload.upload_offset)
        raise InconsistentLength("The body ends before the upload's length.",
                                 uploadOffset=upload.upload_offset)


def raise_superseded(upload: Upload):
    raise UploadSuperseded(uploadOffset=upload.upload_offset)


def _declare(upload: Upload, length: int) -> None:
    """Record the upload's length once; it never changes afterwards."""
    if upload.upload_length is not None:
        if length != upload.upload_length:
            raise InconsistentLength(f"This upload's length is {upload.upload_length}.",
                                     uploadOffset=upload.upload_offset)
        return
    if length < upload.upload_offset:
        raise InconsistentLength("The length is less than the bytes already received.",
                                 uploadOffset=upload.upload_offset)
    check_size(length)
    upload.upload_length = length
    db.session.commit()


def _room(upload: Upload, content_length: int | None) -> int:
    """The bytes the body may bring at most: up to the length, or the size limit."""
    end = upload.upload_length
    if end is None:
        end = current_app.config["MAX_FILE_SIZE"]
    room = max(0, end - upload.upload_offset)
    if content_length is not None and content_length > room:
        _refuse_past(upload)
    return room


def _refuse_past(upload: Upload):
    if upload.upload_length is None:
        raise FileTooLarge(uploadOffset=upload.upload_offset)
    raise InconsistentLength("The body runs past the upload's length.",
                             uploadOffset=upload.upload_offset)
