"""tus 1.0 uploads on the same store, rows and events as the /api uploads: finding,
creating, concatenating, finishing and terminating them (PATCHes are in writes).

A tus upload is an Upload row (protocol "tus") whose bytes are one stream in the store,
appended at the recorded offset. The row's upload_offset is the truth: bytes are written
(and fsync'd, unless FSYNC is "complete") first, then the new offset is committed; a store
found holding fewer bytes than the offset (a machine crash) lowers the offset. Every write
holds the upload's exclusive lock, so two PATCHes never interleave, on any worker. The bytes
are hashed as PATCHes land (hashing); a finished upload is published exactly like a merged
/api upload.
"""
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

from flask import current_app
from sqlalchemy import select, update

from ...core.database import end_reads
from ...core.extensions import db
from ...core.logs import event_fields
from ...core.models import TUS, Upload, UploadEvent, name_digest, utcnow
from ...storage import UPLOAD_KEY, Concatenation
from .. import access, hashing, metrics
from ..errors import FileTooLarge, InvalidInput, UploadExpired, UploadNotFound
from ..events import outbox, precreate
from ..placement import place_and_finish
from ..stores import holding, lock_wait, store
from ..uploads import check_room, remove

log = logging.getLogger(__name__)

PARTIAL = "partial"
FINAL = "final"


def head(key: str) -> Upload:
    """The upload, for HEAD: its offset is what the store holds."""
    return trust_offset(find(key))


def find(key: str, protocols: tuple[str, ...] = (TUS,), lock: bool = False) -> Upload:
    """The live upload of one of these protocols with this key: 404 if unknown, 410 if
    expired (also once cleanup has removed it: its expired event is kept). With `lock`, the
    row is read under its row lock and the transaction left open, for
    locked(upload, transaction())."""
    if not UPLOAD_KEY.fullmatch(key):
        raise UploadNotFound()
    query = select(Upload).filter_by(key=key, owner_id=access.owner_id()).where(
        Upload.protocol.in_(protocols))
    upload = db.session.execute(
        query.with_for_update() if lock else query).scalar_one_or_none()
    expired = upload is None and db.session.execute(
        select(UploadEvent.id).filter_by(upload_key=key, kind=UploadEvent.EXPIRED).limit(1)
    ).first() is not None
    if not lock:
        end_reads()  # before the lock wait
    if upload is None:
        raise UploadExpired() if expired else UploadNotFound()
    if is_expired(upload):
        raise UploadExpired()
    return upload


def create(length: int | None, file_name: str, metadata: str | None,
           concat: str | None = None, protocol: str = TUS) -> Upload:
    """A new, empty tus upload; a zero-length one is finished at once (not one of the IETF
    draft, which the client completes)."""
    check_size(length or 0)
    client = access.client_id()
    check_room(client)
    if concat != FINAL:  # a final upload is made of parts that were admitted
        precreate.admit(protocol, file_name, uploadLength=length, metadata=metadata,
                        concat=concat)
    key = uuid.uuid4().hex
    store().create(key)  # the bytes' place exists before the row, as for /api uploads
    upload = Upload(key=key, md5="", file_name=file_name, total_chunks=1, protocol=protocol,
                    owner_id=access.owner_id(), client=client,
                    # Never a valid /api file name (NUL), so never an /api upload's identity.
                    name_digest=name_digest(f"\0tus/{key}"),
                    upload_length=length, upload_offset=0, upload_metadata=metadata,
                    concat=concat)
    refresh_expiry(upload)
    db.session.add(upload)
    if concat != PARTIAL:  # parts are not uploads of their own in the statistics
        outbox.record(UploadEvent.CREATED, upload)
    db.session.commit()
    if concat != PARTIAL:
        metrics.upload_created(upload.protocol)
    log.info("%s upload %s created (%s bytes, %s)", protocol, key, length, concat or "single",
             extra=event_fields(UploadEvent.CREATED, upload, upload_length=length,
                                concat=concat))
    if length == 0 and concat is None and protocol == TUS:
        with locked(upload) as upload:
            finish(upload, 0.0)
        store().delete(key)
    return upload


def concatenate(part_keys: list[str], parts_header: str, file_name: str,
                metadata: str | None) -> Upload:
    """A final upload made of finished partial uploads, published at once;
    the parts are removed once it is."""
    parts = [find(key) for key in part_keys]
    with ExitStack() as stack:
        for part in sorted(parts, key=lambda p: p.key):  # one order: no deadlock
            stack.enter_context(locked(part))
        parts = [trust_offset(reload_live(part)) for part in parts]
        for part in parts:
            if part.concat != PARTIAL or part.upload_offset != part.upload_length:
                raise InvalidInput("Every part must be a finished partial upload.")
        total = sum(part.upload_length for part in parts)
        check_size(total)
        final = create(total, file_name, metadata, concat=FINAL)
        final.concat_parts = parts_header
        # The transfer began with the first part: that is what upload time and stats measure.
        final.started_at = min(part.started_at for part in parts)
        started = time.monotonic()
        joined = _concatenation().concatenate([part.key for part in parts])
        final.md5 = joined.md5
        final.upload_offset = joined.size
        final.expires_at = None
        place_and_finish(final, joined, time.monotonic() - started)
        store().delete(final.key)
        for part in parts:
            remove(part, UploadEvent.CONCATENATED)
    return final


def terminate(key: str) -> None:
    """Remove an upload's bytes and row (termination); a finished file goes too."""
    with locked(find(key)) as upload:
        remove(upload, UploadEvent.DELETED)


@contextmanager
def locked(upload: Upload, read_in=None) -> Iterator[Upload]:
    """Hold the upload's exclusive lock (bounded wait: LockBusy) and yield its row, fresh.
    `upload` was just read (or created) by the caller, in `read_in` under its row lock if
    given (stores.holding). A finished upload's row never changes, and its lock protects
    nothing any more."""
    if upload.is_completed:
        yield upload
        return
    with holding(upload.key, exclusive=True, read_in=read_in) as kept:
        yield upload if kept else reload_live(upload)


def finish(upload: Upload, seconds: float, md5: str | None = None,
           check: Callable[[Upload], None] | None = None) -> Upload:
    """Hash the finished bytes (unless their md5 is known; from where the prefix hash
    stands, if it does) and publish them, once `check` passes the placed file (see
    place_and_finish); the caller holds the lock, and deletes the upload's bytes once it
    can."""
    saved = None if md5 else hashing.saved_prefix(upload, lock_wait())
    sealed = store().seal(upload.key, upload.upload_length, md5, saved)
    upload.md5 = sealed.md5
    upload.expires_at = None
    return place_and_finish(upload, sealed, seconds, check)


def is_expired(upload: Upload) -> bool:
    return (not upload.is_completed and upload.expires_at is not None
            and upload.expires_at <= utcnow())


def check_size(size: int) -> None:
    limit = current_app.config["MAX_FILE_SIZE"]
    if size > limit:
        raise FileTooLarge(f"The upload would be {size} bytes; the limit is {limit}.")


def refresh_expiry(upload: Upload) -> None:
    upload.expires_at = utcnow() + current_app.config["TUS_EXPIRY"]


def _concatenation() -> Concatenation:
    found = store()
    if not isinstance(found, Concatenation):
        raise InvalidInput("This server's store cannot concatenate uploads.")
    return found


def reload_live(upload: Upload) -> Upload:
    """The row as committed now, read in a transaction of its own that is already ended:
    a PATCH reads its body next, for as long as its client takes, and an open transaction
    would hold the table's metadata lock all that time (a migration's ALTER TABLE, and every
    statement queued behind it, would wait for it)."""
    end_reads()
    fresh = db.session.execute(
        select(Upload).filter_by(id=upload.id).execution_options(populate_existing=True)
    ).scalar_one_or_none()
    db.session.commit()
    if fresh is None:
        raise UploadNotFound()
    if is_expired(fresh):
        raise UploadExpired()
    return fresh


def trust_offset(upload: Upload) -> Upload:
    """Lower the recorded offset to the bytes the store holds.

    Only a machine crash makes them fewer (with FSYNC "complete", offsets are committed
    before the bytes reach the disk); the client then resumes from what is really there.
    """
    if (upload.is_completed or upload.concat == FINAL or not upload.upload_offset
            or store().durable):
        return upload
    held = store().size(upload.key)
    if held >= upload.upload_offset:
        return upload
    lowered = db.session.execute(
        update(Upload).filter_by(id=upload.id, key=upload.key,
                                 upload_offset=upload.upload_offset)
        .values(upload_offset=held, md5_state=None)).rowcount  # the hash restarts from 0
    db.session.commit()
    if lowered:
        log.warning("tus upload %s: %d bytes recorded but %d on disk (lost in a crash); "
                    "the offset is now %d", upload.key, upload.upload_offset, held, held)
    return reload_live(upload)


