"""Upload bytes: the storage interface (base), its errors, its backends and their locks.

Nothing outside this package knows whether bytes live in files or objects; the local-disk
backend is LocalStore.
"""
from .base import (
    UPLOAD_KEY,
    ChunkFiles,
    Concatenation,
    Download,
    FileServer,
    Locker,
    Sealed,
    Store,
    Written,
)
from .errors import (
    FileGone,
    LockBusy,
    NameTaken,
    PartTooLarge,
    StorageError,
    StorageFull,
    UploadGone,
)
from .local import LocalStore
from .spool import md5_of, stream_size

__all__ = ["UPLOAD_KEY", "ChunkFiles", "Concatenation", "Download", "FileGone", "FileServer",
           "LocalStore", "LockBusy", "Locker", "NameTaken", "PartTooLarge", "Sealed",
           "StorageError", "StorageFull", "Store", "UploadGone", "Written", "md5_of",
           "stream_size"]


def open_store(data_dir: str, fsync: bool | str = True) -> Store:
    """The store the configuration names: today always the local data directory."""
    return LocalStore(data_dir, fsync=fsync)
