"""Validation of client input, with the rules API.md decides."""
import re
import unicodedata

from flask import current_app
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validates_schema

from ..services.errors import InvalidInput

MD5_PATTERN = re.compile(r"[0-9a-fA-F]{32}")
# JSON Schema keywords for the OpenAPI document; the validators below are the real rules.
MD5_DOC = {"pattern": "^[0-9a-fA-F]{32}$", "description": "hex MD5 of the whole file"}
NAME_DOC = {"minLength": 1, "maxLength": 255,
            "description": "a plain file name of at most 255 bytes in UTF-8"}
TOTAL_DOC = {"minimum": 0, "description": "number of chunks; at most MAX_TOTAL_CHUNKS; 0 only "
             "for a zero-byte file (md5 d41d8cd98f00b204e9800998ecf8427e)"}
CHUNK_TOTAL_DOC = {"minimum": 1, "description": "number of chunks; at most MAX_TOTAL_CHUNKS"}
FILE_SIZE_DOC = {"minimum": 0, "description": "optional: the whole file's size in bytes; over "
                 "MAX_FILE_SIZE it is refused at once (413), and the merged file must have it"}
CHUNK_MD5_DOC = {"pattern": "^[0-9a-fA-F]{32}$", "description": "optional: hex MD5 of this "
                 "chunk's bytes; a chunk that does not match is refused (400), nothing stored"}
MAX_NAME_BYTES = 255
# The MD5 of no bytes: a zero-byte file may be announced as totalChunks 0 (the front ends do).
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"


def validate_md5(value: str) -> None:
    if not MD5_PATTERN.fullmatch(value):
        raise ValidationError("must be 32 hexadecimal characters.")


def validate_file_name(value: str) -> None:
    """A plain name, as a browser's File.name is: no path, no control characters."""
    if value in ("", ".", ".."):
        raise ValidationError("must be a file name, not empty, '.' or '..'.")
    if "/" in value or "\\" in value:
        raise ValidationError("must be a plain file name without '/' or '\\'.")
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValidationError("must not contain NUL or other control characters.")
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("must be valid Unicode text.") from None
    if len(encoded) > MAX_NAME_BYTES:
        raise ValidationError(f"must be at most {MAX_NAME_BYTES} bytes in UTF-8.")


def validate_total_chunks(value: int) -> None:
    limit = current_app.config["MAX_TOTAL_CHUNKS"]
    if not 1 <= value <= limit:
        raise ValidationError(f"must be between 1 and {limit}.")


def validate_total_or_empty(value: int) -> None:
    """As validate_total_chunks, or 0 (a zero-byte file: checked with the md5 below)."""
    if value != 0:
        validate_total_chunks(value)


def validate_file_size(value: int) -> None:
    if value < 0:
        raise ValidationError("must be a whole number of bytes, 0 or more.")


class FormInteger(fields.Integer):
    """An integer sent as form text: ASCII digits only (no signs, spaces or exponents)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not re.fullmatch(r"[0-9]{1,18}", value):
            raise ValidationError("must be a whole number written in digits.")
        return int(value)


class UploadIdentitySchema(Schema):
    """The JSON body of check-chunks and complete-upload."""

    class Meta:
        unknown = EXCLUDE

    md5 = fields.String(required=True, validate=validate_md5, metadata=MD5_DOC)
    fileName = fields.String(required=True, validate=validate_file_name, metadata=NAME_DOC)
    totalChunks = fields.Integer(strict=True, required=True, validate=validate_total_or_empty,
                                 metadata=TOTAL_DOC)
    fileSize = fields.Integer(strict=True, validate=validate_file_size, metadata=FILE_SIZE_DOC)

    @validates_schema
    def no_chunks_only_when_empty(self, data, **kwargs):
        if data.get("totalChunks") == 0 and data.get("md5", "").lower() != EMPTY_MD5:
            limit = current_app.config["MAX_TOTAL_CHUNKS"]
            raise ValidationError(f"must be between 1 and {limit} (0 only for a zero-byte "
                                  "file).", "totalChunks")


class ChunkFormSchema(Schema):
    """The text fields of an upload-chunk request."""

    class Meta:
        unknown = EXCLUDE

    md5 = fields.String(required=True, validate=validate_md5, metadata=MD5_DOC)
    fileName = fields.String(required=True, validate=validate_file_name, metadata=NAME_DOC)
    totalChunks = FormInteger(required=True, validate=validate_total_chunks,
                              metadata=CHUNK_TOTAL_DOC)
    chunkIndex = FormInteger(required=True, metadata={"minimum": 0})
    fileSize = FormInteger(validate=validate_file_size, metadata=FILE_SIZE_DOC)
    chunkMd5 = fields.String(validate=validate_md5, metadata=CHUNK_MD5_DOC)

    @validates_schema
    def index_in_range(self, data, **kwargs):
        if "chunkIndex" in data and "totalChunks" in data:
            if not data["chunkIndex"] < data["totalChunks"]:
                raise ValidationError("must be less than totalChunks.", "chunkIndex")


class PathIdentitySchema(Schema):
    md5 = fields.String(required=True, validate=validate_md5)
    fileName = fields.String(required=True, validate=validate_file_name)


def load(schema: Schema, data) -> dict:
    """Validate data against schema; bad input becomes a 400 naming every bad field."""
    try:
        result = schema.load(data)
    except ValidationError as exc:
        problems = exc.messages if isinstance(exc.messages, dict) else {"_": exc.messages}
        text = " ".join(f"{field}: {' '.join(map(str, msgs))}" for field, msgs in problems.items())
        raise InvalidInput(f"Invalid input. {text}", fields=problems) from None
    for key in ("md5", "chunkMd5"):
        if key in result:
            result[key] = result[key].lower()
    return result
