"""One error hierarchy, and one JSON shape for every error the service answers."""
import errno
import logging

from flask import Flask, json
from werkzeug.exceptions import HTTPException

from ..core.extensions import db
from ..storage.local import PartTooLarge, StorageFull

log = logging.getLogger(__name__)


class UploadError(Exception):
    """An error a client caused or can act on; rendered as ``{success, error, message}``."""

    status = 400
    code = "bad_request"
    message = "The request is not valid."
    headers: dict = {}

    def __init__(self, message: str | None = None, **extra) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.extra = extra


class InvalidInput(UploadError):
    code = "invalid_input"


class MissingChunks(UploadError):
    code = "missing_chunks"
    message = "Some chunks have not been uploaded yet."


class AuthRequired(UploadError):
    status = 401
    code = "unauthorized"
    message = "Send a valid API key as 'Authorization: Bearer <key>'."
    headers = {"WWW-Authenticate": 'Bearer realm="uploadsvc"'}


class UploadNotFound(UploadError):
    status = 404
    code = "upload_not_found"
    message = "No such upload."


class TotalChunksConflict(UploadError):
    status = 409
    code = "total_chunks_conflict"
    message = "This upload was started with a different totalChunks."


class ChunkSizeConflict(UploadError):
    status = 409
    code = "chunk_size_conflict"
    message = "Every chunk but the last must have the same size."


class MergeInProgress(UploadError):
    status = 409
    code = "merge_in_progress"
    message = "This upload is being merged right now; retry in a moment."


class FileTooLarge(UploadError):
    status = 413
    code = "file_too_large"
    message = "The file is larger than this server accepts."


class ChunkTooLarge(UploadError):
    status = 413
    code = "chunk_too_large"
    message = "The chunk is larger than this server accepts (MAX_CHUNK_SIZE)."


class TooManyUploads(UploadError):
    status = 429
    code = "too_many_uploads"
    message = "Too many unfinished uploads; complete or delete some first."


class Md5Mismatch(UploadError):
    status = 422
    code = "md5_mismatch"
    message = "The merged file does not match the given md5; re-send the chunks or delete."


class FinalUploadReadOnly(UploadError):
    status = 403
    code = "final_upload"
    message = "A final (concatenated) upload takes no more bytes."


class UploadExpired(UploadError):
    status = 410
    code = "upload_expired"
    message = "This upload has expired; start a new one."


class OffsetConflict(UploadError):
    status = 409
    code = "offset_mismatch"
    message = "Upload-Offset does not match the upload's offset; ask it with HEAD."


class TusVersionUnsupported(UploadError):
    status = 412
    code = "tus_version_unsupported"
    message = "Send Tus-Resumable: 1.0.0; this server speaks tus 1.0.0."


class UploadLocked(UploadError):
    status = 423
    code = "upload_locked"
    message = "Another request is writing to this upload; retry in a moment."


class ChecksumMismatch(UploadError):
    status = 460
    code = "checksum_mismatch"
    message = "The body does not match Upload-Checksum; it was discarded, resend it."


class InsufficientStorage(UploadError):
    status = 507
    code = "insufficient_storage"
    message = "The server is out of disk space; nothing partial was kept, retry later."


def error_response(status: int, code: str, message: str, headers=None, **extra):
    body = {"success": False, "error": code, "message": message, **extra}
    return json.dumps(body), status, {"Content-Type": "application/json", **dict(headers or {})}


def _http_code(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "_").replace("-", "_")


def register_error_handlers(app: Flask) -> None:
    """Render every error, werkzeug's included, in the API's JSON error shape."""

    @app.errorhandler(UploadError)
    def upload_error(exc: UploadError):
        return error_response(exc.status, exc.code, exc.message, exc.headers, **exc.extra)

    @app.errorhandler(PartTooLarge)
    def part_too_large(exc: PartTooLarge):
        return upload_error(ChunkTooLarge())

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        # Allow (405) and Content-Range (416) tell the client what would work; Retry-After
        # (429) when, and WWW-Authenticate (401) how.
        kept = ("allow", "content-range", "retry-after", "www-authenticate")
        headers = [(k, v) for k, v in exc.get_response().headers if k.lower() in kept]
        return error_response(exc.code or 500, _http_code(exc), exc.description, headers)

    @app.errorhandler(StorageFull)
    def storage_full(exc: StorageFull):
        db.session.rollback()
        log.error("disk full: %s", exc)
        return upload_error(InsufficientStorage())

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        db.session.rollback()
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return storage_full(StorageFull(str(exc)))
        log.exception("unhandled error")
        message = "The server could not handle this request; it has been logged."
        if app.debug:
            message = f"{type(exc).__name__}: {exc}"
        return error_response(500, "internal_error", message)
