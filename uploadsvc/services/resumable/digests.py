"""Digests of RFC 9530 for the draft's uploads: Content-Digest of one request's body, and
Repr-Digest of the whole representation, checked when the upload completes.

MD5 is what the service computes anyway as the bytes arrive (hashing); SHA-256 is computed
only when asked for: beside the receive when the whole representation comes in one request,
else by reading the placed file once, before its upload is recorded as completed (until
then no one is served it).
"""
import hashlib
import json
import logging
from collections.abc import Callable, Mapping

from ...core.logs import event_fields
from ...core.models import Upload, UploadEvent
from .. import metrics
from ..errors import UploadError
from ..stores import store
from ..uploads import remove

log = logging.getLogger(__name__)

# RFC 9530 names (IANA's hash algorithm registry) and hashlib's.
ALGORITHMS = {"md5": "md5", "sha-256": "sha256"}
READ_SIZE = 1024 * 1024


class ContentDigestMismatch(UploadError):
    code = "content_digest_mismatch"
    message = "The body does not match Content-Digest; none of it was stored, send it again."


class ReprDigestMismatch(UploadError):
    status = 422
    code = "repr_digest_mismatch"
    message = "The whole upload does not match Repr-Digest; it was not kept."


def hashers(wanted: Mapping[str, bytes] | None) -> dict[str, "hashlib._Hash"]:
    """A fresh hasher per algorithm asked for."""
    return {name: hashlib.new(ALGORITHMS[name]) for name in wanted or {}}


def check_content(expected: Mapping[str, bytes], computed: Mapping) -> bool:
    return all(computed[name].digest() == value for name, value in expected.items())


def expected(upload: Upload) -> dict[str, str]:
    """The upload's representation digests known so far, algorithm: hex."""
    return json.loads(upload.repr_digest) if upload.repr_digest else {}


def encode(digests: Mapping[str, bytes] | None) -> str | None:
    return json.dumps({k: v.hex() for k, v in digests.items()}) if digests else None


def checker(sha256: str | None, want_sha256: bool) -> Callable[[Upload], None]:
    """The check of a placed file against the upload's Repr-Digest (its md5 is known by
    then; `sha256` if computed beside the receive, else read from the file when asked)."""

    def check(upload: Upload) -> None:
        wanted = expected(upload)
        sha = sha256
        if sha is None and (want_sha256 or "sha-256" in wanted):
            sha = sha256_of_placed(upload)
        computed = {"md5": upload.md5, "sha-256": sha}
        if any(computed[name] not in (None, value) for name, value in wanted.items()):
            fail(upload)
        if sha is not None:
            upload.repr_digest = json.dumps({**wanted, "sha-256": sha})

    return check


def sha256_of_placed(upload: Upload) -> str:
    """The SHA-256 of the file placed for the upload (not recorded as completed yet)."""
    digest = hashlib.sha256()
    with store().open_file(upload.stored_name) as placed:
        while block := placed.read(READ_SIZE):
            digest.update(block)
    return digest.hexdigest()


def fail(upload: Upload) -> None:
    """The finished representation is not the one described: it goes, and so does the
    upload (a verification_failed event, no deleted one)."""
    log.warning("upload %s does not match its Repr-Digest", upload.key,
                extra=event_fields(UploadEvent.VERIFICATION_FAILED, upload,
                                   bytes=upload.upload_offset))
    metrics.verification_failed(upload.protocol)
    offset = upload.upload_offset
    remove(upload, UploadEvent.VERIFICATION_FAILED)
    raise ReprDigestMismatch(uploadOffset=offset, complete=True)
