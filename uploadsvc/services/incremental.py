"""Service steps of incremental hashing: fold chunks into the upload's MD5 as they arrive.

Chunks are written in place into the upload's data file (see assembly.py). When the chunk
that the hash needs next is stored, it and every stored chunk after it are hashed where they
lie; the MD5 state and the count of folded chunks go in the upload's row. Completing an
upload whose chunks came in order then only finishes the digest and places the data file.

Correctness under concurrency: folding happens under the store's hash lock (one folder at a
time; a request that finds it busy leaves its chunk to the holder, who looks again after
letting go). It runs after the chunk's answer is sent, so it does not hold the upload's lock;
completing takes the exclusive lock (no new chunks), then the hash lock, folds what is left
and seals the file while holding both. A fold whose chunk directory is deleted under it just
stops. The row is updated only if hashed_chunks is still what the fold started from. Bytes
in place never change once recorded; a fold stops before a chunk kept in a chunk file of its
own (a re-send, or the last chunk sent first), and a chunk recorded a second time sets
hashed_chunks to -1, so that completion hashes that upload in one pass.
"""
import logging
from typing import NamedTuple

from sqlalchemy import select

from ..core.extensions import db
from ..core.models import COMPLETED, Upload
from ..storage import md5state
from ..storage.local import ChunkStore, Merged, StorageError
from ..storage.md5state import Md5State
from . import statements

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
                stopped = held and not _fold_ready(store, upload)
            # A chunk that came while we held the lock found it busy and left itself to us.
            found = statements.status_and_next(upload)
            db.session.commit()
            if found is None or found.status == COMPLETED:
                break  # deleted or completed meanwhile: see below
            if not held or not found[1] or stopped:
                return  # a busy lock: its holder folds our chunk too and looks again after
    except BaseException:
        _drop_if_gone(store, upload)
        raise
    # A fold that created its lock or assembly file while the directory was being removed
    # would otherwise leave it behind.
    store.delete_chunks(upload.key)


def sealed(store: ChunkStore, upload: Upload, size: int, wait: float) -> Merged:
    """The upload's file, every chunk in place and hashed, linked into temp/ to be placed.

    The caller holds the upload's exclusive lock, so no chunk arrives meanwhile; holding the
    hash lock too, no fold runs. Chunk files are copied into place first; the saved MD5 state
    is used unless one of them overrides bytes it hashed, then the whole file is hashed.
    """
    with store.hash_lock(upload.key, wait) as held:
        if held and md5state.AVAILABLE:
            _fold_ready(store, upload)
        row = db.session.execute(
            select(Upload.hashed_chunks, Upload.md5_state).filter_by(id=upload.id,
                                                                     key=upload.key)).one()
        db.session.commit()
        placed = store.place_chunk_files(upload.key, upload.chunk_size)
        trusted = (held and md5state.AVAILABLE and row.hashed_chunks != DISABLED
                   and not (placed and placed[0] < row.hashed_chunks))
        if placed and not trusted:  # the saved state speaks of bytes replaced in place
            forget(upload)
            db.session.commit()
        merged = store.seal(upload.key, size, saved=row.md5_state if trusted else None)
        if trusted and merged.md5 != upload.md5:  # a mismatch is decided by a single pass
            store.discard(merged)
            merged = store.seal(upload.key, size)
        store.drop_chunk_files(upload.key, placed)
        return merged


def _fold_ready(store: ChunkStore, upload: Target | Upload) -> bool:
    """Fold the chunks that are ready; False if it stopped before a chunk that is not in
    place (completion folds on from there) or hashing failed."""
    start, state, ready = _ready(upload)
    while ready:
        batch = len(ready)
        in_files = store.chunk_files(upload.key, [index for index, _ in ready])
        ready = [chunk for chunk in ready if not in_files or chunk[0] < in_files[0]]
        if not ready:
            return False  # completion puts that chunk in place and hashes on from there
        end = Md5State(state).length + sum(size for _, size in ready)
        try:
            state = store.hash_data(upload.key, state, end)
        except (StorageError, OSError, ValueError) as exc:
            log.warning("upload %s: incremental hashing stopped (%s)", upload.key, exc)
            forget(upload)
            db.session.commit()
            return False
        if not statements.save_hash(upload, start, start + len(ready), state):
            db.session.commit()  # turned off meanwhile
            return False
        db.session.commit()
        if len(ready) < batch:
            return False
        if batch < FOLD_BATCH:
            return True  # advance() looks for chunks that came meanwhile
        start, state, ready = _ready(upload)
    return True


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
