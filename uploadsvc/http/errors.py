"""One JSON shape for every error the service answers: the services' own errors, werkzeug's,
and the store's, which are turned into answers here and nowhere else."""
import errno
import logging

from flask import Flask, g, has_request_context, json, request
from sqlalchemy import exc as sql
from werkzeug.exceptions import HTTPException

from ..core.extensions import db
from ..services.errors import (
    ChunkTooLarge,
    DatabaseUnavailable,
    FileNotFound,
    InsufficientStorage,
    MergeInProgress,
    StorageFailed,
    StorageUnavailable,
    UploadBusy,
    UploadChanged,
    UploadError,
    UploadLocked,
)
from ..storage import (
    FileGone,
    LockBusy,
    PartTooLarge,
    StorageError,
    StorageFull,
    UploadGone,
)
from ..storage import StorageUnavailable as StoreUnreachable
from .resumable_fields import error_answer

log = logging.getLogger(__name__)

# The store's errors as answers. A lock held too long means a merge or delete is running on
# /api (409), and a locked upload on tus (423, as tus servers answer). Any other failure of
# the store is a part of the service failing: 503, never a 500.
STORAGE_ERRORS: dict[type[StorageError], type[UploadError]] = {
    StorageError: StorageFailed,
    StorageFull: InsufficientStorage,
    PartTooLarge: ChunkTooLarge,
    LockBusy: MergeInProgress,
    UploadGone: UploadChanged,
    FileGone: FileNotFound,
    StoreUnreachable: StorageUnavailable,
}
TUS_STORAGE_ERRORS: dict[type[StorageError], type[UploadError]] = {LockBusy: UploadLocked}
# A request of the IETF draft waits for an earlier one to end; one that did not is on a
# host that stopped answering: 503, which draft clients retry (they give up on a 4xx).
DRAFT_STORAGE_ERRORS: dict[type[StorageError], type[UploadError]] = {LockBusy: UploadBusy}
# The database's failures that pass (unreachable, gone away, a lock or a pooled connection
# not had in time), as against a statement that is wrong: 503, not 500.
DATABASE_UNAVAILABLE = (sql.OperationalError, sql.InterfaceError, sql.DisconnectionError,
                        sql.TimeoutError)


def error_response(status: int, code: str, message: str, headers=None, **extra):
    if has_request_context() and g.get("interop"):  # the IETF draft's own shape
        return error_answer(status, code, message, dict(headers or {}), extra)
    body = {"success": False, "error": code, "message": message, **extra}
    return json.dumps(body), status, {"Content-Type": "application/json", **dict(headers or {})}


def answer_for(exc: StorageError, blueprint: str | None) -> UploadError:
    """The answer to a storage error raised while serving this blueprint."""
    table = {**STORAGE_ERRORS, **(TUS_STORAGE_ERRORS if blueprint == "tus" else {}),
             **(DRAFT_STORAGE_ERRORS if has_request_context() and g.get("interop") else {})}
    return next(table[kind]() for kind in type(exc).__mro__ if kind in table)


def _http_code(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "_").replace("-", "_")


def register_error_handlers(app: Flask) -> None:
    """Render every error, werkzeug's and the store's included, in the API's JSON shape."""
    _register_handlers(app)
    for kind in DATABASE_UNAVAILABLE:  # any other database error is unexpected: a 500
        app.register_error_handler(kind, database_unavailable)


def _register_handlers(app: Flask) -> None:

    @app.errorhandler(UploadError)
    def upload_error(exc: UploadError):
        return error_response(exc.status, exc.code, exc.message, exc.headers, **exc.extra)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        # Allow (405) and Content-Range (416) tell the client what would work; Retry-After
        # (429) when, and WWW-Authenticate (401) how.
        kept = ("allow", "content-range", "retry-after", "www-authenticate")
        headers = [(k, v) for k, v in exc.get_response().headers if k.lower() in kept]
        return error_response(exc.code or 500, _http_code(exc), exc.description, headers)

    @app.errorhandler(StorageError)
    def storage_error(exc: StorageError):
        db.session.rollback()
        answer = answer_for(exc, request.blueprint)
        if isinstance(exc, StorageFull):
            log.error("disk full: %s", exc)
        elif isinstance(exc, StoreUnreachable):
            log.error("%s", exc)
        elif isinstance(answer, StorageFailed):  # unforeseen: where, for whoever fixes it
            log.error("the store failed: %s", exc, exc_info=exc)
        return upload_error(answer)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        _rollback()
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return storage_error(StorageFull(str(exc)))
        log.exception("unhandled error")
        message = "The server could not handle this request; it has been logged."
        if app.debug:
            message = f"{type(exc).__name__}: {exc}"
        return error_response(500, "internal_error", message)


def database_unavailable(exc: sql.SQLAlchemyError):
    """503 database_unavailable; the details (never in the answer) go to the log."""
    _rollback()
    log.error("database unavailable: %s", exc)
    answer = DatabaseUnavailable()
    return error_response(answer.status, answer.code, answer.message, answer.headers)


def _rollback() -> None:
    """End the failed transaction; with the database gone, that fails too (and the
    connection is dropped from the pool), which must not turn the answer into a 500."""
    try:
        db.session.rollback()
    except sql.SQLAlchemyError as exc:
        log.warning("rollback after a failed request: %s", exc)
