"""The object store's client: where the bucket is, how botocore reaches it, what its errors
mean.

The endpoint and credentials come from boto3's own sources, botocore's (AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, AWS_PROFILE, ~/.aws), so the
same settings reach AWS, SeaweedFS, MinIO, Ceph, R2 or B2. A process has one client, which
all its threads share (boto3's clients are thread-safe), made in that process on first use.
"""
import gzip
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from botocore.loaders import JSONFileLoader, Loader, create_loader

from ..errors import StorageError, StorageUnavailable
from ..objects import ProcessClient, RangeReader, SmallReads, pool_size

__all__ = ["ADDRESSING_STYLES", "BucketURL", "ProcessClient", "SmallReads",
           "check_bucket", "make_client", "s3_errors"]

ADDRESSING_STYLES = ("", "path", "virtual")
# Answers that say "try again later", as against a request or a setting that is wrong.
TRANSIENT_CODES = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout",
                   "RequestTimeTooSkewed", "OperationAborted", "503", "500"}
MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403",
                    "InvalidToken", "ExpiredToken"}


@dataclass(frozen=True)
class BucketURL:
    """s3://BUCKET/PREFIX: the bucket, and the prefix every object name starts with."""

    bucket: str
    prefix: str  # "" or ending in "/"

    @classmethod
    def parse(cls, url: str) -> "BucketURL":
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"not an s3://BUCKET/PREFIX URL: {url!r}")
        prefix = parts.path.strip("/")
        if any(piece in ("", ".", "..") for piece in prefix.split("/")) and prefix:
            raise ValueError(f"the prefix of {url!r} has an empty, . or .. part")
        return cls(parts.netloc, f"{prefix}/" if prefix else "")

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def make_client(addressing_style: str = "", timeout: float = 30.0, attempts: int = 3,
                connections: int | None = None):
    """An S3 client from boto3's (botocore's) standard configuration. Path-style addressing
    unless told otherwise when an endpoint of its own is configured (SeaweedFS, MinIO, Ceph
    need it)."""
    if addressing_style not in ADDRESSING_STYLES:
        raise ValueError(f"S3 addressing style must be path or virtual, not {addressing_style!r}")
    # botocore's session, as boto3's would make it (boto3 itself would cost every worker a
    # few MiB more, for nothing used here).
    session = botocore.session.get_session()
    session.register_component("data_loader", _loader(session.get_config_variable("data_path")))

    def client(style: str):
        return session.create_client("s3", config=Config(
            s3={"addressing_style": style or "auto"}, connect_timeout=timeout,
            read_timeout=timeout, retries={"mode": "standard", "max_attempts": attempts},
            max_pool_connections=connections or pool_size(),
            # Presigned URLs too (botocore presigns with SigV2 in us-east-1, which AWS no
            # longer accepts and SeaweedFS refuses with response-* overrides).
            signature_version="s3v4",
            # Third-party stores often reject the newer default checksums.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required"))

    made = client(addressing_style)
    if not addressing_style and not made.meta.endpoint_url.endswith(".amazonaws.com"):
        made = client("path")
    return made


def _loader(data_path: str | None) -> Loader:
    """The process's loader of botocore's models, which keeps what it read: a client made
    again (an app made again in one process, as tests make them) does not parse the S3
    model anew (0.2 s). The models are the same whatever the settings; credentials and
    endpoints are each session's own."""
    with _loading:
        loader = _loaders.get(data_path)
        if loader is None:
            loader = _loaders[data_path] = create_loader(data_path)
            loader.file_loader = PlainJSON()
        return loader


_loaders: dict[str | None, Loader] = {}
_loading = threading.Lock()


class PlainJSON(JSONFileLoader):
    """botocore's model files read into plain dicts, which keep their order as botocore's
    OrderedDicts do in two thirds of the memory: the S3 model and the endpoint tables a
    client keeps are some 12 MiB of OrderedDicts in every process, 8 as dicts."""

    def load_file(self, file_path: str):
        for extension, opener in ((".json", open), (".json.gz", gzip.open)):
            if os.path.isfile(file_path + extension):
                with opener(file_path + extension, "rb") as f:
                    return json.loads(f.read())
        return None


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_missing(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and error_code(exc) in MISSING_CODES


@contextmanager
def s3_errors(what: str) -> Iterator[None]:
    """The client's failures as the store's errors: StorageUnavailable for what may pass
    (unreachable, timed out, busy), StorageError for the rest."""
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if code in TRANSIENT_CODES or status >= 500:
            raise StorageUnavailable(f"object store unavailable ({what}: {code})") from exc
        raise StorageError(f"object store refused {what}: {code}") from exc
    except NoCredentialsError as exc:
        raise StorageError(f"object store: {exc}") from exc
    except BotoCoreError as exc:
        raise StorageUnavailable(f"object store unreachable ({what}: {exc})") from exc


def check_bucket(client, url: BucketURL) -> None:
    """Fail now, in one clear sentence, when the bucket cannot be used."""
    where = f"{url} at {client.meta.endpoint_url}"
    try:
        client.head_bucket(Bucket=url.bucket)
    except ClientError as exc:
        code = error_code(exc)
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise StorageError(f"the bucket of {where} does not exist; create it or fix "
                               "UPLOADSVC_STORAGE_URL") from None
        if code in CREDENTIAL_CODES:
            raise StorageError(f"the object store refused the credentials for {where} "
                               f"({code}); check AWS_ACCESS_KEY_ID and "
                               "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)") from None
        raise StorageError(f"cannot use {where}: {code}") from None
    except NoCredentialsError:
        raise StorageError(f"no credentials for {where}; set AWS_ACCESS_KEY_ID and "
                           "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)") from None
    except BotoCoreError as exc:
        raise StorageError(f"cannot reach the object store for {where} ({exc}); check "
                           "AWS_ENDPOINT_URL and that the store is running") from None


def object_reader(client, bucket: str, key: str, size: int) -> RangeReader:
    """An object read as a seekable file (objects.RangeReader): one streamed GET from the
    position on, opened again with a Range after a seek."""
    def open_range(start: int, end: int) -> "_Checked":
        with s3_errors("reading a file"):
            return _Checked(client.get_object(Bucket=bucket, Key=key,
                                              Range=f"bytes={start}-{end - 1}")["Body"])

    return RangeReader(open_range, size)


class _Checked:
    """A streamed body whose failures are the store's errors."""

    def __init__(self, body) -> None:
        self.body = body

    def read(self, size: int) -> bytes:
        with s3_errors("reading a file"):
            return self.body.read(size)

    def close(self) -> None:
        self.body.close()
