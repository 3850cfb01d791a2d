"""Downloads of completed files at their `path` (/uploads/<stored name>), with Range support;
tus serves a finished upload's URL with the same answer (send)."""
import unicodedata
from urllib.parse import quote

from flask import Blueprint, current_app, request, send_file
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.http import dump_options_header, parse_range_header
from werkzeug.utils import get_content_type

from ..services import downloads
from ..services.errors import FileNotFound

bp = Blueprint("downloads", __name__)


@bp.get("/uploads/<stored_name>")
def download(stored_name: str):
    """Serve a completed file; Range, If-Range and ETag make downloads resumable."""
    return send(downloads.find(stored_name))


def send(served: downloads.Served):
    """The answer that sends a finished file: a redirect to the store (presigned downloads),
    or its bytes, whole or the range asked for."""
    content_type = get_content_type(served.content_type, "utf-8")
    if request.method == "GET":  # a URL signed for GET is refused to HEAD
        url = downloads.presigned_url(served, content_type, attachment(served.file_name))
        if url is not None:  # 307: no body, not cached (the URL expires)
            return current_app.response_class(
                status=307, headers={"Location": url, "Cache-Control": "no-store"})
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


def attachment(file_name: str) -> str:
    """Content-Disposition of a download saved as file_name, as send_file writes it."""
    try:
        file_name.encode("ascii")
    except UnicodeEncodeError:
        simple = unicodedata.normalize("NFKD", file_name).encode("ascii", "ignore").decode()
        quoted = quote(file_name, safe="!#$&+-.^_`|~")
        return dump_options_header("attachment", {"filename": simple,
                                                  "filename*": f"UTF-8''{quoted}"})
    return dump_options_header("attachment", {"filename": file_name})


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
