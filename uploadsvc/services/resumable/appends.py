"""Creating uploads of the draft and appending to them.

Unlike tus, an upload is complete only when a request says so (Upload-Complete: ?1) and its
whole body arrived: an offset that reaches the length completes nothing. A body cut short
keeps what arrived, and the upload stays incomplete. A body that would pass the upload's
length, or ends where the recorded length says it cannot, stores none of its bytes.
"""
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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
from . import digests
from .takeover import take_over, watching


@dataclass(frozen=True)
class Body:
    """A request's body as the draft sends it: its stream, its Content-Length if any,
    whether it ends the upload, its Content-Digest (algorithm: digest) and whether the
    client wants the representation's SHA-256 (Want-Repr-Digest)."""

    src: BinaryIO
    length: int | None
    complete: bool
    digests: Mapping[str, bytes] = field(default_factory=dict)
    want_sha256: bool = False


def start(length: int | None, file_name: str, metadata: str | None, body: Body,
          repr_digest: Mapping[str, bytes] | None, announce: Callable[[Upload], None],
          cut: Callable[[], None]) -> Outcome[Upload]:
    """Upload creation: a new upload (announced before its body is read), then the body
    appended as by append(); `repr_digest` is checked when the upload completes."""
    if body.complete and body.length is not None:
        if length is not None and length != body.length:
            raise InconsistentLength("Upload-Length and Content-Length disagree.")
        length = body.length
    check_size(length or 0)
    upload = create(length, file_name, metadata, protocol=IETF)
    if repr_digest:
        upload.repr_digest = digests.encode(repr_digest)
        db.session.commit()
    announce(upload)
    return _append(upload, 0, body, None, cut)


def append(key: str, offset: int, body: Body, length: int | None, cut: Callable[[], None],
           replay: bool = False) -> Outcome[Upload]:
    """Upload append: the body at offset, which must be the upload's; if it is `complete`,
    its end is the upload's end, and the upload is finished once all of it arrived. A
    completed upload refuses it (UploadCompleted), or with `replay` answers it as
    completed. A body that fails its Content-Digest stores nothing."""
    return _append(take_over(key), offset, body, length, cut, replay)


def _append(upload: Upload, offset: int, body: Body, length: int | None, cut,
            replay: bool = False) -> Outcome[Upload]:
    content_length, complete = body.length, body.complete
    generation = upload.generation
    with locked(upload) as upload:
        if upload.generation != generation:  # taken over while this one waited
            raise_superseded(upload)
        upload = trust_offset(upload)
        if upload.is_completed and replay and offset == upload.upload_offset:
            return Outcome(upload)
        limit = _check(upload, offset, content_length, complete, length)
        started = time.monotonic()
        content = digests.hashers(body.digests)
        # The whole representation in this one body: its SHA-256 as it passes, if wanted.
        whole = digests.hashers({"sha-256": b""} if complete and offset == 0 and (
            body.want_sha256 or "sha-256" in digests.expected(upload)) else None)
        with watching(upload, cut) as watch:
            received = receive(upload, offset, body.src, limit, complete,
                               [*content.values(), *whole.values()])
        written = received.written
        if written.overflow:
            store().truncate(upload.key, offset)
            _refuse_past(upload)
        if content and (written.interrupted or watch.ended
                        or not digests.check_content(body.digests, content)):
            store().truncate(upload.key, offset)
            raise digests.ContentDigestMismatch(uploadOffset=offset)
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
            sha256 = whole["sha-256"].hexdigest() if whole else None
            finish(upload, time.monotonic() - started, received.md5,
                   digests.checker(sha256, body.want_sha256))
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
