"""Parsing of tus 1.0 request headers; each bad value is a 400 in the API's error shape."""
import base64
import binascii
import re
import unicodedata
from urllib.parse import urlsplit

from ..services.errors import InvalidInput
from ..services.tus.writes import Checksum
from ..storage import UPLOAD_KEY
from .schemas import MAX_NAME_BYTES

# hashlib names offered for Upload-Checksum, preferred first (tus requires sha1).
CHECKSUM_ALGORITHMS = ("sha1", "md5", "sha256", "sha512")
_DIGITS = re.compile(r"[0-9]{1,18}")
_METADATA_KEY = re.compile(r"[\x21-\x7e]+")  # printable ASCII without spaces (commas below)


def integer(headers, name: str) -> int | None:
    """A non-negative integer header, or None when absent."""
    value = headers.get(name)
    if value is None:
        return None
    if not _DIGITS.fullmatch(value.strip()):
        raise InvalidInput(f"{name} must be a non-negative whole number.")
    return int(value)


def metadata(raw: str | None) -> dict[str, bytes]:
    """Upload-Metadata: comma-separated `key base64value` pairs (the value may be absent)."""
    pairs: dict[str, bytes] = {}
    if raw is None or not raw.strip():
        return pairs
    for item in raw.split(","):
        parts = item.strip().split(" ")
        key = parts[0]
        if not _METADATA_KEY.fullmatch(key) or len(parts) > 2 or key in pairs:
            raise InvalidInput("Upload-Metadata must be unique `key base64` pairs.")
        try:
            pairs[key] = base64.b64decode(parts[1], validate=True) if len(parts) == 2 else b""
        except (binascii.Error, ValueError):
            raise InvalidInput(f"Upload-Metadata value of {key!r} is not base64.") from None
    return pairs


def encode(value: str) -> str:
    """A metadata value as Upload-Metadata carries it (base64 of its UTF-8)."""
    return base64.b64encode(value.encode("utf-8")).decode("ascii")


def file_name(meta: dict[str, bytes]) -> str:
    """The display name from metadata (Uppy and tus-js-client send `filename`), made a plain
    name: the last path segment, no control characters, at most 255 bytes."""
    raw = meta.get("filename") or meta.get("name") or b""
    name = raw.decode("utf-8", errors="replace").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch) != "Cc")
    name = name.encode("utf-8")[:MAX_NAME_BYTES].decode("utf-8", errors="ignore")
    return name if name not in ("", ".", "..") else "upload"


def checksum(value: str | None) -> Checksum | None:
    """Upload-Checksum: `<algorithm> <base64 digest>`."""
    if value is None:
        return None
    parts = value.strip().split(" ")
    if len(parts) != 2 or parts[0].lower() not in CHECKSUM_ALGORITHMS:
        raise InvalidInput("Upload-Checksum algorithm not supported; see Tus-Checksum-Algorithm.")
    try:
        return Checksum(parts[0].lower(), base64.b64decode(parts[1], validate=True))
    except (binascii.Error, ValueError):
        raise InvalidInput("Upload-Checksum digest is not base64.") from None


def final_parts(value: str) -> list[str]:
    """The upload keys of `final;<url> <url> ...`: each URL (absolute, or a path) ends in an
    upload's key. Only the key counts, so URLs rewritten by a proxy or TUS_BASE_URL work."""
    urls = value[len("final;"):].split()
    if not urls:
        raise InvalidInput("Upload-Concat: final; names no partial uploads.")
    keys = [urlsplit(url).path.rstrip("/").rpartition("/")[2] for url in urls]
    if not all(UPLOAD_KEY.fullmatch(key) for key in keys):
        raise InvalidInput("Upload-Concat names an upload that is not on this server.")
    if len(set(keys)) != len(keys):
        raise InvalidInput("Upload-Concat names a partial upload twice.")
    return keys
