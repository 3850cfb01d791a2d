"""Upload one file through the tus 1.0 endpoint (/files/) with tuspy.

tuspy creates the upload (POST with Upload-Length and Upload-Metadata), sends it in PATCHes of
chunk_size bytes and, given a URL storage, remembers each file's upload URL so that the next
run asks its offset (HEAD) and goes on from there.
"""
import os
from collections.abc import Callable
from pathlib import Path

from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError, TusUploadFailed
from tusclient.fingerprint.interface import Fingerprint
from tusclient.storage.filestorage import FileStorage
from tusclient.uploader import Uploader

from .chunked import Options, Result
from .files import Source
from .http import ApiError, ClientError, ServerUnreachable

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
           progress: Callable[[int], object]) -> Result:
    """Upload source through tus, resuming a stored upload URL when the server still has it."""
    storage = FileStorage(str(state_file()))
    key = f"{endpoint} {md5} {source.size} {source.name}"
    try:
        with open(source.path, "rb") as stream:
            uploader = _uploader(endpoint, stream, source, key, storage, options)
            start = uploader.offset
            progress(start)
            if not uploader.url:  # also makes a zero-byte upload, which needs no PATCH
                uploader.set_url(uploader.create_url())
                uploader.offset = 0
            while uploader.offset < source.size:
                before = uploader.offset
                uploader.upload_chunk()
                progress(uploader.offset - before)
        storage.remove_item(key)
        sent = -(-(source.size - start) // source.chunk_size)
        headers = uploader.request.response_headers if uploader.request else {}
        return Result(headers.get("upload-path") or uploader.url, md5, source.size, sent,
                      max(1, -(-source.size // source.chunk_size)))
    except (TusCommunicationError, TusUploadFailed) as exc:
        raise _error(exc, endpoint) from None
    finally:
        storage.close()


def _uploader(endpoint: str, stream, source: Source, key: str, storage: FileStorage,
              options: Options) -> Uploader:
    def make() -> Uploader:
        return Uploader(file_stream=stream, client=TusClient(endpoint),
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
        return ServerUnreachable(f"cannot reach {endpoint}: {exc}")
    body = getattr(exc, "response_content", b"") or b""
    text = body.decode("utf-8", "replace").strip()[:200] if isinstance(body, bytes) else str(body)
    return ApiError(status, "tus_error", text or str(exc), None)
