"""The Google Cloud Storage backend: bytes in a bucket (store), its client and errors
(client), its names and segments (layout), chunks as objects (chunks), and the composing of
objects into one (compose)."""
from ..errors import StorageError
from ..objects import ProcessClient
from .client import BucketURL, Client, check_bucket
from .store import GCSStore

__all__ = ["GCSStore", "open_bucket"]


def open_bucket(storage_url: str, data_dir: str, timeout: float = 30.0,
                orphan_age: float | None = None) -> GCSStore:
    """The store in the bucket a gs://BUCKET/PREFIX URL names, checked now (StorageError
    if it cannot be used)."""
    try:
        url = BucketURL.parse(storage_url)
        client = ProcessClient(lambda: Client(url.bucket, timeout))
        check = client()
    except ValueError as exc:
        raise StorageError(f"{exc} (UPLOADSVC_STORAGE_URL)") from None
    check_bucket(check, url)
    options = {} if orphan_age is None else {"orphan_age": float(orphan_age)}
    return GCSStore(client, url, data_dir, **options)
