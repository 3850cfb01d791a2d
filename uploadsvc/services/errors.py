"""One error hierarchy: what a client caused or can act on, each with a status, a stable
code and a message (rendered by uploadsvc.http.errors, with the store's errors)."""


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


class UploadChanged(MergeInProgress):
    message = "This upload changed meanwhile; retry."


class FileNotFound(UploadError):
    status = 404
    code = "file_not_found"
    message = "No such file."


class UploadUnfinished(UploadError):
    status = 409
    code = "upload_unfinished"
    message = "This upload is not finished; HEAD gives its offset, PATCH sends the rest."


class ChunkMd5Mismatch(UploadError):
    code = "chunk_md5_mismatch"
    message = "The chunk's bytes do not match its chunkMd5; nothing was stored, send it again."


class FileSizeConflict(UploadError):
    status = 409
    code = "file_size_conflict"
    message = "This upload was started with a different fileSize."


class SizeMismatch(UploadError):
    status = 422
    code = "size_mismatch"
    message = "The merged file does not have the fileSize the client gave; re-send or delete."


class UploadRefused(UploadError):
    status = 403
    code = "upload_refused"
    message = "This upload was refused."


class PreCreateUnavailable(UploadRefused):
    code = "pre_create_unavailable"
    message = ("This upload could not be checked now (its pre-create hook did not answer); "
               "retry later.")


class StorageUnavailable(UploadError):
    status = 503
    code = "storage_unavailable"
    message = "The object store cannot be reached now; try again shortly."
    headers = {"Retry-After": "5"}


class StorageFailed(UploadError):
    """The store refused a request the service made of it (a missing bucket or container,
    revoked credentials, a refusal nobody expected): nothing was recorded; the log says
    what the store answered. An operator may need to act, hence the longer wait."""
    status = 503
    code = "storage_failed"
    message = "The store failed this request; it has been logged. Try again later."
    headers = {"Retry-After": "30"}


class DatabaseUnavailable(UploadError):
    status = 503
    code = "database_unavailable"
    message = "The database cannot be reached now; try again shortly."
    headers = {"Retry-After": "5"}


class InconsistentLength(UploadError):
    code = "inconsistent_upload_length"
    message = "The upload's length values disagree (Upload-Length, the body, the recorded one)."


class UploadCompleted(UploadError):
    code = "completed_upload"
    message = "This upload is already complete; it takes no more bytes."


class UploadSuperseded(UploadError):
    status = 409
    code = "upload_superseded"
    message = "A newer request on this upload ended this one; ask its offset with HEAD."


class UploadBusy(UploadError):
    status = 503
    code = "upload_busy"
    message = "An earlier request on this upload has not ended yet; retry in a moment."
    headers = {"Retry-After": "2"}
