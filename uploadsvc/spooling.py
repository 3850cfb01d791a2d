"""A request class whose uploaded parts stream straight into the data directory.

Werkzeug would spool large parts to the system temp dir; spooling into the store's temp/
keeps every byte inside the data directory and lets the store rename the part into place
as a chunk without copying it again.
"""
from flask import Flask, Request, current_app


class UploadRequest(Request):
    """Flask's request, with multipart file parts spooled by the ChunkStore."""

    def _get_file_stream(self, total_content_length, content_type, filename=None,
                         content_length=None):
        limit = current_app.config["MAX_CHUNK_SIZE"]
        spool = current_app.extensions["chunk_store"].spool(limit)
        # Kept here too: when parsing fails (a full disk, a broken body) werkzeug never
        # hands the part to request.files, and only close() removes the temp file.
        self.__dict__.setdefault("_spools", []).append(spool)
        return spool

    def close(self) -> None:
        try:
            super().close()
        finally:
            for spool in self.__dict__.pop("_spools", ()):
                spool.close()


def init_app(app: Flask) -> None:
    app.request_class = UploadRequest
