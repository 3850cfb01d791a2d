"""The IETF resumable upload draft ("Resumable Uploads for HTTP") on the tus endpoint:
thin views over services.resumable, chosen per request by Upload-Draft-Interop-Version.

The tus blueprint hands a request here when it carries a served interop version and no
Tus-Resumable (tus 1.0 wins). The versions differ in a few answers only, decided below
against `g.interop`; docs/resumable.md has the table of requests and answers per version.
"""
from flask import g, make_response, request
from werkzeug.exceptions import MethodNotAllowed, UnsupportedMediaType
from werkzeug.http import parse_options_header

from ..core.models import Upload
from ..services.errors import InvalidInput, UploadCompleted, UploadExpired, UploadNotFound
from ..services.resumable import appends, uploads
from . import tus_headers
from .followups import after_response
from .locations import location
from .resumable_fields import (
    PARTIAL_UPLOAD,
    VERSION_HEADER,
    VERSIONS,
    announce,
    boolean,
    digests,
    flag,
    interop_version,
    limits,
    repr_digest,
    wants_sha256,
)

__all__ = ["VERSIONS", "VERSION_HEADER", "dispatch", "interop_version"]

# Upload-Metadata keys (tus's, which tus-js-client sends on the draft too) made from the
# creation's representation metadata when it sends none.
NAME_KEY, TYPE_KEY = "filename", "filetype"


def dispatch(version: int):
    """Answer a request of the draft at the tus endpoint's URL it was routed to."""
    g.interop = version
    endpoint = request.endpoint.rpartition(".")[2]
    method = request.method
    if method == "OPTIONS":
        return options()
    if endpoint == "uploads" and method == "POST":
        return create()
    views = {"HEAD": offset, "PATCH": patch, "DELETE": cancel}
    if version >= 9:
        views["GET"] = offset
    if endpoint == "upload" and method in views:
        try:
            return views[method](request.view_args["key"])
        except UploadExpired:  # an inactive upload resource is a 404 to the draft
            raise UploadNotFound(UploadExpired.message) from None
    if endpoint == "upload" and method == "GET":
        return None  # before interop 9, GET is the finished file's, as for tus
    raise MethodNotAllowed(["OPTIONS", "POST"] if endpoint == "uploads"
                           else ["OPTIONS", "HEAD", "PATCH", "DELETE"])


def options():
    """The limits of uploads made here (Upload-Limit), and the media type of appends."""
    return "", 204, {"Upload-Limit": limits(), "Accept-Patch": PARTIAL_UPLOAD}


def create():
    """Upload creation: optimistic (?1, the whole file) or careful (?0, a first part or
    nothing); a 104 with the upload's URL goes out before the body is read."""
    complete = boolean("Upload-Complete")
    if complete is None:
        raise InvalidInput("Upload creation needs Upload-Complete: ?0 or ?1.")
    if "Upload-Offset" in request.headers:
        raise InvalidInput("Upload creation takes no Upload-Offset.")
    length = tus_headers.integer(request.headers, "Upload-Length")
    metadata = _metadata()
    name = tus_headers.file_name(tus_headers.metadata(metadata))
    environ = request.environ

    def interim(upload: Upload) -> None:
        if request.content_length == 0:  # the final answer follows at once: no 104 needed
            return                       # (and clients such as Python's need none)
        announce(environ, {VERSION_HEADER: str(g.interop), "Location": location(upload),
                           "Upload-Limit": limits(upload)})

    outcome = appends.start(length, name, metadata, _body(complete),
                            digests("Repr-Digest"), interim, _cut(environ))
    headers = {"Location": location(outcome.value), **_state(outcome.value)}
    return after_response(make_response(("", 201, headers)), outcome.later)


def offset(key: str):
    """Offset retrieval (HEAD; GET from interop 9), once any earlier request on the upload
    has ended."""
    if g.interop == 6 and any(name in request.headers for name in
                              ("Upload-Offset", "Upload-Complete", "Upload-Length")):
        raise InvalidInput("Offset retrieval takes no Upload-Offset, -Complete or -Length.")
    upload = uploads.offset(key)
    return "", 204, {**_state(upload), "Cache-Control": "no-store"}


def patch(key: str):
    """Upload append: the body at Upload-Offset, completing the upload with ?1."""
    if request.mimetype != PARTIAL_UPLOAD:
        raise UnsupportedMediaType(f"Send the bytes as {PARTIAL_UPLOAD}.")
    at = tus_headers.integer(request.headers, "Upload-Offset")
    if at is None:
        raise InvalidInput("Upload-Offset is required.")
    complete = boolean("Upload-Complete")
    if complete is None:
        if g.interop > 6:
            raise InvalidInput("Upload-Complete is required.")
        complete = True  # interop 6 lets the last append leave it out
    length = tus_headers.integer(request.headers, "Upload-Length")
    # From interop 9, a valid empty ?1 append to a completed upload gets the completing
    # answer again (its first one may have been lost).
    replay = g.interop >= 9 and complete and not request.content_length
    try:
        outcome = appends.append(key, at, _body(complete), length, _cut(request.environ),
                                 replay)
    except UploadCompleted as exc:
        _completed_again(exc)
        raise
    upload = outcome.value
    if not upload.is_completed and g.interop > 6:
        status = 204
    else:
        status = 201
    return after_response(make_response(("", status, _state(upload))), outcome.later)


def cancel(key: str):
    """Upload cancellation: the upload and its bytes go; requests on it end."""
    uploads.cancel(key)
    return "", 204


def _completed_again(exc: UploadCompleted) -> None:
    """An append to a completed upload, as each version answers it."""
    if g.interop >= 9 or (g.interop == 8 and request.content_length):
        exc.code = "inconsistent_upload_length"
    elif g.interop == 8:  # an empty append: the upload is gone from the draft's view
        exc.status = 410


def _body(complete: bool) -> appends.Body:
    return appends.Body(request.stream, request.content_length, complete,
                        digests("Content-Digest"), wants_sha256())


def _state(upload: Upload) -> dict:
    """What every data answer says of the upload (and its digests once complete, to a
    request with Want-Repr-Digest)."""
    headers = {"Upload-Offset": str(upload.upload_offset),
               "Upload-Complete": flag(upload.is_completed), "Upload-Limit": limits(upload)}
    if upload.upload_length is not None:
        headers["Upload-Length"] = str(upload.upload_length)
    if upload.is_completed:
        headers["Content-Location"] = upload.path
        if "Want-Repr-Digest" in request.headers:
            headers["Repr-Digest"] = repr_digest(upload)
    return headers


def _metadata() -> str | None:
    """tus Upload-Metadata if sent, else one made of Content-Disposition's file name and,
    where the body is the file's, its Content-Type."""
    raw = request.headers.get("Upload-Metadata")
    if raw is not None:
        return raw
    pairs = []
    _, params = parse_options_header(request.headers.get("Content-Disposition", ""))
    if params.get("filename"):
        pairs.append((NAME_KEY, params["filename"]))
    if request.mimetype and request.mimetype != PARTIAL_UPLOAD:
        pairs.append((TYPE_KEY, request.mimetype))
    return ",".join(f"{key} {tus_headers.encode(value)}" for key, value in pairs) or None


def _cut(environ: dict):
    """How a newer request on the upload ends this one's body: its reads stop, and a read
    blocked on the socket returns at once (the body timeouts' expire())."""
    body = environ.get("wsgi.input")
    expire = getattr(body, "expire", None)
    return expire if expire is not None else (lambda: None)
