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

from sqlalchemy import select, update

from . import md5state
from .extensions import db
from .models import COMPLETED, Chunk, Upload
from .storage import ChunkStore, Merged, StorageError

log = logging.getLogger(__name__)

DISABLED = -1
# Chunks folded per transaction: bounds the time between progress saves.
FOLD_BATCH = 32


def forget(upload: Upload) -> None:
    """Stop hashing this upload incrementally (in the caller's transaction)."""
    db.session.execute(update(Upload).filter_by(id=upload.id, key=upload.key)
                       .values(hashed_chunks=DISABLED, md5_state=None))


def is_next(upload: Upload, index: int) -> bool:
    """Whether this just-recorded chunk is the one the hash needs next."""
    hashed = db.session.execute(
        select(Upload.hashed_chunks).filter_by(id=upload.id, key=upload.key)).scalar_one_or_none()
    db.session.commit()
    return md5state.AVAILABLE and hashed == index


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
                if not held:
                    return  # the holder folds our chunk too: it looks again after letting go
                _fold_ready(store, upload)
            if not _next_is_stored(upload):
                return
    finally:
        _drop_if_gone(store, upload)


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
    row = db.session.execute(
        select(Upload.hashed_chunks, Upload.md5_state).filter_by(id=upload.id, key=upload.key)
    ).one_or_none()
    if row is None or row.hashed_chunks == DISABLED:
        db.session.commit()
        return
    start, state = row
    ready = _ready_from(upload, start)
    while ready:
        try:
            state = store.fold(upload.key, state, ready)
        except (StorageError, OSError, ValueError) as exc:
            log.warning("upload %s: incremental hashing stopped (%s)", upload.key, exc)
            forget(upload)
            db.session.commit()
            return
        saved = db.session.execute(
            update(Upload).filter_by(id=upload.id, key=upload.key, hashed_chunks=start)
            .values(hashed_chunks=start + len(ready), md5_state=state)
        ).rowcount
        if not saved:  # turned off meanwhile
            db.session.commit()
            return
        start += len(ready)
        ready = _ready_from(upload, start)


def _ready_from(upload: Target | Upload, start: int) -> list[tuple[int, int]]:
    """(index, size) of the stored chunks start, start+1, ... without a gap; ends the
    transaction, so that none stays open over the fold's file I/O."""
    stored = db.session.execute(
        select(Chunk.chunk_index, Chunk.size).filter_by(upload_id=upload.id)
        .where(Chunk.chunk_index >= start).order_by(Chunk.chunk_index).limit(FOLD_BATCH)
    ).all()
    db.session.commit()
    ready = []
    for index, size in stored:
        if index != start + len(ready):
            break
        ready.append((index, size))
    return ready


def _drop_if_gone(store: ChunkStore, upload: Target | Upload) -> None:
    """Remove the chunk directory if the upload was deleted or completed meanwhile: a fold
    that created its lock or assembly file while the directory was being removed would
    otherwise leave it behind."""
    status = db.session.execute(
        select(Upload.status).filter_by(id=upload.id, key=upload.key)).scalar_one_or_none()
    db.session.commit()
    if status is None or status == COMPLETED:
        store.delete_chunks(upload.key)


def _next_is_stored(upload: Target | Upload) -> bool:
    """Whether the chunk the hash needs next is stored (it may have come while we held it)."""
    found = db.session.execute(
        select(Chunk.id).join(Upload, Upload.id == Chunk.upload_id)
        .where(Upload.id == upload.id, Upload.key == upload.key,
               Chunk.chunk_index == Upload.hashed_chunks)
    ).first()
    db.session.commit()
    return found is not None
