"""Service steps of incremental hashing: fold chunks into the upload's MD5 as they arrive.

When the chunk that the hash needs next is stored, it and every stored chunk after it are
appended to the store's assembly and hashed; the MD5 state and the count of folded chunks
go in the upload's row. Completing an upload whose chunks came in order then only finishes
the digest and places the assembled file.

Correctness under concurrency: folding happens under the store's hash lock (one folder at a
time; a request that finds it busy leaves its chunk to the holder, who looks again after
letting go). It runs after the chunk's answer is sent, so it does not hold the upload's lock;
completing takes the exclusive lock (no new chunks), then waits for the hash lock and folds
what is left. A fold whose chunk directory is deleted under it just stops. The row
is updated only if hashed_chunks is still what the fold started from; a chunk recorded a
second time sets it to -1 first, because its bytes may have been replaced under a fold, so
that upload is merged in one pass instead.
"""
import logging
from typing import NamedTuple

from sqlalchemy import select

from . import md5state, statements
from .extensions import db
from .models import COMPLETED, Upload
from .storage import ChunkStore, Merged, StorageError

log = logging.getLogger(__name__)

DISABLED = -1
# Chunks folded per transaction: bounds the time between progress saves.
FOLD_BATCH = 32


def forget(upload: Upload) -> None:
    """Stop hashing this upload incrementally (in the caller's transaction)."""
    statements.set_hash(upload, DISABLED, None)


def is_next(hashed_chunks: int, index: int) -> bool:
    """Whether a chunk just recorded is the one the hash needs next."""
    return md5state.AVAILABLE and hashed_chunks == index


class Target(NamedTuple):
    """What folding needs of an upload (an Upload row will do as well)."""

    id: int
    key: str


def advance(store: ChunkStore, upload: Target | Upload, wait: float = 0.0) -> None:
    """Fold every chunk that is ready, waiting at most `wait` seconds for another folder."""
    if not md5state.AVAILABLE:
        return
    try:
        while True:
            with store.hash_lock(upload.key, wait) as held:
                if held:
                    _fold_ready(store, upload)
            # A chunk that came while we held the lock found it busy and left itself to us.
            found = statements.status_and_next(upload)
            db.session.commit()
            if found is None or found.status == COMPLETED:
                break  # deleted or completed meanwhile: see below
            if not held or not found[1]:
                return  # a busy lock: its holder folds our chunk too and looks again after
    except BaseException:
        _drop_if_gone(store, upload)
        raise
    # A fold that created its lock or assembly file while the directory was being removed
    # would otherwise leave it behind.
    store.delete_chunks(upload.key)


def assembled(store: ChunkStore, upload: Upload, wait: float) -> Merged | None:
    """The upload's file, assembled and hashed as it arrived, once every chunk is folded;
    the caller holds the upload's exclusive lock, so only a running fold can add to it."""
    if not md5state.AVAILABLE:
        return None
    advance(store, upload, wait)
    row = db.session.execute(
        select(Upload.hashed_chunks, Upload.md5_state).filter_by(id=upload.id, key=upload.key)
    ).one()
    db.session.commit()
    if row.hashed_chunks != upload.total_chunks or row.md5_state is None:
        return None
    found = store.assembled(upload.key, row.md5_state)
    return Merged(*found) if found else None


def _fold_ready(store: ChunkStore, upload: Target | Upload) -> None:
    start, state, ready = _ready(upload)
    while ready:
        try:
            state = store.fold(upload.key, state, ready)
        except (StorageError, OSError, ValueError) as exc:
            log.warning("upload %s: incremental hashing stopped (%s)", upload.key, exc)
            forget(upload)
            db.session.commit()
            return
        if not statements.save_hash(upload, start, start + len(ready), state):
            db.session.commit()  # turned off meanwhile
            return
        db.session.commit()
        if len(ready) < FOLD_BATCH:
            return  # advance() looks for chunks that came meanwhile
        start, state, ready = _ready(upload)


def _ready(upload: Target | Upload) -> tuple[int, bytes | None, list[tuple[int, int]]]:
    """(hashed_chunks, md5_state, [(index, size)] of the stored chunks from hashed_chunks on,
    without a gap); ends the transaction, so that none stays open over the fold's file I/O."""
    rows = statements.hash_and_ready(upload, FOLD_BATCH)
    db.session.commit()
    if not rows or rows[0].hashed_chunks == DISABLED:
        return DISABLED, None, []
    start, state = rows[0].hashed_chunks, rows[0].md5_state
    ready = []
    for row in rows:
        if row.chunk_index != start + len(ready):
            break
        ready.append((row.chunk_index, row.size))
    return start, state, ready


def _drop_if_gone(store: ChunkStore, upload: Target | Upload) -> None:
    """Remove the chunk directory if the upload was deleted or completed meanwhile: a fold
    that created its lock or assembly file while the directory was being removed would
    otherwise leave it behind."""
    status = db.session.execute(
        select(Upload.status).filter_by(id=upload.id, key=upload.key)).scalar_one_or_none()
    db.session.commit()
    if status is None or status == COMPLETED:
        store.delete_chunks(upload.key)
