"""Names on disk: the service picks them from the client's name, never uses it raw."""
import os
import unicodedata
from collections.abc import Iterator

# Characters that are unsafe or reserved on some filesystem a file may later be copied to.
_RESERVED_CHARS = set('<>:"/\\|?*')
_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL"} | {
    f"{port}{n}" for port in ("COM", "LPT") for n in range(10)
}
# Room left under the usual 255-byte limit for a " (12345)" suffix.
MAX_STEM_BYTES = 200


def safe_name(file_name: str) -> str:
    """A portable, harmless file name that looks like the client's name."""
    name = unicodedata.normalize("NFC", file_name)
    # Control, format (e.g. right-to-left override), surrogate and unassigned characters.
    name = "".join(
        "_" if ch in _RESERVED_CHARS or unicodedata.category(ch)[0] == "C" else ch for ch in name
    )
    name = name.strip(" .") or "file"
    stem, ext = os.path.splitext(name)
    if stem.split(".")[0].upper() in _WINDOWS_DEVICES:
        stem = "_" + stem
    if len(ext.encode()) > 16:
        stem, ext = stem + ext, ""
    return _truncate(stem, MAX_STEM_BYTES - len(ext.encode())) + ext


def candidates(file_name: str) -> Iterator[str]:
    """Stored-name choices in order: ``name.ext``, ``name (1).ext``, ``name (2).ext``, ..."""
    base = safe_name(file_name)
    stem, ext = os.path.splitext(base)
    yield base
    n = 1
    while True:
        yield f"{stem} ({n}){ext}"
        n += 1


def _truncate(text: str, max_bytes: int) -> str:
    encoded = text.encode("utf-8")[:max_bytes]
    return encoded.decode("utf-8", errors="ignore") or "file"
