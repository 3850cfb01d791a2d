"""A chunk of an /api upload written in place while its request part arrives.

When a chunk's fields come before its bytes (as the upload page sends them), the chunk's
place in the upload's file is known before its first byte: place() takes the upload's shared
lock and the chunk's claim, the HTTP layer streams the part into that place (Placed.receive),
and store_chunk() checks and records it as chunks.store_chunk does a spooled one. Whenever the place
is not certain (a new upload, the chunk size not known yet, a chunk recorded before or
claimed by another request), place() says no and the part is spooled as before.
"""
import hashlib
import logging
import time
from contextlib import ExitStack
from typing import BinaryIO

from flask import current_app

from ...core.database import reads_only
from ...core.extensions import db
from ...core.models import Upload
from ...storage import LockBusy, Written
from ...storage.md5state import Md5State
from ..errors import ChunkMd5Mismatch, TotalChunksConflict, UploadNotFound
from ..followups import Outcome
from ..stores import chunk_files, holding, streamed_chunks
from ..uploads import reload_with_chunk
from . import chunks
from .chunks import _fix_chunk_size, _place_of, _record_chunk, check_declared_size
from .uploads import Progress, check_file_size, find, forget_if_lost_in_restart, note_file_size

log = logging.getLogger(__name__)


class Placed:
    """A chunk's place in its upload's file, held for one request: the upload's shared lock
    and the chunk's claim, until close()."""

    def __init__(self, stack: ExitStack, identity: tuple[str, str, int, int], upload: Upload,
                 offset: int, limit: int, chunk_md5: str | None,
                 prefix: Md5State | None = None) -> None:
        self._stack = stack
        self.identity = identity  # (md5, file name, total chunks, index) as the form gave them
        self.upload = upload
        self.offset = offset
        self.limit = limit
        # A chunkMd5 that came before the bytes is checked on a hash beside the receive.
        self._digest = hashlib.md5() if chunk_md5 is not None else None
        # The upload's prefix hash, carried through the bytes if it stands right before them.
        self.prefix = prefix
        self.written: Written | None = None
        self.started = time.monotonic()

    def receive(self, src: BinaryIO) -> Written:
        """Write the part's bytes in place, at most the chunk size of them (overflow says
        whether src held more)."""
        digests = [d for d in (self._digest, self.prefix) if d is not None]
        self.written = streamed_chunks().write_in_place(self.upload.key, self.offset, src,
                                                    self.limit, digests)
        return self.written

    def take_back(self, out: BinaryIO) -> None:
        """Copy the bytes written in place to out (a part that turned out too large goes
        the spooled way, as if it had never been placed)."""
        streamed_chunks().copy_in_place(self.upload.key, self.offset, self.written.size, out)

    def md5(self) -> str:
        if self._digest is not None:
            return self._digest.hexdigest()
        return streamed_chunks().md5_in_place(self.upload.key, self.offset, self.written.size)

    def close(self) -> None:
        self._stack.close()


def place(md5: str, file_name: str, total: int, index: int,
          chunk_md5: str | None = None) -> Placed | None:
    """The place of this chunk, held, when it can be written there as it arrives: the upload
    exists with its chunk size known, and no request recorded or claimed the chunk; else None
    (nothing held, nothing recorded)."""
    if streamed_chunks() is None:  # this store takes chunks whole: the part is spooled
        return None
    with reads_only():  # ended before the lock wait
        upload = find(md5, file_name)
    if not _may_place(upload, total):
        return None
    forget_if_lost_in_restart(upload)
    stack = ExitStack()
    try:
        stack.enter_context(holding(upload.key, exclusive=False, chunk=index))
        with reads_only():
            upload, recorded = reload_with_chunk(upload, index)
        if not _may_place(upload, total) or not stack.enter_context(
                chunk_files().claim(upload.key, index)):
            stack.close()
            return None
        # A chunk recorded before goes aside (its bytes in place may be hashed already).
        offset, prefix = _place_of(upload, index, upload.chunk_size, recorded)
    except (LockBusy, UploadNotFound):  # the spooled way answers these as it always has
        stack.close()
        return None
    except BaseException:
        stack.close()
        raise
    if offset is None:
        stack.close()
        return None
    # The body takes as long as its client does: no transaction stays open over it (it
    # would hold the tables' metadata locks, and a migration's ALTER TABLE, with every
    # statement queued behind it, would wait). The row is kept as read, not expired.
    db.session.expunge(upload)
    db.session.commit()
    return Placed(stack, (md5, file_name, total, index), upload, offset, upload.chunk_size,
                  chunk_md5, prefix)


def _may_place(upload: Upload | None, total: int) -> bool:
    return (upload is not None and not upload.is_completed and upload.total_chunks == total
            and upload.chunk_size is not None
            and 0 < upload.chunk_size <= current_app.config["MAX_CHUNK_SIZE"])


def store_chunk(md5: str, file_name: str, total: int, index: int, chunk: BinaryIO | Placed,
                file_size: int | None = None,
                chunk_md5: str | None = None) -> Outcome[Progress]:
    """Store one chunk: a part received in place is checked and recorded, with the same
    checks in the same order as chunks.store_chunk makes on a spooled one (which it
    stores)."""
    if not isinstance(chunk, Placed):
        return chunks.store_chunk(md5, file_name, total, index, chunk, file_size,
                                      chunk_md5)
    try:
        if chunk.identity != (md5, file_name, total, index) or chunk.written is None:
            raise RuntimeError("the placed chunk is not the one to store")
        return _store_placed(chunk, file_size, chunk_md5)
    finally:
        chunk.close()


def _store_placed(placed: Placed, file_size: int | None,
                  chunk_md5: str | None) -> Outcome[Progress]:
    # What happens to a spooled chunk in chunks.store_chunk, in its order; the upload's
    # shared lock and the chunk's claim are held since place().
    _, _, total, index = placed.identity
    if chunk_md5 is not None and placed.md5() != chunk_md5:
        raise ChunkMd5Mismatch()
    check_file_size(file_size)
    size = placed.written.size
    check_declared_size(total, index, size, None)
    # Held since place(): the shared lock keeps a merge and a DELETE out, so the row read
    # then still says what it said (not completed, its total and chunk size); a row
    # removed meanwhile regardless is found by _record_chunk.
    upload = db.session.merge(placed.upload, load=False)
    if upload.total_chunks != total:
        raise TotalChunksConflict()
    upload = note_file_size(upload, file_size)
    _fix_chunk_size(upload, index, size)
    # The bytes in place are the chunk now: a copy aside from an earlier try goes (only now:
    # until the chunk is checked, that copy is what a record of it stands for).
    chunk_files().drop_chunks(upload.key, [index])
    return _record_chunk(upload, index, size, time.monotonic() - placed.started,
                         placed.prefix)
