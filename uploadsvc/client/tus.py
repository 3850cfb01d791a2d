"""Upload one file through the tus 1.0 endpoint (/files/) with tuspy.

tuspy creates the upload (POST with Upload-Length and Upload-Metadata), sends it in PATCHes of
chunk_size bytes and, given a URL storage, remembers each file's upload URL so that the next
run asks its offset (HEAD) and goes on from there.
"""
import json
import os
from collections.abc import Callable
from pathlib import Path

import requests
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError, TusUploadFailed
from tusclient.fingerprint.interface import Fingerprint
from tusclient.storage.filestorage import FileStorage
from tusclient.uploader import Uploader

from .chunked import Options, Result
from .files import Source
from .http import ApiError, ClientError, ServerUnreachable, reason

# Seconds between tuspy's attempts; it asks the offset (HEAD) again before each one.
RETRY_DELAY = 1


class KnownFingerprint(Fingerprint):
    """The storage key of a file: server, content and name, computed once by the caller."""

    def __init__(self, key: str) -> None:
        self.key = key

    def get_fingerprint(self, fs) -> str:
        return self.key


def state_file() -> Path:
    """Where upload URLs are kept between runs (XDG state directory)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    directory = Path(base) / "uploadsvc"
    directory.mkdir(parents=True, exist_ok=True)
    return directory / "tus-uploads.json"


def upload(endpoint: str, source: Source, md5: str, options: Options,
           progress: Callable[[int], object], resumed: Callable[[int], object]) -> Result:
    """Upload source through tus, resuming a stored upload URL when the server still has it."""
    storage = FileStorage(str(state_file()))
    key = f"{endpoint} {md5} {source.size} {source.name}"
    try:
        uploader = _uploader(endpoint, source, key, storage, options)
        start = uploader.offset
        resumed(start)
        if not uploader.url:  # also makes a zero-byte upload, which needs no PATCH
            uploader.set_url(uploader.create_url())
            uploader.offset = 0
        while uploader.offset < source.size:  # each PATCH reads one chunk of the file
            before = uploader.offset
            uploader.upload_chunk()
            progress(uploader.offset - before)
        headers = uploader.request.response_headers if uploader.request else {}
        if "upload-path" not in headers:  # no PATCH this run (empty, or already complete)
            headers = _state(uploader.url)
        server_md5 = headers.get("upload-md5", md5).lower()
        if server_md5 != md5:
            raise ClientError(f"the server's MD5 {server_md5} differs from the file's {md5}")
        storage.remove_item(key)
    except (TusCommunicationError, TusUploadFailed) as exc:
        raise _error(exc, endpoint) from None
    finally:
        storage.close()
    sent = -(-(source.size - start) // source.chunk_size)
    return Result(headers.get("upload-path") or uploader.url, md5, source.size, sent,
                  source.total_chunks)


def _state(url: str) -> dict:
    """The upload's headers from HEAD: Upload-Path and Upload-MD5 once it is complete."""
    try:
        response = requests.head(url, headers={"Tus-Resumable": "1.0.0"}, timeout=30)
    except requests.RequestException as exc:
        raise ServerUnreachable(f"cannot reach {url}: {reason(exc)}") from None
    if not response.ok:
        raise ApiError(response.status_code, "tus_error", response.reason, None)
    return {name.lower(): value for name, value in response.headers.items()}


def _uploader(endpoint: str, source: Source, key: str, storage: FileStorage,
              options: Options) -> Uploader:
    def make() -> Uploader:
        # A path, not an open stream: tuspy closes the stream it is given after fingerprinting.
        return Uploader(file_path=str(source.path), client=TusClient(endpoint),
                        chunk_size=source.chunk_size, metadata={"filename": source.name},
                        retries=options.retries, retry_delay=RETRY_DELAY, store_url=True,
                        url_storage=storage, fingerprinter=KnownFingerprint(key))

    try:
        return make()
    except TusCommunicationError as exc:
        if exc.status_code is None:
            raise
        # The stored URL is gone (expired, deleted, another server): start a new upload.
        storage.remove_item(key)
        return make()


def _error(exc: TusCommunicationError, endpoint: str) -> ClientError:
    status = getattr(exc, "status_code", None)
    if status is None:
        return ServerUnreachable(f"cannot reach {endpoint}: {reason(exc)}")
    content = getattr(exc, "response_content", b"") or b""
    try:  # the server answers errors in the API's JSON shape
        body = json.loads(content)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"message": content.decode("utf-8", "replace").strip()[:200] or str(exc)}
    return ApiError(status, body.get("error", "tus_error"), body.get("message", ""), body)
