"""Offset retrieval and cancellation of the draft's uploads: each first takes the upload
over from any request still running on it (takeover)."""
from ...core.models import Upload, UploadEvent
from ..stores import holding
from ..tus.uploads import reload_live, trust_offset
from ..uploads import remove
from .takeover import take_over


def offset(key: str) -> Upload:
    """The upload once any earlier request on it has ended, so that the offset answered is
    the one the next append must send."""
    upload = take_over(key)
    if upload.is_completed:
        return upload
    with holding(upload.key, exclusive=True):
        return trust_offset(reload_live(upload))


def cancel(key: str) -> None:
    """Remove the upload and its bytes (its file too, if it was finished), as tus
    termination does."""
    upload = take_over(key)
    if upload.is_completed:
        remove(upload, UploadEvent.DELETED)
        return
    with holding(upload.key, exclusive=True):
        remove(reload_live(upload), UploadEvent.DELETED)
