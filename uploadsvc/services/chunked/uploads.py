"""Chunked uploads of /api: their identity, state and removal (storing chunks is in
chunks, completing in completion).

Order of durability: bytes are written (and fsync'd, unless FSYNC is "complete") first, then
the row that says they exist is committed. Transactions are ended before any long I/O or
lock wait, so a slow disk never holds a database lock. Requests for one upload coordinate
through its lock (shared for chunk writes, exclusive for merge and delete) and through
unique constraints, never through process memory.
"""
import logging
import uuid
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import delete, exists, select, update
from sqlalchemy.exc import IntegrityError

from ...core.extensions import db
from ...core.logs import event_fields
from ...core.models import Chunk, Upload, UploadEvent, name_digest
from ...storage import UploadGone
from .. import access, hashing, metrics
from ..errors import FileSizeConflict, FileTooLarge, MergeInProgress, UploadNotFound
from ..events import outbox, precreate
from ..stores import chunk_files, holding, store
from ..uploads import check_room, reload, remove

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    """How many of an upload's chunks are stored."""

    uploaded: int
    total: int

    @property
    def percent(self) -> int:
        return 100 * self.uploaded // self.total if self.total else 100


def find(md5: str, file_name: str) -> Upload | None:
    """The upload with this identity of this request's owner, if any."""
    query = select(Upload).filter_by(owner_id=access.owner_id(), md5=md5,
                                     name_digest=name_digest(file_name))
    return db.session.execute(query).scalar_one_or_none()


def find_with_chunk(md5: str, file_name: str, index: int,
                    lock: bool) -> tuple[Upload | None, bool]:
    """find(), and whether chunk `index` is recorded, in one statement; with `lock`, under
    the upload's row lock (see stores.joins_transaction)."""
    recorded = exists().where(Chunk.upload_id == Upload.id, Chunk.chunk_index == index)
    query = select(Upload, recorded).filter_by(owner_id=access.owner_id(), md5=md5,
                                               name_digest=name_digest(file_name))
    found = db.session.execute(query.with_for_update() if lock else query).one_or_none()
    return (None, False) if found is None else (found[0], bool(found[1]))


def stored_indices(upload: Upload) -> list[int]:
    query = select(Chunk.chunk_index).filter_by(upload_id=upload.id).order_by(Chunk.chunk_index)
    return list(db.session.execute(query).scalars())


def status(md5: str, file_name: str) -> tuple[Upload, list[int]]:
    """An upload and its stored chunk indices; 404 if never seen or deleted."""
    upload = find(md5, file_name)
    if upload is None:
        raise UploadNotFound()
    return upload, [] if upload.is_completed else stored_indices(upload)


def delete_upload(md5: str, file_name: str) -> None:
    """Remove an upload's chunks, state and, once completed, its file under this name."""
    upload = find(md5, file_name)
    if upload is None:
        raise UploadNotFound()
    with holding(upload.key, exclusive=True):
        remove(reload(upload), UploadEvent.DELETED)


def check_file_size(file_size: int | None) -> None:
    """Refuse a declared file size over MAX_FILE_SIZE (413), before anything is recorded."""
    limit = current_app.config["MAX_FILE_SIZE"]
    if file_size is not None and file_size > limit:
        raise FileTooLarge(f"The file is {file_size} bytes; the limit is {limit}.")


def note_file_size(upload: Upload, file_size: int | None) -> Upload:
    """Record the whole file's size as the client declared it, once; another one is a 409."""
    if file_size is None or upload.is_completed or upload.file_size == file_size:
        return upload
    if upload.file_size is None:
        db.session.execute(update(Upload).filter_by(id=upload.id, key=upload.key, file_size=None)
                           .values(file_size=file_size))
        upload = reload(upload)
        db.session.commit()
    if upload.file_size != file_size:
        raise FileSizeConflict()
    return upload


def get_or_create(md5: str, file_name: str, total: int, file_size: int | None = None) -> Upload:
    """This request's upload with this identity, created (with room for its bytes) if new."""
    for _ in range(3):
        upload = find(md5, file_name)
        if upload is not None:
            return upload
        client = access.client_id()
        check_room(client)
        precreate.admit("api", file_name, md5=md5, totalChunks=total, fileSize=file_size)
        # The bytes' place exists before the row does, so every row's exists.
        key = uuid.uuid4().hex
        store().create(key)
        upload = Upload(key=key, md5=md5, file_name=file_name, owner_id=access.owner_id(),
                        client=client, name_digest=name_digest(file_name), total_chunks=total,
                        file_size=file_size)
        db.session.add(upload)
        outbox.record(UploadEvent.CREATED, upload)
        try:
            db.session.commit()
            metrics.upload_created(upload.protocol)
            log.info("upload %s created (%s, %s, %d chunks)", key, md5, file_name, total,
                     extra=event_fields(UploadEvent.CREATED, upload, total_chunks=total))
            return upload
        except IntegrityError:  # another request created it first
            db.session.rollback()
            store().delete(key)
    raise MergeInProgress("This upload is being created concurrently; retry.")


def forget_chunks(upload: Upload) -> None:
    """Delete the rows of the upload's chunks and start its hash again."""
    db.session.execute(delete(Chunk).filter_by(upload_id=upload.id))
    hashing.restart(upload)
    db.session.commit()


def forget_if_lost_in_restart(upload: Upload) -> None:
    """Forget the chunks of an upload written without fsync before the machine restarted:
    any of them may hold zeros, so the client is told to send them again."""
    if not store().lost_in_restart(upload.key):
        return
    with holding(upload.key, exclusive=True):
        upload = reload(upload)
        if not upload.is_completed and store().lost_in_restart(upload.key):
            clear_chunks(upload)


def clear_chunks(upload: Upload) -> None:
    """Rows first, then bytes; the caller holds the upload's exclusive lock."""
    forget_chunks(upload)
    try:
        chunk_files().clear(upload.key)
    except UploadGone:
        return  # nothing left to clear
    log.warning("upload %s: its chunks were written without fsync before the machine "
                "restarted; forgotten, to be sent again", upload.key)


def forget_lost_file(upload: Upload) -> None:
    """A completed upload whose file was removed by hand is forgotten, so it can be sent
    again."""
    gone = db.session.execute(delete(Upload).filter_by(id=upload.id, key=upload.key,
                                                       status=upload.status))
    if gone.rowcount:
        outbox.record(UploadEvent.DELETED, upload)
        log.warning("upload %s: its file %s is gone from the store; forgotten",
                    upload.key, upload.stored_name)
    db.session.commit()
