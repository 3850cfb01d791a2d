"""The /api operations of API.md, for the OpenAPI document."""
from collections.abc import Mapping

from apispec import APISpec

from ..schemas import UploadIdentitySchema
from . import responses as r

ERRORS = {
    400: "Malformed or missing input (`invalid_input`), chunks missing (`missing_chunks`, "
         "with `missingChunks`), or a chunk that does not match its `chunkMd5` "
         "(`chunk_md5_mismatch`, nothing stored).",
    401: "An API key is required (only when UPLOADSVC_AUTH_REQUIRED is on).",
    403: "A new upload refused by the pre-create hook (`upload_refused`, with the hook's "
         "message), or not checked because the hook did not answer "
         "(`pre_create_unavailable`, when UPLOADSVC_PRE_CREATE_HOOK_FAIL is closed); "
         "nothing is recorded. Answered where a new upload would be created: check-chunks "
         "of an upload not seen before, else its first chunk (or completing an empty file).",
    404: "No such upload (or it belongs to another API key).",
    408: "The request body arrived too slowly.",
    409: "Conflict with the upload's state: another `totalChunks`, another chunk size, "
         "another `fileSize` (`file_size_conflict`), or `merge_in_progress` (retry).",
    413: "Too large: the file (MAX_FILE_SIZE, also as a declared `fileSize`), the chunk "
         "(MAX_CHUNK_SIZE) or the JSON body.",
    415: "Wrong Content-Type.",
    422: "The merged bytes do not match `md5` (`md5_mismatch`, with `expected`, `actual`), or "
         "the merged file has not the declared `fileSize` (`size_mismatch`, with "
         "`expectedSize`, `actualSize`).",
    429: "Too many unfinished uploads for this client or server, or a rate limit.",
    500: "An internal error; the message carries no details (they are logged).",
    507: "The server is out of disk space; nothing partial was kept.",
}
PATH_PARAMS = [
    {"in": "path", "name": "md5", "required": True,
     "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{32}$"}},
    {"in": "path", "name": "fileName", "required": True,
     "schema": {"type": "string", "minLength": 1, "maxLength": 255}},
]


def answers(schema, description: str, *errors: int) -> dict:
    """A 200 answer with schema, plus the listed error statuses (and 500), all JSON; 503 is
    the shared answer of an unavailable store or database."""
    result = {"200": {"description": description,
                      "content": {"application/json": {"schema": schema}}}}
    for status in sorted({*errors, 500}):
        result[str(status)] = r.UNAVAILABLE if status == 503 else {
            "description": ERRORS[status], "content": {"application/json": {"schema": "Error"}}}
    return result


def json_body(schema) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def add_paths(spec: APISpec, config: Mapping) -> None:
    """Register every /api operation on spec."""
    for name, schema in [("Error", r.Error), ("Health", r.Health),
                         ("Identity", UploadIdentitySchema),
                         ("CheckChunks", r.CheckChunks), ("ChunkUpload", r.ChunkUpload),
                         ("ChunkStored", r.ChunkStored), ("Completed", r.Completed),
                         ("UploadStatus", r.UploadStatus), ("Deleted", r.Deleted),
                         ("Stats", r.Stats)]:
        spec.components.schema(name, schema=schema)
    limited = (401, 429, 503)  # every operation but health reads the database
    spec.path("/api/health", operations={"get": {
        "summary": "Liveness, version and runtime", "operationId": "health", "security": [],
        "parameters": [{"in": "header", "name": "Accept-Language", "required": False,
                        "schema": {"type": "string"},
                        "description": "zh, zh-CN, ... for the message in Chinese"}],
        "responses": answers("Health", "The service is up.")}})
    spec.path("/api/check-chunks", operations={"post": {
        "summary": "Which chunks are stored; completes a known file at once (instant upload)",
        "description": "An upload not seen before is created here, as its first chunk "
                       "would create it: the pre-create hook is asked (403, nothing "
                       "recorded) and the limits on unfinished uploads apply (429) before "
                       "the client sends a byte.",
        "operationId": "checkChunks", "requestBody": json_body("Identity"),
        "responses": answers("CheckChunks", "Stored chunk indices and progress.",
                             400, 403, 409, 413, 415, 422, 507, *limited)}})
    spec.path("/api/upload-chunk", operations={"post": {
        "summary": "Store one chunk", "operationId": "uploadChunk",
        "requestBody": {"required": True, "content": {"multipart/form-data": {
            "schema": "ChunkUpload",
            "encoding": {"chunk": {"contentType": "application/octet-stream"}}}}},
        "responses": answers("ChunkStored", "The chunk is stored durably.",
                             400, 403, 404, 408, 409, 413, 415, 507, *limited)}})
    spec.path("/api/complete-upload", operations={"post": {
        "summary": "Merge the chunks, verify the md5, place the file under /uploads/",
        "operationId": "completeUpload", "requestBody": json_body("Identity"),
        "responses": answers("Completed", "The file is stored and verified.",
                             400, 403, 404, 409, 413, 415, 422, 507, *limited)}})
    spec.path("/api/upload-status/{md5}/{fileName}", operations={"get": {
        "summary": "Progress of one upload", "operationId": "uploadStatus",
        "parameters": PATH_PARAMS,
        "responses": answers("UploadStatus", "The upload's progress.", 400, 404, *limited)}})
    spec.path("/api/upload/{md5}/{fileName}", operations={"delete": {
        "summary": "Remove an upload, its chunks and, once completed, its file",
        "operationId": "deleteUpload", "parameters": PATH_PARAMS,
        "responses": answers("Deleted", "Removed.", 400, 404, 409, *limited)}})
    spec.path("/api/stats", operations={"get": {
        "summary": "Figures of the answering worker; unfinished uploads of all workers",
        "operationId": "stats", "responses": answers("Stats", "Figures.", *limited)}})
    spec.path("/api/openapi.json", operations={"get": {
        "summary": "This document", "operationId": "openapi", "security": [],
        "responses": {"200": {"description": "OpenAPI 3 document",
                              "content": {"application/json": {"schema": {"type": "object"}}}}}}})
