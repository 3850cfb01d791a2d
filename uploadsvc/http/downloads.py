"""Downloads of completed files at their `path` (/uploads/<stored name>), with Range support."""
from flask import Blueprint, current_app, request, send_file
from sqlalchemy import select
from werkzeug.http import parse_range_header

from ..core.extensions import db
from ..core.models import COMPLETED, Upload
from ..core.naming import safe_name
from ..services import access
from ..services.errors import UploadError
from ..services.api_uploads import chunk_store

bp = Blueprint("downloads", __name__)


class FileNotFound(UploadError):
    status = 404
    code = "file_not_found"
    message = "No such file."


def completed_upload(stored_name: str) -> Upload | None:
    """The completed upload of this request's owner whose file is stored under this name."""
    query = select(Upload).filter_by(stored_name=stored_name, status=COMPLETED,
                                     owner_id=access.owner_id())
    return db.session.execute(query.limit(1)).scalar_one_or_none()


@bp.get("/uploads/<stored_name>")
def download(stored_name: str):
    """Serve a completed file; Range, If-Range and ETag make downloads resumable."""
    if not current_app.config["DOWNLOADS"]:
        raise FileNotFound()
    upload = completed_upload(stored_name)
    # Only names a completed row references are served: never any other file of the data dir.
    if upload is None or not chunk_store().has_file(upload.stored_name):
        raise FileNotFound()
    path = chunk_store().file_path(upload.stored_name)
    download_name = safe_name(upload.file_name)
    db.session.rollback()  # end the read transaction before streaming for minutes
    if "Range" in request.headers:
        ranges = parse_range_header(request.headers["Range"])
        if ranges is None or ranges.units != "bytes" or len(ranges.ranges) != 1:
            # werkzeug answers multi-range and malformed ranges with 416; ignoring Range
            # (200, whole file) is what RFC 9110 allows and what every client handles.
            request.environ.pop("HTTP_RANGE", None)
    try:
        response = send_file(path, as_attachment=True, download_name=download_name,
                             conditional=True, max_age=0)
    except FileNotFoundError:  # deleted a moment ago; an open file stays readable
        raise FileNotFound() from None
    # The bytes are the user's, not ours: never let a browser run them as a page of this site.
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
