"""The tus 1.0 protocol at TUS_PREFIX (default /files): thin views over
services.tus (uploads and writes).

Extensions: creation, creation-with-upload, creation-defer-length, termination, expiration,
checksum and concatenation. checksum-trailer is not offered: WSGI gives an application no
access to HTTP trailers (gunicorn reads and drops them). GET on a finished upload's URL
serves its file, as tusd does: no part of tus 1.0, it needs no Tus-Resumable (a browser
following a link sends none).
"""
import re
from datetime import UTC

from flask import Blueprint, Flask, current_app, g, make_response, request
from flask.views import MethodView
from werkzeug.exceptions import MethodNotAllowed, UnsupportedMediaType
from werkzeug.http import http_date

from ..core.models import Upload
from ..core.units import parse_duration
from ..services import downloads
from ..services.errors import InvalidInput, TusVersionUnsupported
from ..services.tus import uploads as tus_uploads
from ..services.tus import writes as tus_writes
from . import resumable, tus_headers
from .downloads import send
from .followups import after_response
from .locations import location

TUS_VERSION = "1.0.0"
EXTENSIONS = ("creation", "creation-with-upload", "creation-defer-length", "termination",
              "expiration", "checksum", "concatenation")
OFFSET_STREAM = "application/offset+octet-stream"
# Methods a client behind a restrictive proxy may tunnel through POST.
OVERRIDABLE = ("PATCH", "DELETE", "HEAD")
# With the IETF draft's (docs/resumable.md), which browsers' clients send and read too.
REQUEST_HEADERS = ["Tus-Resumable", "Upload-Length", "Upload-Defer-Length", "Upload-Offset",
                   "Upload-Metadata", "Upload-Concat", "Upload-Checksum", "Content-Type",
                   "X-HTTP-Method-Override", "X-Requested-With", "Range", "If-Range",
                   "Upload-Draft-Interop-Version", "Upload-Complete", "Content-Disposition",
                   "Repr-Digest", "Content-Digest", "Want-Repr-Digest"]
RESPONSE_HEADERS = ["Location", "Upload-Offset", "Upload-Length", "Upload-Defer-Length",
                    "Upload-Metadata", "Upload-Expires", "Upload-Concat", "Upload-MD5",
                    "Upload-Path", "Tus-Resumable", "Tus-Version", "Tus-Extension",
                    "Tus-Max-Size", "Tus-Checksum-Algorithm", "Content-Disposition",
                    "Content-Range", "ETag", "Upload-Draft-Interop-Version",
                    "Upload-Complete", "Upload-Limit", "Content-Location", "Repr-Digest"]

UNSERVED_DRAFT = (f"Send Tus-Resumable: 1.0.0, or {resumable.VERSION_HEADER}: one of "
                  f"{', '.join(map(str, resumable.VERSIONS))}; this server speaks those.")

bp = Blueprint("tus", __name__)


@bp.before_request
def require_tus_version():
    """Hand a request of the IETF draft (a served Upload-Draft-Interop-Version, and no
    Tus-Resumable) to its views; refuse any other request but OPTIONS and GET that does not
    speak tus 1.0.0 (412)."""
    version = resumable.interop_version()
    if version is not None:
        return resumable.dispatch(version)
    if request.method in ("OPTIONS", "GET"):
        return
    if request.headers.get("Tus-Resumable") != TUS_VERSION:
        if resumable.VERSION_HEADER in request.headers:
            raise TusVersionUnsupported(UNSERVED_DRAFT)
        raise TusVersionUnsupported()


@bp.after_app_request
def add_tus_headers(response):
    """Every answer under the prefix, errors included, says which tus it speaks (or, to a
    request of the draft, which interop version)."""
    prefix = current_app.config["TUS_PREFIX"]
    if g.get("interop"):
        response.headers[resumable.VERSION_HEADER] = str(g.interop)
    elif request.blueprint == "tus" or f"{request.path}/".startswith(prefix + "/"):
        response.headers["Tus-Resumable"] = TUS_VERSION
        response.headers["Tus-Version"] = TUS_VERSION
    return response


def discovery():
    """OPTIONS: versions, extensions, limits and checksum algorithms (and the limits as the
    IETF draft names them, for its clients' discovery)."""
    return "", 204, {"Tus-Extension": ",".join(EXTENSIONS),
                     "Tus-Max-Size": str(current_app.config["MAX_FILE_SIZE"]),
                     "Upload-Limit": f"max-size={current_app.config['MAX_FILE_SIZE']}",
                     "Tus-Checksum-Algorithm": ",".join(tus_headers.CHECKSUM_ALGORITHMS)}


def upload_headers(upload: Upload) -> dict:
    """Upload-* headers describing an upload's state."""
    headers = {"Upload-Offset": str(upload.upload_offset)}
    if upload.upload_length is None:
        headers["Upload-Defer-Length"] = "1"
    else:
        headers["Upload-Length"] = str(upload.upload_length)
    if upload.upload_metadata:
        headers["Upload-Metadata"] = upload.upload_metadata
    if upload.concat == tus_uploads.PARTIAL:
        headers["Upload-Concat"] = "partial"
    elif upload.concat == tus_uploads.FINAL:
        headers["Upload-Concat"] = f"final;{upload.concat_parts}"
    if upload.expires_at is not None and not upload.is_completed:
        headers["Upload-Expires"] = http_date(upload.expires_at.replace(tzinfo=UTC))
    if upload.is_completed:
        headers["Upload-MD5"] = upload.md5
        headers["Upload-Path"] = upload.path
    return headers


class UploadCollection(MethodView):
    """The endpoint itself: discovery and creation."""

    def options(self):
        return discovery()

    def post(self):
        """Create an upload (creation, -defer-length, -with-upload, concatenation)."""
        raw_metadata = request.headers.get("Upload-Metadata")
        name = tus_headers.file_name(tus_headers.metadata(raw_metadata))
        concat = request.headers.get("Upload-Concat", "").strip() or None
        length = tus_headers.integer(request.headers, "Upload-Length")
        if concat is not None and concat.startswith("final;"):
            if length is not None:
                raise InvalidInput("A final upload takes its length from its parts.")
            keys = tus_headers.final_parts(concat)
            upload = tus_uploads.concatenate(keys, concat[len("final;"):].strip(), name,
                                             raw_metadata)
            return "", 201, {"Location": location(upload), **upload_headers(upload)}
        if concat not in (None, tus_uploads.PARTIAL):
            raise InvalidInput("Upload-Concat must be `partial` or `final;<urls>`.")
        deferred = request.headers.get("Upload-Defer-Length")
        if deferred is not None and deferred.strip() != "1":
            raise InvalidInput("Upload-Defer-Length must be 1.")
        if (length is None) == (deferred is None):
            raise InvalidInput("Send exactly one of Upload-Length and Upload-Defer-Length: 1.")
        with_body = request.mimetype == OFFSET_STREAM
        if not with_body and request.mimetype and request.content_length:
            raise UnsupportedMediaType(f"A body to store must be sent as {OFFSET_STREAM}.")
        checksum = tus_headers.checksum(request.headers.get("Upload-Checksum"))
        upload = tus_uploads.create(length, name, raw_metadata, concat)
        if with_body:
            written = tus_writes.write(upload.key, 0, request.stream, request.content_length,
                                       checksum)
            upload = written.value
            return after_response(make_response(("", 201, {
                "Location": location(upload), **upload_headers(upload)})), written.later)
        return "", 201, {"Location": location(upload), **upload_headers(upload)}


class UploadResource(MethodView):
    """One upload: state, appending, termination, and its file once finished."""

    def options(self, key: str):
        return discovery()

    def get(self, key: str):
        """The finished upload's file, as at its Upload-Path (Range, ETag; 409 unfinished)."""
        return send(downloads.find_tus(key))

    def head(self, key: str):
        """The upload's offset, length and metadata; never cached."""
        upload = tus_uploads.head(key)
        return "", 200, {**upload_headers(upload), "Cache-Control": "no-store"}

    def patch(self, key: str):
        """Append the body at Upload-Offset."""
        if request.mimetype != OFFSET_STREAM:
            raise UnsupportedMediaType(f"Send the bytes as {OFFSET_STREAM}.")
        offset = tus_headers.integer(request.headers, "Upload-Offset")
        if offset is None:
            raise InvalidInput("Upload-Offset is required.")
        written = tus_writes.write(
            key, offset, request.stream, request.content_length,
            tus_headers.checksum(request.headers.get("Upload-Checksum")),
            tus_headers.integer(request.headers, "Upload-Length"))
        headers = upload_headers(written.value)
        # Hashing what arrived runs after the answer: the client's next PATCH need not wait.
        return after_response(make_response(("", 204, {
            name: headers[name] for name in
            ("Upload-Offset", "Upload-Expires", "Upload-MD5", "Upload-Path") if name in headers})),
            written.later)

    def delete(self, key: str):
        """Termination: remove the upload and its bytes."""
        tus_uploads.terminate(key)
        return "", 204

    def post(self, key: str):
        """X-HTTP-Method-Override: PATCH, DELETE or HEAD sent as POST."""
        method = request.headers.get("X-HTTP-Method-Override", "").strip().upper()
        if method not in OVERRIDABLE:
            raise MethodNotAllowed(["DELETE", "GET", "HEAD", "OPTIONS", "PATCH"])
        return getattr(self, method.lower())(key)


bp.add_url_rule("/", view_func=UploadCollection.as_view("uploads"), strict_slashes=False)
bp.add_url_rule("/<key>", view_func=UploadResource.as_view("upload"))


def init_app(app: Flask) -> None:
    """Derive the tus settings and serve the protocol under TUS_PREFIX."""
    config = app.config
    config["TUS_PREFIX"] = "/" + str(config["TUS_PREFIX"]).strip("/")
    config["TUS_EXPIRY"] = parse_duration(config["TUS_EXPIRY"] or config["UPLOAD_EXPIRY"])
    app.register_blueprint(bp, url_prefix=config["TUS_PREFIX"])


def cors_resources(app: Flask) -> dict:
    """Flask-CORS options for the tus endpoint: its request headers allowed, its response
    headers exposed (browsers hide Location and Upload-Offset otherwise)."""
    pattern = re.escape(app.config["TUS_PREFIX"]) + r"(/.*)?$"
    return {pattern: {"origins": app.config["CORS_ORIGINS"], "allow_headers": REQUEST_HEADERS,
                      "expose_headers": RESPONSE_HEADERS, "max_age": 86400,
                      "methods": ["POST", "GET", "HEAD", "PATCH", "DELETE", "OPTIONS"]}}
