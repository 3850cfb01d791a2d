"""Marshmallow schemas of the answers, for the OpenAPI document only (views return dicts)."""
from marshmallow import INCLUDE, Schema, fields

from ..schemas import MD5_DOC, ChunkFormSchema

TIME_DOC = {"pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$",
            "description": "ISO-8601 in UTC with milliseconds"}
PATH_DOC = {"pattern": "^/uploads/[^/]+$", "description": "URL path of the stored file"}
PERCENT_DOC = {"minimum": 0, "maximum": 100}
# The shared answer of every operation that reads or writes the store or the database.
UNAVAILABLE = "Unavailable"
UNAVAILABLE_ANSWER = {
    "description": "A dependency is unavailable for a moment; retry after Retry-After "
                   "seconds: the object store (`storage_unavailable`: unreachable, timed out "
                   "or busy; `storage_failed`: it refused a request, such as a bucket "
                   "removed, and the log says what it answered) or the database "
                   "(`database_unavailable`: unreachable, or a lock or connection not had "
                   "in time). Nothing was recorded that was not stored. "
                   "No body for HEAD.",
    "headers": {"Retry-After": {"required": True, "description": "seconds to wait",
                                "schema": {"type": "integer", "minimum": 1}}},
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


class Answer(Schema):
    """Answers may gain keys; none is ever renamed or dropped."""

    class Meta:
        unknown = INCLUDE


def _int(**metadata) -> fields.Integer:
    return fields.Integer(required=True, metadata=metadata)


class Error(Answer):
    success = fields.Boolean(required=True, metadata={"enum": [False]})
    error = fields.String(required=True, metadata={"description": "machine-readable code"})
    message = fields.String(required=True, metadata={"description": "sentence for a person"})
    bad_fields = fields.Dict(data_key="fields", metadata={
        "description": "invalid_input: the messages of each bad field"})
    missingChunks = fields.List(fields.Integer(), metadata={
        "description": "missing_chunks: the indices still to send"})
    expected = fields.String(metadata={"description": "md5_mismatch: the md5 the client gave"})
    actual = fields.String(metadata={"description": "md5_mismatch: the md5 of the merged bytes"})
    expectedSize = fields.Integer(metadata={
        "description": "size_mismatch: the fileSize the client gave"})
    actualSize = fields.Integer(metadata={
        "description": "size_mismatch: the size of the merged file"})


class Health(Answer):
    status = fields.String(required=True, metadata={"enum": ["ok"]})
    message = fields.String(required=True, metadata={
        "description": "in the client's language (Accept-Language): Chinese or English"})
    timestamp = fields.String(required=True, metadata=TIME_DOC)
    version = fields.String(required=True)
    node = fields.String(required=True, metadata={"description": "runtime, e.g. CPython 3.11.7"})
    python = fields.String()


INSTANT_DOC = {"description": "whether the file is already stored (instant upload): no chunk "
               "needs sending"}


class Found(Answer):
    """check-chunks' answer, as the original server also nests it in `data`."""

    instantUpload = fields.Boolean(required=True, metadata=INSTANT_DOC)
    uploadedChunks = fields.List(fields.Integer(metadata={"minimum": 0}), required=True)
    progress = _int(**PERCENT_DOC)
    fileUrl = fields.String(metadata={**PATH_DOC, "description": "instant: the file's path"})
    fileName = fields.String(metadata={"description": "instant: the name the client sent"})
    fileSize = fields.Integer(metadata={"minimum": 0, "description": "instant: bytes"})


class CheckChunks(Found):
    success = fields.Boolean(required=True, metadata={"enum": [True]})
    completed = fields.Boolean(metadata={"enum": [True], "description": "instant upload"})
    path = fields.String(metadata=PATH_DOC)
    data = fields.Nested(Found, required=True, metadata={
        "description": "the same answer, as the original server nests it"})


class ChunkUpload(ChunkFormSchema):
    """The multipart body of upload-chunk: the file part plus its text fields."""

    chunk = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})


class ChunkStored(Answer):
    success = fields.Boolean(required=True, metadata={"enum": [True]})
    uploaded = _int(minimum=0)
    total = _int(minimum=1)
    progress = _int(**PERCENT_DOC)
    chunkIndex = _int(minimum=0)


class CompletedData(Answer):
    """complete-upload's answer as the original server nests it in `data`."""

    fileName = fields.String(required=True)
    fileSize = _int(minimum=0)
    filePath = fields.String(required=True, metadata=PATH_DOC)
    md5 = fields.String(required=True, metadata=MD5_DOC)
    uploadTime = _int(minimum=0, description="milliseconds from the upload's start")


class Completed(Answer):
    success = fields.Boolean(required=True, metadata={"enum": [True]})
    fileName = fields.String(required=True)
    size = _int(minimum=0)
    md5 = fields.String(required=True, metadata=MD5_DOC)
    path = fields.String(required=True, metadata=PATH_DOC)
    uploadTime = _int(minimum=0, description="milliseconds from the upload's start")
    data = fields.Nested(CompletedData, required=True)


class UploadStatus(Answer):
    uploaded = _int(minimum=0)
    total = _int(minimum=0, description="0 for a zero-byte file announced as no chunks")
    percentage = _int(**PERCENT_DOC)
    status = fields.String(required=True, metadata={"enum": ["uploading", "completed"]})
    startTime = fields.String(required=True, metadata=TIME_DOC)
    lastUpdate = fields.String(required=True, metadata=TIME_DOC)
    size = fields.Integer(metadata={"minimum": 0})
    path = fields.String(metadata=PATH_DOC)
    md5 = fields.String(metadata=MD5_DOC)


class Deleted(Answer):
    success = fields.Boolean(required=True, metadata={"enum": [True]})


class Memory(Answer):
    rss = _int()
    heapTotal = _int()
    heapUsed = _int()
    external = _int()


class Stats(Answer):
    activeUploads = _int(minimum=0)
    totalMemoryUsage = fields.Nested(Memory, required=True)
    uptime = fields.Float(required=True, metadata={"description": "seconds"})
    nodeVersion = fields.String(required=True)
    platform = fields.String(required=True)
