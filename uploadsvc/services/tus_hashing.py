"""Incremental MD5 for tus uploads: the data file is hashed as PATCHes land, each time after
the answer is sent, so that finishing an upload hashes only what its last PATCH brought.

The upload's row keeps the MD5 state of the data file's first bytes (md5_state; how many is
part of the state). Bytes below the recorded offset never change: PATCHes only append, and
only a machine crash lowers the offset, which clears the state. One folder at a time holds
the store's hash lock, and a state is saved only if the row still holds the one it started
from, so a state in the row is always the MD5 of a prefix of the finished file.
"""
import logging

from ..core.extensions import db
from ..core.models import COMPLETED, Upload
from ..storage import md5state
from ..storage.local import ChunkStore, StorageError
from ..storage.md5state import Md5State
from . import statements
from .incremental import Target

log = logging.getLogger(__name__)


def due(upload: Upload) -> Target | None:
    """What to hash after answering a PATCH, if anything: the file of an unfinished upload
    (partial uploads are hashed when concatenated)."""
    if not md5state.AVAILABLE or upload.is_completed or upload.concat is not None:
        return None
    return Target(upload.id, upload.key)


def advance(store: ChunkStore, upload: Target | Upload) -> None:
    """Hash the bytes recorded since the saved state. A busy lock is left to its holder,
    who looks at the offset again after letting go."""
    while True:
        with store.hash_lock(upload.key) as held:
            if not held:
                return
            moved = _fold(store, upload)
        if moved is None:
            # Finished or removed meanwhile: a lock file made while the directory was being
            # removed would otherwise stay behind.
            store.delete_chunks(upload.key)
            return
        if not moved:
            return


def prefix_state(store: ChunkStore, upload: Upload, wait: float) -> bytes | None:
    """The saved MD5 state of the data file's first bytes, for finishing the upload (the
    caller holds its exclusive lock, so no PATCH adds bytes); a running fold is waited
    for at most `wait` seconds, after that its result is not needed."""
    if not md5state.AVAILABLE:
        return None
    with store.hash_lock(upload.key, wait):
        row = statements.data_hash(upload)
        db.session.commit()
    if row is None or row.md5_state is None:
        return None
    return row.md5_state if Md5State(row.md5_state).length <= upload.upload_offset else None


def _fold(store: ChunkStore, upload: Target | Upload) -> bool | None:
    """One step under the hash lock: whether it hashed anything; None if the upload is
    finished or gone."""
    row = statements.data_hash(upload)
    db.session.commit()  # no transaction stays open over the hashing
    if row is None or row.status == COMPLETED:
        return None
    if not row.upload_offset:
        return False
    start = row.md5_state
    if start is not None and Md5State(start).length >= row.upload_offset:
        return False
    try:
        state = store.hash_data(upload.key, start, row.upload_offset)
    except (StorageError, OSError, ValueError) as exc:  # gone, or changed by a crash
        log.info("tus upload %s: incremental hashing stopped (%s)", upload.key, exc)
        return False
    saved = statements.save_data_hash(upload, start, state)
    db.session.commit()
    return saved
