"""The app's store, its capabilities and its locks, as the services reach them."""
from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app

from ..core.database import end_reads
from ..core.extensions import db
from ..storage import ChunkFiles, Store, StreamedChunks

# The lock a hasher holds while it hashes an upload's bytes: "<key>.hash".
HASHING = "hash"


def store() -> Store:
    return current_app.extensions["store"]


def chunk_files() -> ChunkFiles:
    """The store's chunk capability, which chunked (/api) uploads need."""
    found = store()
    if not isinstance(found, ChunkFiles):
        raise RuntimeError(f"{type(found).__name__} cannot store chunked uploads")
    return found


def streamed_chunks() -> StreamedChunks | None:
    """The store's capability of writing a chunk in place as it arrives, if it has it."""
    found = store()
    return found if isinstance(found, StreamedChunks) else None


def lock_wait() -> float:
    return float(current_app.config["LOCK_WAIT_SECONDS"])


def joins_transaction() -> bool:
    """Whether an upload's lock is taken in the transaction that read its row (the
    database's leases): the read that precedes it then locks the row (FOR UPDATE) and leaves
    the transaction open for holding(..., read_in=)."""
    return store().locker.joins_transaction


def transaction():
    """The session's transaction now, for holding(..., read_in=)."""
    return db.session().get_transaction()


@contextmanager
def holding(key: str, exclusive: bool, chunk: int | None = None,
            read_in=None) -> Iterator[bool]:
    """Hold an upload's lock, shared for writes of chunks (naming the chunk, whose claim is
    then decided with the hold), exclusive for everything that changes the upload as a
    whole; LockBusy after LOCK_WAIT_SECONDS. The transaction is ended first where it holds
    anything: never wait for a lock inside one (on SQLite it is a write lock).

    `read_in`: the transaction (transaction()) in which the caller read the upload under a
    row lock. If it is still open and the locker joins it, the hold is taken in it, and
    holding yields True: that read still stands. Otherwise it yields False: read again."""
    locker = store().locker
    if read_in is not None and locker.joins_transaction and transaction() is read_in:
        with locker.hold_joined(key, exclusive, lock_wait(), chunk) as kept:
            yield kept
        return
    end_reads()
    with locker.hold(key, exclusive, lock_wait(), chunk):
        yield False


def hashing_lock(key: str, wait: float = 0.0):
    """Try to hold the upload's hashing lock for at most `wait` seconds; yields whether."""
    return store().locker.try_hold(f"{key}.{HASHING}", wait)
