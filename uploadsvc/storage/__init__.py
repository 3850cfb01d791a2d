"""Upload bytes: the storage interface (base), its errors, its backends and their locks.

Nothing outside this package knows whether bytes live in files or objects; the local-disk
backend is LocalStore, the object store backends S3Store, AzureStore and GCSStore.
"""
from collections.abc import Iterator
from contextlib import contextmanager

from .base import UPLOAD_KEY, Download, Locker, Sealed, Store, Written
from .capabilities import (
    ChunkFiles,
    Concatenation,
    FileListing,
    FileServer,
    Presigner,
    StreamedChunks,
)
from .errors import (
    FileGone,
    LeaseLost,
    LockBusy,
    NameTaken,
    PartTooLarge,
    StorageError,
    StorageFull,
    StorageUnavailable,
    UploadGone,
)
from .local import LocalStore
from .spool import md5_of, stream_size

__all__ = ["UPLOAD_KEY", "AzureStore", "ChunkFiles", "Concatenation", "Download", "FileGone",
           "FileListing", "FileServer", "GCSStore", "LeaseLost", "LocalStore", "LockBusy",
           "Locker", "NameTaken", "PartTooLarge", "Presigner", "S3Store", "Sealed",
           "StorageError", "StorageFull", "StorageUnavailable", "Store", "StreamedChunks",
           "UploadGone", "Written", "md5_of", "stream_size"]


def open_store(data_dir: str, fsync: bool | str = True, storage_url: str | None = None,
               addressing_style: str = "", timeout: float = 30.0,
               part_size: int | None = None, equal_parts: bool = False,
               orphan_age: float | None = None, max_parts: int | None = None) -> Store:
    """The store the configuration names: the local data directory, or with an
    s3://BUCKET/PREFIX, azure://CONTAINER/PREFIX or gs://BUCKET/PREFIX URL that bucket or
    container (checked now: StorageError if it cannot be used)."""
    if not storage_url:
        return LocalStore(data_dir, fsync=fsync)
    # Each SDK costs every worker memory: imported only when its store is used.
    if storage_url.startswith("azure://"):
        with _sdk("azure-storage-blob", "azure"):
            from .azure import open_container

        return open_container(storage_url, data_dir, timeout=timeout, orphan_age=orphan_age)
    if storage_url.startswith("gs://"):
        with _sdk("google-cloud-storage", "gcs"):
            from .gcs import open_bucket as open_gcs_bucket

        return open_gcs_bucket(storage_url, data_dir, timeout=timeout, orphan_age=orphan_age)
    from .s3 import open_bucket

    return open_bucket(storage_url, data_dir, addressing_style=addressing_style,
                       timeout=timeout, part_size=part_size, equal_parts=equal_parts,
                       orphan_age=orphan_age, max_parts=max_parts)


@contextmanager
def _sdk(package: str, extra: str) -> Iterator[None]:
    """An SDK that is not installed is a StorageError of one line: how to install it."""
    try:
        yield
    except ModuleNotFoundError as exc:
        raise StorageError(f"{package} is not installed ({exc.name}); install it with "
                           f"`pip install 'uploadsvc[{extra}]'`") from None


def __getattr__(name: str):
    # Each SDK is imported only where its store is used: it costs every worker memory.
    if name == "S3Store":
        from .s3 import S3Store
        return S3Store
    if name == "AzureStore":
        from .azure import AzureStore
        return AzureStore
    if name == "GCSStore":
        from .gcs import GCSStore
        return GCSStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
