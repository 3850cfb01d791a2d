"""Finding the finished file a download asks for, through the store: at its `path`, or at
its tus upload's URL; and whether the client should fetch it from the store itself."""
import base64
import binascii
import mimetypes
import re
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from ..core.extensions import db
from ..core.models import COMPLETED, STREAMED, Upload
from ..core.naming import safe_name
from ..storage import Download, FileGone, FileServer, Presigner
from . import access
from .errors import FileNotFound, UploadUnfinished
from .stores import store
from .tus import uploads as tus_uploads

# A media type without parameters (RFC 9110 tokens): what a tus client's filetype must be
# to become the answer's Content-Type.
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.+-]{1,128}")
# Upload-Metadata keys of the file's type: tus-js-client and Uppy send filetype (Uppy also
# type).
TYPE_KEYS = ("filetype", "type")


@dataclass(frozen=True)
class Served:
    """A finished file to send, the name the client should save it as, and its type."""

    download: Download
    stored_name: str
    file_name: str
    content_type: str


def find(stored_name: str) -> Served:
    """The file of this request's owner's completed upload stored under this name (only
    names a completed row references, never any other file); 404 otherwise."""
    if not current_app.config["DOWNLOADS"]:
        raise FileNotFound()
    query = select(Upload).filter_by(stored_name=stored_name, status=COMPLETED,
                                     owner_id=access.owner_id())
    upload = db.session.execute(query.limit(1)).scalar_one_or_none()
    db.session.commit()  # end the read transaction before streaming for minutes
    if upload is None:
        raise FileNotFound()
    return _served(upload)


def find_tus(key: str) -> Served:
    """The file of this request's owner's finished tus upload (GET on its URL): 404 if
    unknown, 410 if expired, 409 while its bytes are still arriving."""
    if not current_app.config["DOWNLOADS"]:
        raise FileNotFound()
    upload = tus_uploads.find(key, STREAMED)  # ends its read transaction
    if not upload.is_completed:
        raise UploadUnfinished()
    return _served(upload)


def presigned_url(served: Served, content_type: str, disposition: str) -> str | None:
    """Where the client should fetch the file from the store itself, with these headers,
    when S3_PRESIGNED_DOWNLOADS is on and the store can sign URLs; None: stream it."""
    seconds = int(current_app.config["S3_PRESIGNED_DOWNLOADS"] or 0)
    server = store()
    if seconds <= 0 or not isinstance(server, Presigner):
        return None
    return server.presigned_url(served.stored_name, seconds, content_type, disposition)


def _served(upload: Upload) -> Served:
    server = store()
    if upload.stored_name is None or not isinstance(server, FileServer):
        raise FileNotFound()
    name = safe_name(upload.file_name)
    try:
        download = server.serve(upload.stored_name)
    except FileGone:
        raise FileNotFound() from None
    return Served(download, upload.stored_name, name,
                  declared_type(upload.upload_metadata) or guessed_type(name))


def declared_type(metadata: str | None) -> str | None:
    """The media type a tus client declared in Upload-Metadata, if it is a valid one (the
    header was checked at creation: pairs of a key and base64)."""
    for item in (metadata or "").split(","):
        key, _, value = item.strip().partition(" ")
        if key in TYPE_KEYS and value:
            try:
                declared = base64.b64decode(value, validate=True).decode("ascii").strip()
            except (binascii.Error, ValueError):
                continue
            if _MEDIA_TYPE.fullmatch(declared):
                return declared.lower()
    return None


def guessed_type(file_name: str) -> str:
    """The media type of a file by its name's extension, as send_file guesses it."""
    return mimetypes.guess_type(file_name)[0] or "application/octet-stream"
