"""The IETF draft's header fields (Structured Fields, RFC 8941), its interop versions, its
104 interim response and its problem+json errors."""
import base64
import binascii
import json
import re
import socket

from flask import current_app, g, request

from ..core.models import Upload, utcnow
from ..services.errors import InvalidInput

# The interop versions served, and the draft each was read from (docs/resumable.md).
VERSIONS = {6: "-05", 7: "-08", 8: "-11", 9: "-12"}
VERSION_HEADER = "Upload-Draft-Interop-Version"
PARTIAL_UPLOAD = "application/partial-upload"
PROBLEM = "application/problem+json"
PROBLEM_BASE = "https://iana.org/assignments/http-problem-types#"
# Error codes that are problem types of the draft: (type, title, first interop version).
PROBLEMS = {
    "offset_mismatch": ("mismatching-upload-offset",
                        "offset from request does not match offset of resource", 6),
    "completed_upload": ("completed-upload", "upload is already completed", 6),
    "inconsistent_upload_length": ("inconsistent-upload-length",
                                   "inconsistent length values for upload", 7),
}
_INTEGER = re.compile(r"-?[0-9]{1,15}")
# Digest algorithms of RFC 9530 offered here, and their sizes in bytes.
DIGEST_SIZES = {"md5": 16, "sha-256": 32}


def interop_version() -> int | None:
    """The interop version this request speaks, if it is one served here and the request
    does not speak tus 1.0 (Tus-Resumable wins)."""
    value = request.headers.get(VERSION_HEADER)
    if value is None or "Tus-Resumable" in request.headers:
        return None
    value = value.strip()
    return int(value) if _INTEGER.fullmatch(value) and int(value) in VERSIONS else None


def boolean(name: str) -> bool | None:
    """An sf-boolean header (?1, ?0), None when absent."""
    value = request.headers.get(name)
    if value is None:
        return None
    value = value.strip()
    if value not in ("?0", "?1"):
        raise InvalidInput(f"{name} must be ?0 or ?1.")
    return value == "?1"


def digests(name: str) -> dict[str, bytes]:
    """Repr-Digest or Content-Digest (RFC 9530): a Dictionary of algorithm = :base64:, the
    algorithms offered here kept (md5, sha-256; others are ignored, as the RFC allows)."""
    found: dict[str, bytes] = {}
    for member in _members(name):
        key, _, value = member.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not (value.startswith(":") and value.endswith(":") and len(value) >= 2):
            raise InvalidInput(f"{name} must be algorithm=:base64:, ...")
        try:
            digest = base64.b64decode(value[1:-1], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(f"{name}: {key} is not base64.") from None
        if key in DIGEST_SIZES:
            if len(digest) != DIGEST_SIZES[key]:
                raise InvalidInput(f"{name}: {key} has the wrong length.")
            found[key] = digest
    return found


def wants_sha256() -> bool:
    """Whether Want-Repr-Digest asks for sha-256 (a preference above 0)."""
    for member in _members("Want-Repr-Digest"):
        key, _, weight = member.partition("=")
        if key.strip().lower() == "sha-256" and weight.strip() not in ("0", ""):
            return True
    return False


def repr_digest(upload: Upload) -> str | None:
    """Repr-Digest of a completed upload: its MD5, and its SHA-256 if it was computed."""
    if not upload.is_completed or not upload.md5:
        return None
    known = {"md5": bytes.fromhex(upload.md5)}
    if upload.repr_digest and "sha-256" in json.loads(upload.repr_digest):
        known["sha-256"] = bytes.fromhex(json.loads(upload.repr_digest)["sha-256"])
    return ", ".join(f"{k}=:{base64.b64encode(v).decode()}:" for k, v in known.items())


def _members(name: str) -> list[str]:
    value = request.headers.get(name, "")
    return [member for member in (part.strip() for part in value.split(",")) if member]


def flag(value: bool) -> str:
    return "?1" if value else "?0"


def limits(upload: Upload | None = None) -> str:
    """Upload-Limit: the size limit, and for an unfinished upload its remaining life
    (`expires` in interop 6, `max-age` after it)."""
    parts = [f"max-size={current_app.config['MAX_FILE_SIZE']}"]
    if upload is not None and not upload.is_completed and upload.expires_at is not None:
        left = max(0, int((upload.expires_at - utcnow()).total_seconds()))
        parts.append(f"{'expires' if g.interop == 6 else 'max-age'}={left}")
    return ", ".join(parts)


def announce(environ: dict, headers: dict) -> bool:
    """Write a 104 Upload Resumption Supported on the client's connection, before the final
    answer: only where gunicorn hands over its socket (environ["gunicorn.socket"]), only on
    HTTP/1.1, and unless RESUMABLE_INTERIM is off; whether it was sent."""
    sock = environ.get("gunicorn.socket")
    if (sock is None or environ.get("SERVER_PROTOCOL") != "HTTP/1.1"
            or not current_app.config["RESUMABLE_INTERIM"]):
        return False
    lines = ["HTTP/1.1 104 Upload Resumption Supported",
             *(f"{name}: {value}" for name, value in headers.items()), "", ""]
    try:
        sock.sendall("\r\n".join(lines).encode("latin-1"))
    except (OSError, socket.timeout):
        return False
    return True


def error_answer(status: int, code: str, message: str, headers: dict, extra: dict):
    """An error of a draft request: problem+json where the draft defines the problem type
    (with the API's own members beside the problem's), the API's JSON otherwise. Each one
    says the upload is not complete, and gives its offset where it is known."""
    extra = dict(extra)
    complete = bool(extra.pop("complete", False))
    body = {"success": False, "error": code, "message": message, **extra}
    headers = {**headers, "Content-Type": "application/json",
               "Upload-Complete": flag(complete)}
    offset = extra.get("uploadOffset")
    if offset is not None:
        headers["Upload-Offset"] = str(offset)
    if status == 413:
        headers["Upload-Limit"] = limits()
    problem = PROBLEMS.get(code)
    if problem is not None and g.interop >= problem[2]:
        kind, title, _ = problem
        body = {"type": PROBLEM_BASE + kind, "title": title, **body}
        if code == "offset_mismatch":
            body["expected-offset"] = offset
            provided = request.headers.get("Upload-Offset", "").strip()
            if provided.isdigit():
                body["provided-offset"] = int(provided)
        headers["Content-Type"] = PROBLEM
    return json.dumps(body), status, headers
