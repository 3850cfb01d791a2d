"""Downloads of completed files at their `path` (/uploads/<stored name>), with Range support;
tus serves a finished upload's URL with the same answer (send)."""
from flask import Blueprint, request, send_file
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.http import parse_range_header

from ..services import downloads
from ..services.errors import FileNotFound

bp = Blueprint("downloads", __name__)


@bp.get("/uploads/<stored_name>")
def download(stored_name: str):
    """Serve a completed file; Range, If-Range and ETag make downloads resumable."""
    return send(downloads.find(stored_name))


def send(served: downloads.Served):
    """The answer that sends a finished file's bytes, whole or the range asked for."""
    if "Range" in request.headers:
        ranges = parse_range_header(request.headers["Range"])
        if ranges is None or ranges.units != "bytes" or len(ranges.ranges) != 1:
            # werkzeug answers multi-range and malformed ranges with 416; ignoring Range
            # (200, whole file) is what RFC 9110 allows and what every client handles.
            request.environ.pop("HTTP_RANGE", None)
    download = served.download
    if download.path is None:
        response = _streamed(download, served.file_name, served.content_type)
    else:
        try:
            response = send_file(download.path, as_attachment=True, mimetype=served.content_type,
                                 download_name=served.file_name, conditional=True, max_age=0)
        except FileNotFoundError:  # deleted a moment ago; an open file stays readable
            raise FileNotFound() from None
    # The bytes are the user's, not ours: never let a browser run them as a page of this site.
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def _streamed(download, file_name: str, content_type: str):
    """A file the store streams (an object store's): send_file knows no size of a stream,
    so the length, ETag and Range are set here; a range seeks the stream, which asks the
    store for those bytes only."""
    response = send_file(download.open(), as_attachment=True, download_name=file_name,
                         mimetype=content_type, conditional=False, max_age=0,
                         etag=download.etag, last_modified=download.modified)
    response.content_length = download.size
    try:
        return response.make_conditional(request.environ, accept_ranges=True,
                                         complete_length=download.size)
    except RequestedRangeNotSatisfiable:
        response.close()
        raise
