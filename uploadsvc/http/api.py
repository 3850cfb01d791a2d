"""The upload API of API.md, under /api. Views parse input, call the service, shape JSON."""
import logging
import platform
import sys
import time
from datetime import UTC, datetime

import psutil
from flask import Blueprint, current_app, make_response, request
from werkzeug.exceptions import UnsupportedMediaType

from ..services import uploads
from ..services.chunked import completion as api_completion
from ..services.chunked import streamed as api_streamed
from ..services.chunked import uploads as api_uploads
from ..services.errors import ChunkTooLarge, InvalidInput
from ..version import __version__
from . import chunkform
from .answers import iso
from .followups import after_response
from .schemas import ChunkFormSchema, PathIdentitySchema, UploadIdentitySchema, load

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api")
_started = time.monotonic()
# Room for the multipart boundaries and text fields around a chunk.
FORM_ENVELOPE = 64 * 1024


def runtime() -> str:
    return f"{platform.python_implementation()} {platform.python_version()}"


def json_body(schema) -> dict:
    if request.mimetype != "application/json":
        raise UnsupportedMediaType("Send a JSON body with Content-Type: application/json.")
    request.max_content_length = current_app.config["MAX_JSON_BODY"]
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidInput("The body must be a JSON object.")
    return load(schema, data)


def completion(upload) -> dict:
    """complete-upload's answer, repeated in the original server's `data` envelope."""
    return {"success": True, "fileName": upload.file_name, "size": upload.size,
            "md5": upload.md5, "path": upload.path, "uploadTime": upload.upload_time_ms,
            "data": {"fileName": upload.file_name, "fileSize": upload.size,
                     "filePath": upload.path, "md5": upload.md5,
                     "uploadTime": upload.upload_time_ms}}


def chunks_found(upload, indices: list[int], total: int, file_name: str) -> dict:
    """check-chunks' answer: instantUpload says whether the file is already there (then
    with its URL, name and size), repeated in the original server's `data` envelope."""
    instant = upload.is_completed
    progress = api_uploads.Progress(len(indices), total).percent
    file = ({"fileUrl": upload.path, "fileName": file_name, "fileSize": upload.size}
            if instant else {})
    body = {"success": True, "uploadedChunks": indices, "progress": progress,
            "instantUpload": instant}
    if instant:
        body.update(completed=True, path=upload.path, **file)
    return {**body, "data": {"instantUpload": instant, "uploadedChunks": indices,
                             "progress": progress, **file}}


# The health message in the client's language (Accept-Language); the original server's own
# words for Chinese, which the React front end shows in its banner.
HEALTH_MESSAGES = {"en": "Upload service is running", "zh": "后端服务运行正常"}


def preferred_language() -> str:
    """The first language of Accept-Language (by quality) that has a message, else English;
    zh-CN, zh-TW and zh all mean Chinese."""
    for value, quality in request.accept_languages:
        primary = value.split("-")[0].lower()
        if quality > 0 and primary in HEALTH_MESSAGES:
            return primary
    return "en"


@bp.get("/health")
def health():
    """Liveness, version and runtime."""
    return {"status": "ok", "message": HEALTH_MESSAGES[preferred_language()],
            "timestamp": iso(datetime.now(UTC)), "version": __version__,
            "node": runtime(), "python": platform.python_version()}


@bp.post("/check-chunks")
def check_chunks():
    """Which chunks of an upload are stored; completes known files at once."""
    args = json_body(UploadIdentitySchema())
    total = args["totalChunks"]
    upload, indices = api_completion.check_chunks(args["md5"], args["fileName"], total,
                                                  args.get("fileSize"))
    return chunks_found(upload, indices, total, args["fileName"])


@bp.post("/upload-chunk")
def upload_chunk():
    """Store one chunk (multipart: file part `chunk` plus its fields)."""
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType("Send the chunk as multipart/form-data.")
    # Refuse an oversized chunk by its Content-Length before reading a byte of it; one sent
    # without a length is stopped while spooling (SpoolFile's limit).
    limit = current_app.config["MAX_CHUNK_SIZE"]
    if request.content_length is not None and request.content_length > limit + FORM_ENVELOPE:
        raise ChunkTooLarge()
    request.max_content_length = min(current_app.config["MAX_CONTENT_LENGTH"],
                                     limit + FORM_ENVELOPE)
    chunkform.stream_in_place(request)  # when the fields come first, as the page sends them
    args = load(ChunkFormSchema(), request.form)
    chunk = request.files.get("chunk")
    if chunk is None:
        raise InvalidInput("The file part 'chunk' is missing.")
    stored = api_streamed.store_chunk(args["md5"], args["fileName"], args["totalChunks"],
                                      args["chunkIndex"], chunkform.source(chunk),
                                      args.get("fileSize"), args.get("chunkMd5"))
    progress = stored.value
    return after_response(make_response({
        "success": True, "uploaded": progress.uploaded, "total": progress.total,
        "progress": progress.percent, "chunkIndex": args["chunkIndex"]}), stored.later)


@bp.post("/complete-upload")
def complete_upload():
    """Merge the chunks, verify the md5 and place the file under uploads/."""
    args = json_body(UploadIdentitySchema())
    completed = api_completion.complete(args["md5"], args["fileName"], args["totalChunks"])
    return after_response(make_response(completion(completed.value)), completed.later)


@bp.get("/upload-status/<md5>/<fileName>")
def upload_status(md5: str, fileName: str):  # noqa: N803 - the route's own names
    """Progress of one upload."""
    args = load(PathIdentitySchema(), {"md5": md5, "fileName": fileName})
    upload, indices = api_uploads.status(args["md5"], args["fileName"])
    uploaded = upload.total_chunks if upload.is_completed else len(indices)
    body = {"uploaded": uploaded, "total": upload.total_chunks,
            "percentage": api_uploads.Progress(uploaded, upload.total_chunks).percent,
            "status": upload.status, "startTime": iso(upload.started_at),
            "lastUpdate": iso(upload.updated_at)}
    if upload.is_completed:
        body.update(size=upload.size, path=upload.path, md5=upload.md5)
    return body


@bp.delete("/upload/<md5>/<fileName>")
def delete_upload(md5: str, fileName: str):  # noqa: N803
    """Remove an upload, its chunks and, once completed, its file."""
    args = load(PathIdentitySchema(), {"md5": md5, "fileName": fileName})
    api_uploads.delete_upload(args["md5"], args["fileName"])
    return {"success": True}


@bp.get("/stats")
def stats():
    """Figures of the answering worker, and unfinished uploads across all workers."""
    memory = psutil.Process().memory_info()
    # Python has no V8 heap: report the data segment, private and shared resident memory.
    shared = getattr(memory, "shared", 0)
    usage = {"rss": memory.rss, "heapTotal": getattr(memory, "data", memory.vms),
             "heapUsed": memory.rss - shared, "external": shared}
    return {"activeUploads": uploads.active_count(), "totalMemoryUsage": usage,
            "uptime": round(time.monotonic() - _started, 3),
            "nodeVersion": runtime(), "platform": sys.platform}
