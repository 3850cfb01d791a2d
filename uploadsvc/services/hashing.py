"""The prefix hash: an upload's MD5 computed as its bytes arrive, for /api and tus alike.

The upload's row keeps ``md5_state``, the saved MD5 state of the first bytes of the upload's
file (how many is part of the state); for an /api upload ``hashed_chunks`` also says how many
chunks those bytes are (-1: off, the file is hashed in one pass at completion). After a
chunk or PATCH is answered, ``catch_up`` hashes what arrived since the saved state, so that
completing an upload only finishes the digest.

Correctness under concurrency: one hasher at a time holds the upload's hashing lock (a
request that finds it busy leaves its bytes to the holder, who looks again after letting go),
and a state is saved only if the row still holds the one it started from, so the saved state
is always the MD5 of a prefix of the finished file. Bytes below it never change: tus PATCHes
only append (only a machine crash lowers the offset, which clears the state), and an /api
chunk recorded a second time, or stored aside, stops the hash before it.
"""
import logging
from typing import NamedTuple

from sqlalchemy import select

from ..core.database import end_reads
from ..core.extensions import db
from ..core.models import COMPLETED, STREAMED, Upload
from ..storage import Sealed, StorageError, md5state
from ..storage.md5state import Md5State
from . import statements
from .followups import FollowUp
from .stores import chunk_files, hashing_lock, lock_wait, store

log = logging.getLogger(__name__)

OFF = -1
# /api chunks hashed per transaction: bounds the time between saves of the state.
BATCH = 32
# How far the hash may fall behind the bytes recorded before a request catches it up
# before answering. It runs on the worker's background threads beside the receive; where
# the CPU is short (several streams on few cores) it would fall behind without bound, and
# completing the upload would then hash the rest while the client waits.
LAG_LIMIT = 64 * 1024 * 1024


class Job(NamedTuple):
    """Which upload to catch up on (an Upload row will do as well)."""

    id: int
    key: str
    protocol: str
    chunk_size: int | None = None  # an /api upload's, where the store places chunks by it


def catch_up_later(upload: Upload) -> FollowUp:
    return FollowUp(catch_up, (Job(upload.id, upload.key, upload.protocol,
                                   upload.chunk_size),))


def catch_up(upload: Job | Upload, wait: float = 0.0) -> None:
    """Hash the bytes that arrived since the saved state, waiting at most `wait` seconds
    for another hasher (a busy lock is left to its holder, who looks again after)."""
    if not md5state.AVAILABLE:
        return
    if upload.protocol in STREAMED:
        _catch_up_stream(upload)
    else:
        _catch_up_chunks(upload, wait)


# -- /api uploads: chunks at their index ------------------------------------------------


def passing(hashed_chunks: int, saved: bytes | None, index: int) -> Md5State | None:
    """The prefix hash to carry through chunk `index` as its bytes pass, if it stands right
    before that chunk (it is saved only if it still does once the chunk is recorded)."""
    if not md5state.AVAILABLE or hashed_chunks != index:
        return None
    try:
        return Md5State(saved)
    except ValueError:
        return None


def needs_next(hashed_chunks: int, index: int) -> bool:
    """Whether a chunk just recorded is the one the prefix hash needs next."""
    return md5state.AVAILABLE and hashed_chunks == index


def keep_up(upload: Upload, hashed_chunks: int, index: int) -> None:
    """Catch the hash up now if it is more than LAG_LIMIT behind chunk `index`, just
    recorded: the request waits for its turn at the hashing lock, and its client is held
    back to the pace of the hash (the caller has committed)."""
    if (md5state.AVAILABLE and hashed_chunks != OFF and upload.chunk_size
            and (index - hashed_chunks) * upload.chunk_size > LAG_LIMIT):
        catch_up(upload, wait=lock_wait())


def stop(upload: Upload) -> None:
    """Stop the prefix hash of an /api upload (in the caller's transaction)."""
    statements.set_hash(upload, OFF, None)


def restart(upload: Upload) -> None:
    """Start the prefix hash of an /api upload again from its first byte."""
    statements.set_hash(upload, 0, None)


def sealed_chunks(upload: Upload, size: int, wait: float) -> Sealed:
    """The upload's file, every chunk in place and hashed, sealed.

    The caller holds the upload's exclusive lock, so no chunk arrives meanwhile; holding the
    hashing lock too, no catch-up runs. Chunks stored aside are put in place first; the
    saved state is used unless one of them overrides bytes it hashed: then the whole file is
    hashed.
    """
    chunks = chunk_files()
    with hashing_lock(upload.key, wait) as held:
        if held and md5state.AVAILABLE:
            _hash_ready_chunks(upload)
        row = db.session.execute(
            select(Upload.hashed_chunks, Upload.md5_state).filter_by(id=upload.id,
                                                                     key=upload.key)).one()
        db.session.commit()
        placed = chunks.place_chunks(upload.key, upload.chunk_size)
        trusted = (held and md5state.AVAILABLE and row.hashed_chunks != OFF
                   and not (placed and placed[0] < row.hashed_chunks))
        if placed and not trusted:  # the saved state speaks of bytes replaced in place
            stop(upload)
            db.session.commit()
        sealed = store().seal(upload.key, size, saved=row.md5_state if trusted else None)
        if trusted and sealed.md5 != upload.md5:  # a mismatch is decided by a single pass
            store().discard(sealed)
            sealed = store().seal(upload.key, size)
        chunks.drop_chunks(upload.key, placed)
        return sealed


def _catch_up_chunks(upload: Job | Upload, wait: float) -> None:
    try:
        while True:
            with hashing_lock(upload.key, wait) as held:
                stopped = held and not _hash_ready_chunks(upload)
            # A chunk that came while we held the lock found it busy and left itself to us.
            found = statements.status_and_next(upload)
            end_reads()
            if found is None or found.status == COMPLETED:
                break  # deleted or completed meanwhile: see below
            if not held or not found[1] or stopped:
                return
    except BaseException:
        _delete_if_finished(upload)
        raise
    # The hashing lock's file, made while the upload was being removed, would stay behind.
    store().delete(upload.key)


def _hash_ready_chunks(upload: Job | Upload) -> bool:
    """Hash the chunks that are ready; False if it stopped before a chunk not yet in place
    (completion hashes on from there) or hashing failed."""
    start, state, ready = _ready(upload)
    while ready:
        batch = len(ready)
        unplaced = chunk_files().unplaced_chunks(upload.key, [index for index, _ in ready],
                                                 upload.chunk_size)
        ready = [chunk for chunk in ready if not unplaced or chunk[0] < unplaced[0]]
        if not ready:
            return False  # completion puts that chunk in place and hashes on from there
        end = Md5State(state).length + sum(size for _, size in ready)
        try:
            state = store().hash_prefix(upload.key, state, end)
        except (StorageError, OSError, ValueError) as exc:
            log.warning("upload %s: prefix hash stopped (%s)", upload.key, exc)
            stop(upload)
            db.session.commit()
            return False
        if not statements.save_hash(upload, start, start + len(ready), state):
            db.session.commit()  # stopped meanwhile
            return False
        db.session.commit()
        if len(ready) < batch:
            return False
        if batch < BATCH:
            return True  # _catch_up_chunks looks for chunks that came meanwhile
        start, state, ready = _ready(upload)
    return True


def _ready(upload: Job | Upload) -> tuple[int, bytes | None, list[tuple[int, int]]]:
    """(hashed_chunks, md5_state, [(index, size)] of the stored chunks from hashed_chunks on,
    without a gap); ends the transaction, so that none stays open over the hashing."""
    rows = statements.hash_and_ready(upload, BATCH)
    end_reads()
    if not rows or rows[0].hashed_chunks == OFF:
        return OFF, None, []
    start, state = rows[0].hashed_chunks, rows[0].md5_state
    ready = []
    for row in rows:
        if row.chunk_index != start + len(ready):
            break
        ready.append((row.chunk_index, row.size))
    return start, state, ready


def _delete_if_finished(upload: Job | Upload) -> None:
    status = db.session.execute(
        select(Upload.status).filter_by(id=upload.id, key=upload.key)).scalar_one_or_none()
    db.session.commit()
    if status is None or status == COMPLETED:
        store().delete(upload.key)


# -- tus uploads: one stream of bytes, appended ------------------------------------------


def after_write(upload: Upload) -> FollowUp | None:
    """What to hash after answering a PATCH, if anything: the bytes of an unfinished upload
    (partial uploads are hashed when concatenated). If the hash is more than LAG_LIMIT
    behind, it is caught up now, before the answer (the caller holds the upload's lock)."""
    if not md5state.AVAILABLE or upload.is_completed or upload.concat is not None:
        return None
    hashed = Md5State(upload.md5_state).length if upload.md5_state else 0
    if upload.upload_offset - hashed > LAG_LIMIT:
        _catch_up_stream(upload, lock_wait())
        return None
    return catch_up_later(upload)


def resume_at(upload: Upload, offset: int) -> Md5State | None:
    """The prefix hash to carry through a PATCH at `offset`, if its saved state ends there
    (the caller holds the upload's exclusive lock, so no other PATCH moves the offset, and
    a catch-up can only save a state that ends at or before it: the PATCH's save, made with
    its offset, is never undone by one)."""
    if not md5state.AVAILABLE or upload.is_completed or upload.concat is not None:
        return None
    try:
        state = Md5State(upload.md5_state)
    except ValueError:
        return None
    return state if state.length == offset else None


def saved_prefix(upload: Upload, wait: float) -> bytes | None:
    """The saved state of a tus upload's first bytes, for finishing it (the caller holds
    its exclusive lock, so no PATCH adds bytes); a running catch-up is waited for at most
    `wait` seconds, after that its result is not needed."""
    if not md5state.AVAILABLE:
        return None
    with hashing_lock(upload.key, wait):
        row = statements.data_hash(upload)
        db.session.commit()
    if row is None or row.md5_state is None:
        return None
    return row.md5_state if Md5State(row.md5_state).length <= upload.upload_offset else None


def _catch_up_stream(upload: Job | Upload, wait: float = 0.0) -> None:
    while True:
        with hashing_lock(upload.key, wait) as held:
            if not held:
                return
            moved = _hash_stream(upload)
        if moved is None:
            # Finished or removed meanwhile: the hashing lock's file would stay behind.
            store().delete(upload.key)
            return
        if not moved:
            return


def _hash_stream(upload: Job | Upload) -> bool | None:
    """One step under the hashing lock: whether it hashed anything; None if the upload is
    finished or gone."""
    row = statements.data_hash(upload)
    end_reads()  # (one that has only read holds nothing over the hashing)
    if row is None or row.status == COMPLETED:
        return None
    if not row.upload_offset:
        return False
    start = row.md5_state
    if start is not None and Md5State(start).length >= row.upload_offset:
        return False
    try:
        state = store().hash_prefix(upload.key, start, row.upload_offset)
    except (StorageError, OSError, ValueError) as exc:  # gone, or changed by a crash
        log.info("tus upload %s: prefix hash stopped (%s)", upload.key, exc)
        return False
    saved = statements.save_data_hash(upload, start, state)
    db.session.commit()
    return saved
