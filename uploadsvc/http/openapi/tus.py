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
    410: "The upload has expired.",
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
            "409": error(409, "The upload is not finished (`upload_unfinished`): HEAD gives "
                              "its offset, PATCH sends the rest."),
            "410": error(410, TUS_ERRORS[410])}}}


def add_paths(spec: APISpec, config: Mapping) -> None:
    """Register the tus operations under the configured prefix (TUS_PREFIX, as tus.init_app
    made it)."""
    prefix = str(config["TUS_PREFIX"]).rstrip("/")
    discovery = {"summary": "tus discovery: versions, extensions, Tus-Max-Size",
                 "security": [], "responses": {"204": {"description": "Capabilities."}}}
    write = answers({"204": {"description": "Stored; Upload-Offset is the new offset."}},
                    400, 403, 404, 409, 410, 412, 413, 415, 423, 460, 507)
    spec.path(prefix + "/", operations={
        "options": {**discovery, "operationId": "tusDiscovery"},
        "post": {
            "summary": "tus creation (also -with-upload, -defer-length, concatenation)",
            "operationId": "tusCreate",
            "parameters": [TUS_RESUMABLE, header("Upload-Length", LENGTH),
                           header("Upload-Defer-Length", {"type": "string", "enum": ["1"]}),
                           header("Upload-Metadata", {"type": "string"}),
                           header("Upload-Concat", {"type": "string"})],
            "responses": answers({"201": {"description": "Created; Location names it."}},
                                 400, 403, 404, 409, 410, 412, 413, 415, 423, 460, 507)}})
    spec.path(prefix + "/{key}", operations={
        "options": {**discovery, "operationId": "tusDiscoveryOfUpload", "parameters": [KEY]},
        **download(config),
        "head": {"summary": "tus: the upload's offset and length", "operationId": "tusHead",
                 "parameters": [KEY, TUS_RESUMABLE],
                 "responses": answers({"200": {"description": "Upload-Offset, -Length."}},
                                      404, 410, 412, body=False)},
        "patch": {"summary": "tus: append the body at Upload-Offset", "operationId": "tusPatch",
                  "parameters": [KEY, TUS_RESUMABLE, header("Upload-Offset", LENGTH, True)],
                  "requestBody": {"required": True, "content": {
                      "application/offset+octet-stream": {
                          "schema": {"type": "string", "format": "binary"}}}},
                  "responses": write},
        "delete": {"summary": "tus termination", "operationId": "tusTerminate",
                   "parameters": [KEY, TUS_RESUMABLE],
                   "responses": answers({"204": {"description": "Removed."}},
                                        404, 410, 412, 423)},
        "post": {"summary": "tus: PATCH, DELETE or HEAD sent as POST (X-HTTP-Method-Override)",
                 "operationId": "tusOverride",
                 "parameters": [KEY, TUS_RESUMABLE, header(
                     "X-HTTP-Method-Override", {"type": "string",
                                                "enum": ["PATCH", "DELETE", "HEAD"]}, True)],
                 "responses": {**write, "200": {"description": "HEAD's answer."},
                               **answers({}, 405)}},
    })
