"""The tus 1.0 endpoint (TUS_PREFIX, default /files), for the OpenAPI document."""
from collections.abc import Mapping

from apispec import APISpec

from ...storage import UPLOAD_KEY
from .api import ERRORS
from .pages import download_answers, error
from .responses import UNAVAILABLE

TUS_ERRORS = {
    403: "A final (concatenated) upload cannot be written; or a new upload refused by the "
         "pre-create hook (`upload_refused`, `pre_create_unavailable`).",
    405: "The X-HTTP-Method-Override names no method this resource allows.",
    410: "The upload has expired; or, IETF draft interop 8, an empty append to a completed "
         "upload (`completed_upload`).",
    422: "IETF draft: the completed upload does not match the creation's Repr-Digest "
         "(`repr_digest_mismatch`, Upload-Complete: ?1); nothing was kept.",
    412: "Tus-Resumable is missing or names another version.",
    423: "Another request holds the upload; retry.",
    460: "Upload-Checksum does not match the body.",
}


def header(name: str, schema: dict, required: bool = False, description: str = "") -> dict:
    return {"in": "header", "name": name, "required": required, "schema": schema,
            "description": description}


TUS_RESUMABLE = header("Tus-Resumable", {"type": "string", "enum": ["1.0.0"]}, True)
LENGTH = {"type": "string", "pattern": "^[0-9]{1,19}$"}
KEY = {"in": "path", "name": "key", "required": True,
       "schema": {"type": "string", "pattern": f"^{UPLOAD_KEY.pattern}$"}}


def answers(success: dict, *errors: int, body: bool = True) -> dict:
    """Success answers plus error statuses (and 401, 429, 500, and 503: every operation
    reads the database), JSON unless HEAD."""
    result = dict(success)
    for status in sorted({*errors, 401, 429, 500}):
        description = TUS_ERRORS.get(status) or ERRORS[status]
        result[str(status)] = {"description": description}
        if body:
            result[str(status)]["content"] = {"application/json": {"schema": "Error"}}
    result["503"] = UNAVAILABLE
    return result


# Errors of the IETF draft with a problem type of its own (docs/resumable.md): the problem's
# members beside the API's own.
PROBLEM = {"type": "object", "required": ["type", "title", "success", "error", "message"],
           "properties": {"type": {"type": "string", "format": "uri"},
                          "title": {"type": "string"},
                          "success": {"type": "boolean", "enum": [False]},
                          "error": {"type": "string"}, "message": {"type": "string"},
                          "expected-offset": {"type": "integer"},
                          "provided-offset": {"type": "integer"}}}
DRAFT = header("Upload-Draft-Interop-Version", {"type": "integer", "enum": [6, 7, 8, 9]},
               description="Speak the IETF resumable upload draft of this interop version "
                           "instead of tus 1.0 (then without Tus-Resumable); see "
                           "docs/resumable.md.")
COMPLETE = header("Upload-Complete", {"type": "string", "enum": ["?0", "?1"]},
                  description="IETF draft: whether this request's body ends the upload.")


def with_draft(responses: dict, **draft: str) -> dict:
    """tus answers plus the IETF draft's: its success statuses (status: description), and
    problem+json on the errors that can carry a problem type."""
    result = {**responses}
    for status, description in draft.items():
        result[status] = {"description": description}
    for status in ("400", "409", "410"):
        if status in result and "content" in result[status]:
            result[status] = {**result[status], "content": {
                **result[status]["content"], "application/problem+json": {"schema": PROBLEM}}}
    return result


def download(config: Mapping) -> dict:
    """GET on an upload's URL, which UPLOADSVC_DOWNLOADS turns off as it does /uploads/."""
    if not config["DOWNLOADS"]:
        return {}
    return {"get": {
        "summary": "A finished upload's file, as at its Upload-Path (not tus 1.0)",
        "operationId": "tusDownload",
        "description": "What tusd serves at an upload's URL, for clients that take it as the "
                       "file's URL: the bytes, with Range, If-Range and ETag, named and typed "
                       "by the metadata's filename and filetype. Needs no Tus-Resumable. HEAD "
                       "stays the tus HEAD. Listed unless UPLOADSVC_DOWNLOADS is false.",
        "parameters": [KEY, header("Range", {"type": "string"}),
                       header("If-Range", {"type": "string"})],
        "responses": {
            **download_answers("No such upload (or it belongs to another key)."),
            "204": {"description": "IETF draft, interop 9: offset retrieval, as HEAD."},
            "409": error(409, "The upload is not finished (`upload_unfinished`): HEAD gives "
                              "its offset, PATCH sends the rest."),
            "410": error(410, TUS_ERRORS[410])}}}


def add_paths(spec: APISpec, config: Mapping) -> None:
    """Register the tus operations under the configured prefix (TUS_PREFIX, as tus.init_app
    made it)."""
    prefix = str(config["TUS_PREFIX"]).rstrip("/")
    discovery = {"summary": "tus discovery: versions, extensions, Tus-Max-Size",
                 "security": [], "responses": {"204": {"description": "Capabilities."}}}
    write = with_draft(answers(
        {"204": {"description": "Stored; Upload-Offset is the new offset."}},
        400, 403, 404, 409, 410, 412, 413, 415, 422, 423, 460, 507),
        **{"201": "IETF draft: stored (interop 6), or the upload completed (Upload-Complete: "
                  "?1, Content-Location its file)."})
    spec.path(prefix + "/", operations={
        "options": {**discovery, "operationId": "tusDiscovery"},
        "post": {
            "summary": "tus creation (also -with-upload, -defer-length, concatenation)",
            "operationId": "tusCreate",
            "parameters": [TUS_RESUMABLE, DRAFT, COMPLETE, header("Upload-Length", LENGTH),
                           header("Upload-Defer-Length", {"type": "string", "enum": ["1"]}),
                           header("Upload-Metadata", {"type": "string"}),
                           header("Upload-Concat", {"type": "string"})],
            "responses": with_draft(answers(
                {"201": {"description": "Created; Location names it."}},
                400, 403, 404, 409, 410, 412, 413, 415, 422, 423, 460, 507))}})
    spec.path(prefix + "/{key}", operations={
        "options": {**discovery, "operationId": "tusDiscoveryOfUpload", "parameters": [KEY]},
        **download(config),
        "head": {"summary": "tus: the upload's offset and length", "operationId": "tusHead",
                 "parameters": [KEY, TUS_RESUMABLE, DRAFT],
                 "responses": with_draft(
                     answers({"200": {"description": "Upload-Offset, -Length."}},
                             400, 404, 410, 412, body=False),
                     **{"204": "IETF draft: Upload-Offset, -Complete, -Length, -Limit."})},
        "patch": {"summary": "tus: append the body at Upload-Offset", "operationId": "tusPatch",
                  "parameters": [KEY, TUS_RESUMABLE, DRAFT, COMPLETE,
                                 header("Upload-Offset", LENGTH, True)],
                  "requestBody": {"required": True, "content": {
                      media: {"schema": {"type": "string", "format": "binary"}}
                      for media in ("application/offset+octet-stream",
                                    "application/partial-upload")}},
                  "responses": write},
        "delete": {"summary": "tus termination", "operationId": "tusTerminate",
                   "parameters": [KEY, TUS_RESUMABLE, DRAFT],
                   "responses": answers({"204": {"description": "Removed."}},
                                        400, 404, 410, 412, 423)},
        "post": {"summary": "tus: PATCH, DELETE or HEAD sent as POST (X-HTTP-Method-Override)",
                 "operationId": "tusOverride",
                 "parameters": [KEY, TUS_RESUMABLE, header(
                     "X-HTTP-Method-Override", {"type": "string",
                                                "enum": ["PATCH", "DELETE", "HEAD"]}, True)],
                 "responses": {**write, "200": {"description": "HEAD's answer."},
                               **answers({}, 405)}},
    })
