"""The object store backend: bytes in an S3-compatible bucket (store), its client and
errors (client), its keys (layout), chunks as objects (chunks), request bodies sent as parts
(body), the plan and the joining of parts into one object (plan, join), and the local
spool files it keeps meanwhile (temps)."""
from ..errors import StorageError
from .client import BucketURL, ProcessClient, check_bucket, make_client
from .plan import MAX_COPY, MAX_PARTS, MIN_PART
from .store import S3Store

__all__ = ["S3Store", "open_bucket"]


def open_bucket(storage_url: str, data_dir: str, addressing_style: str = "",
                timeout: float = 30.0, part_size: int | None = None, equal_parts: bool = False,
                orphan_age: float | None = None, max_parts: int | None = None) -> S3Store:
    """The store in the bucket an s3://BUCKET/PREFIX URL names, checked now (StorageError
    if it cannot be used)."""
    # One client per process, made here for the check and again in any process forked
    # after (a gunicorn worker of an app made before the fork).
    client = ProcessClient(lambda: make_client(addressing_style, timeout))
    try:
        url = BucketURL.parse(storage_url)
        check = client()
    except ValueError as exc:
        raise StorageError(f"{exc} (UPLOADSVC_STORAGE_URL, UPLOADSVC_S3_ADDRESSING_STYLE)") \
            from None
    check_bucket(check, url)
    options: dict = {"equal_parts": bool(equal_parts)}
    if part_size:
        options["part_size"] = min(max(int(part_size), MIN_PART), MAX_COPY)
    if orphan_age is not None:
        options["orphan_age"] = float(orphan_age)
    if max_parts:
        options["max_parts"] = min(max(int(max_parts), 2), MAX_PARTS)
    return S3Store(client, url, data_dir, **options)
