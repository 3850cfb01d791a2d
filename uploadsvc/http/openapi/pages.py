"""Downloads of completed files and the upload page, for the OpenAPI document.

Their routes stay registered when UPLOADSVC_DOWNLOADS or UPLOADSVC_UPLOAD_PAGE is off (each
request checks the switch and answers 404), so the URL map cannot tell: the switches decide
here what is listed.
"""
from collections.abc import Mapping

from apispec import APISpec

from .api import ERRORS
from .responses import UNAVAILABLE

BINARY = {"*/*": {"schema": {"type": "string", "format": "binary"}}}


def error(status: int, description: str | None = None) -> dict:
    return {"description": description or ERRORS[status],
            "content": {"application/json": {"schema": "Error"}}}


REDIRECT = {"description": "Only with UPLOADSVC_S3_PRESIGNED_DOWNLOADS on an object store, "
                           "for GET (HEAD is answered here): fetch the file at Location, a "
                           "presigned URL of the store (Range works there too; send no "
                           "Authorization to it), valid for that many seconds.",
            "headers": {"Location": {"required": True, "schema": {"type": "string",
                                                                  "format": "uri"}}}}


def download_answers(not_found: str) -> dict:
    """The answers of a finished file's download (at its path, or its tus upload's URL)."""
    return {
        "200": {"description": "The whole file, as an attachment.", "content": BINARY},
        "206": {"description": "The requested byte range.", "content": BINARY},
        "304": {"description": "Not modified (If-None-Match / If-Modified-Since)."},
        "307": REDIRECT,
        "404": error(404, not_found),
        "416": error(416, "The range is outside the file (Content-Range says its size)."),
        "401": error(401), "429": error(429), "500": error(500), "503": UNAVAILABLE,
    }


def add_paths(spec: APISpec, config: Mapping) -> None:
    """Register the download route and the page's routes on spec, those that are on."""
    if config["DOWNLOADS"]:
        spec.path("/uploads/{stored_name}", operations={"get": {
            "summary": "Download a completed file (Range, If-Range and ETag supported)",
            "operationId": "download",
            "description": "Listed unless UPLOADSVC_DOWNLOADS is false.",
            "parameters": [{"in": "path", "name": "stored_name", "required": True,
                            "schema": {"type": "string", "minLength": 1}}],
            "responses": download_answers("No such file (or it is another key's).")}})
    if not config["UPLOAD_PAGE"]:
        return
    page = {"200": {"description": "The resource.", "content": BINARY},
            "304": {"description": "Not modified."},
            "404": error(404, "No such file."),
            "429": error(429), "500": error(500)}
    spec.path("/", operations={"get": {
        "summary": "The upload page (HTML)", "operationId": "uploadPage", "security": [],
        "responses": page}})
    spec.path("/page/{filename}", operations={"get": {
        "summary": "The page's scripts and styles", "operationId": "pageAsset", "security": [],
        "parameters": [{"in": "path", "name": "filename", "required": True,
                        "schema": {"type": "string", "minLength": 1}}],
        "responses": page}})
    spec.path("/vendor/{name}", operations={"get": {
        "summary": "A whitelisted browser library of the page", "operationId": "vendorFile",
        "security": [],
        "parameters": [{"in": "path", "name": "name", "required": True,
                        "schema": {"type": "string", "minLength": 1}}],
        "responses": page}})
