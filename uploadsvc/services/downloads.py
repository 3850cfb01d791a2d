"""Finding the finished file a download asks for, through the store."""
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from ..core.extensions import db
from ..core.models import COMPLETED, Upload
from ..core.naming import safe_name
from ..storage import Download, FileGone, FileServer
from . import access
from .errors import FileNotFound
from .stores import store


@dataclass(frozen=True)
class Served:
    """A finished file to send, and the name the client should save it as."""

    download: Download
    file_name: str


def find(stored_name: str) -> Served:
    """The file of this request's owner's completed upload stored under this name (only
    names a completed row references, never any other file); 404 otherwise."""
    if not current_app.config["DOWNLOADS"]:
        raise FileNotFound()
    query = select(Upload).filter_by(stored_name=stored_name, status=COMPLETED,
                                     owner_id=access.owner_id())
    upload = db.session.execute(query.limit(1)).scalar_one_or_none()
    db.session.commit()  # end the read transaction before streaming for minutes
    server = store()
    if upload is None or not isinstance(server, FileServer):
        raise FileNotFound()
    try:
        return Served(server.serve(upload.stored_name), safe_name(upload.file_name))
    except FileGone:
        raise FileNotFound() from None
