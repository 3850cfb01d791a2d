"""The GCS backend's client: where the bucket is, how google-cloud-storage reaches it, what
its errors mean.

The credentials come from Google's own sources (GOOGLE_APPLICATION_CREDENTIALS, the
metadata server, gcloud's application default credentials), the project from them or
GOOGLE_CLOUD_PROJECT, and STORAGE_EMULATOR_HOST points the client at an emulator (with no
credentials). A process has one client, which all its threads share (objects.ProcessClient).
"""
import datetime
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import quote, urlencode, urlsplit

import google.auth.exceptions
import requests
from google.api_core import exceptions as api
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY
from google.oauth2 import service_account
from google.resumable_media.common import InvalidResponse

from ..errors import FileGone, NameTaken, StorageError, StorageUnavailable
from ..objects import pool_size

# GCS's rule for bucket names (without dots, which name domains).
BUCKET = re.compile(r"[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]")
TRANSIENT = (api.TooManyRequests, api.InternalServerError, api.BadGateway,
             api.ServiceUnavailable, api.GatewayTimeout, api.RequestRangeNotSatisfiable)
SETTINGS = ("GOOGLE_APPLICATION_CREDENTIALS (or application default credentials) and "
            "GOOGLE_CLOUD_PROJECT")


@dataclass(frozen=True)
class BucketURL:
    """gs://BUCKET/PREFIX: the bucket, and the prefix every object name starts with."""

    bucket: str
    prefix: str  # "" or ending in "/"

    @classmethod
    def parse(cls, url: str) -> "BucketURL":
        parts = urlsplit(url)
        if parts.scheme != "gs" or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"not a gs://BUCKET/PREFIX URL: {url!r}")
        if not BUCKET.fullmatch(parts.netloc):
            raise ValueError(f"{parts.netloc!r} is not a GCS bucket name")
        prefix = parts.path.strip("/")
        if prefix and any(piece in ("", ".", "..") for piece in prefix.split("/")):
            raise ValueError(f"the prefix of {url!r} has an empty, . or .. part")
        return cls(parts.netloc, f"{prefix}/" if prefix else "")

    def __str__(self) -> str:
        return f"gs://{self.bucket}/{self.prefix}"


class Client:
    """A google-cloud-storage client and its bucket, with the timeout of every request."""

    def __init__(self, bucket: str, timeout: float = 30.0) -> None:
        project = os.environ.get("GOOGLE_CLOUD_PROJECT") or None
        if os.environ.get("STORAGE_EMULATOR_HOST") and not project:
            project = "emulator"
        try:
            self.client = storage.Client(project=project)
        except google.auth.exceptions.DefaultCredentialsError:
            raise ValueError(f"no Google credentials found; set {SETTINGS}") from None
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=pool_size())
        self.client._http.mount("http://", adapter)
        self.client._http.mount("https://", adapter)
        # On every 404 (a copy aside that is not there, removed) the client would check in a
        # thread of its own that the bucket still exists: a request more, for a cache of its
        # tracing; the bucket was checked at start.
        cache = getattr(self.client, "_bucket_metadata_cache", None)
        if cache is not None:
            cache.check_and_evict = lambda bucket_name: None
        self.bucket = self.client.bucket(bucket)
        self.timeout = timeout
        # Every request waits at most timeout for an answer, and retries what may pass
        # for at most three times that in all (the client's own default retries for two
        # minutes): a store that stopped answering is a 503 soon.
        self.options = {"timeout": timeout, "retry": DEFAULT_RETRY.with_timeout(3 * timeout)}

    def blob(self, name: str):
        return self.bucket.blob(name)

    def signed_url(self, name: str, seconds: int, content_type: str, disposition: str) -> str:
        """A V4 signed URL that GETs the object, signed here with a service account's key:
        the client's own credentials', or with an emulator (whose client has none) the key
        file GOOGLE_APPLICATION_CREDENTIALS names; the URL then leads to the emulator."""
        options: dict = {}
        emulator = os.environ.get("STORAGE_EMULATOR_HOST")
        if emulator:
            options["api_access_endpoint"] = emulator.rstrip("/")
            key_file = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
            if key_file:
                options["credentials"] = service_account.Credentials.from_service_account_file(
                    key_file)
        return self.blob(name).generate_signed_url(
            version="v4", expiration=datetime.timedelta(seconds=seconds), method="GET",
            response_type=content_type, response_disposition=disposition, **options)

    def media_url(self, name: str) -> str:
        """Where an object's bytes are read (ranged GETs, streamed)."""
        base = self.client._connection.API_BASE_URL
        return (f"{base}/download/storage/v1/b/{self.bucket.name}/o/"
                f"{quote(name, safe='')}?alt=media")

    def put(self, name: str, src: BinaryIO, size: int, exclusive: bool = False) -> None:
        """Store size bytes of src (from its position) as the object name, streamed in one
        request (a media upload): the client's own uploads hold the whole object in memory
        (up to 8 MiB) or a piece of 100 MiB. With exclusive, only if no object has that name
        (ifGenerationMatch=0, else NameTaken)."""
        if not size:  # nothing to hold (and a media upload of nothing trips some emulators)
            with gcs_errors("storing bytes"):
                try:
                    self.blob(name).upload_from_string(
                        b"", **self.options, **({"if_generation_match": 0} if exclusive else {}))
                except api.PreconditionFailed:
                    raise NameTaken(name) from None
            return
        params = {"uploadType": "media", "name": name}
        if exclusive:
            params["ifGenerationMatch"] = "0"
        base = self.client._connection.API_BASE_URL
        with gcs_errors("storing bytes"):
            answer = self.client._http.post(
                f"{base}/upload/storage/v1/b/{self.bucket.name}/o?{urlencode(params)}",
                data=Limited(src, size), timeout=self.timeout,
                headers={"Content-Type": "application/octet-stream",
                         "Content-Length": str(size)})
        answer.close()
        if answer.status_code == 412:
            raise NameTaken(name)
        if not 200 <= answer.status_code < 300:
            error = StorageUnavailable if answer.status_code >= 500 or \
                answer.status_code == 429 else StorageError
            raise error(f"object store answered {answer.status_code} storing bytes")

    def open_range(self, name: str, start: int, end: int):
        """The bytes [start, end) of an object as a stream (one GET with Range)."""
        with gcs_errors("reading bytes"):
            answer = self.client._http.get(self.media_url(name), stream=True,
                                           timeout=self.timeout,
                                           headers={"Range": f"bytes={start}-{end - 1}"})
        if answer.status_code == 404:
            answer.close()
            raise FileGone(name)
        if answer.status_code not in (200, 206):
            answer.close()
            error = StorageUnavailable if answer.status_code >= 500 else StorageError
            raise error(f"object store answered {answer.status_code} reading bytes")
        return Stream(answer)


class Limited:
    """The next size bytes of a file, read as a request body (its length known)."""

    def __init__(self, src: BinaryIO, size: int) -> None:
        self.src, self.left = src, size

    def __len__(self) -> int:
        return self.left

    def read(self, most: int = -1) -> bytes:
        most = self.left if most is None or most < 0 else min(most, self.left)
        data = self.src.read(most) if most else b""
        self.left -= len(data)
        return data


class Stream:
    """A streamed answer read as a file, its failures the store's errors."""

    def __init__(self, answer) -> None:
        self.answer = answer

    def read(self, size: int) -> bytes:
        with gcs_errors("reading bytes"):
            return self.answer.raw.read(size)

    def close(self) -> None:
        self.answer.close()


@contextmanager
def gcs_errors(what: str) -> Iterator[None]:
    """The client's failures as the store's errors: StorageUnavailable for what may pass
    (unreachable, timed out, busy), StorageError for the rest."""
    try:
        yield
    except TRANSIENT as exc:
        raise StorageUnavailable(f"object store unavailable ({what}: {exc.code})") from exc
    except api.RetryError as exc:  # retried what may pass until the time ran out
        raise StorageUnavailable(f"object store unreachable ({what})") from exc
    except api.GoogleAPICallError as exc:
        raise StorageError(f"object store refused {what}: {exc.code}") from exc
    except InvalidResponse as exc:
        status = getattr(exc.response, "status_code", 0) or 0
        error = StorageUnavailable if status >= 500 or status == 429 else StorageError
        raise error(f"object store answered {status} ({what})") from exc
    except (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError) as exc:
        raise StorageUnavailable(f"object store unreachable ({what})") from exc
    except google.auth.exceptions.GoogleAuthError as exc:
        raise StorageError(f"Google refused the credentials ({what})") from exc


def check_bucket(client: Client, url: BucketURL) -> None:
    """Fail now, in one clear sentence, when the bucket cannot be used."""
    where = f"{url} at {client.client._connection.API_BASE_URL}"
    try:
        client.bucket.reload(**client.options)
    except api.NotFound:
        raise StorageError(f"the bucket of {where} does not exist; create it or fix "
                           "UPLOADSVC_STORAGE_URL") from None
    except (api.Forbidden, api.Unauthorized, google.auth.exceptions.GoogleAuthError):
        raise StorageError(f"Google refused the credentials for {where}; check "
                           f"{SETTINGS}") from None
    except api.GoogleAPICallError as exc:
        raise StorageError(f"cannot use {where}: {exc.code}") from None
    except (requests.ConnectionError, requests.Timeout, api.RetryError) as exc:
        raise StorageError(f"cannot reach GCS for {where} ({type(exc).__name__}); check "
                           "STORAGE_EMULATOR_HOST or the network, and that the store is "
                           "running") from None
