"""The statements every chunk costs, built once on the tables.

A chunk request and the catch-up hashing after it run a handful of statements; as ORM-enabled
statements built per call, building them, the ORM's bulk-update bookkeeping and loading
rows into objects took more CPU than storing the chunk's bytes (see docs/performance.md).
These are plain Core statements with bound parameters, so SQLAlchemy compiles each once per
process. They run in the caller's transaction; the service commits.
"""
from typing import NamedTuple

from sqlalchemy import and_, bindparam, case, exists, func, insert, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..core.extensions import db
from ..core.models import Chunk, Upload, UploadEvent, utcnow

uploads, chunks, events = Upload.__table__, Chunk.__table__, UploadEvent.__table__

_this_upload = and_(uploads.c.id == bindparam("b_id"), uploads.c.key == bindparam("b_key"))

_TOUCH = update(uploads).where(_this_upload).values(updated_at=bindparam("b_now"))
# The same, and the hash state carried through chunk b_index saved if the hash stands right
# before it. md5_state is set first: MySQL assigns left to right, each assignment seeing the
# ones before it, and the condition must read hashed_chunks as it was.
_ADVANCES = uploads.c.hashed_chunks == bindparam("b_index")
_TOUCH_AND_HASH = update(uploads).where(_this_upload).ordered_values(
    (uploads.c.updated_at, bindparam("b_now")),
    (uploads.c.md5_state, case((_ADVANCES, bindparam("b_state")), else_=uploads.c.md5_state)),
    (uploads.c.hashed_chunks, case((_ADVANCES, bindparam("b_index") + 1),
                                   else_=uploads.c.hashed_chunks)),
)

_COUNTS = select(
    select(func.count()).where(chunks.c.upload_id == bindparam("b_id")).scalar_subquery(),
    exists().where(chunks.c.upload_id == bindparam("b_id"),
                   chunks.c.chunk_index == bindparam("b_index")),
    uploads.c.hashed_chunks,
).where(_this_upload)

_SET_HASH = update(uploads).where(_this_upload).values(
    hashed_chunks=bindparam("b_hashed"), md5_state=bindparam("b_state"))

_SAVE_HASH = update(uploads).where(
    _this_upload, uploads.c.hashed_chunks == bindparam("b_from")
).values(hashed_chunks=bindparam("b_hashed"), md5_state=bindparam("b_state"))

# The hash state and the stored chunks from where it stands (NULLs: none stored there).
_HASH_AND_READY = (
    select(uploads.c.hashed_chunks, uploads.c.md5_state, chunks.c.chunk_index, chunks.c.size)
    .select_from(uploads.outerjoin(chunks, and_(
        chunks.c.upload_id == uploads.c.id, chunks.c.chunk_index >= uploads.c.hashed_chunks)))
    .where(_this_upload).order_by(chunks.c.chunk_index).limit(bindparam("b_limit"))
)

_STATUS_AND_NEXT = select(
    uploads.c.status,
    exists().where(chunks.c.upload_id == uploads.c.id,
                   chunks.c.chunk_index == uploads.c.hashed_chunks),
).where(_this_upload)

_ADD_EVENT = insert(events)

# tus: bytes appended to the upload.
_RECORD_WRITE = update(uploads).where(_this_upload).values(
    upload_offset=uploads.c.upload_offset + bindparam("b_size"),
    updated_at=bindparam("b_now"), expires_at=bindparam("b_expires"))

_RECORD_HASHED_WRITE = _RECORD_WRITE.values(md5_state=bindparam("b_state"))

# tus: the MD5 state of the upload's bytes (its length is in the state) and what is recorded.
_DATA_HASH = select(uploads.c.status, uploads.c.upload_offset, uploads.c.md5_state).where(
    _this_upload)

_SAVE_DATA_HASH = update(uploads).where(
    _this_upload, uploads.c.md5_state.is_not_distinct_from(bindparam("b_from"))
).values(md5_state=bindparam("b_state"))


class Counts(NamedTuple):
    stored: int  # chunks recorded, before this one
    had_this: bool  # this chunk was recorded before
    hashed: int  # the upload's hashed_chunks


def _ids(upload) -> dict:
    return {"b_id": upload.id, "b_key": upload.key}


def touch(upload, index: int | None = None, state: bytes | None = None) -> bool:
    """Mark the upload updated, locking its row; with `state`, the hash carried through
    chunk `index` is saved too if the upload's hash still stands right before that chunk.
    False if the upload is gone."""
    if state is None:
        done = db.session.execute(_TOUCH, {**_ids(upload), "b_now": utcnow()})
    else:
        done = db.session.execute(_TOUCH_AND_HASH, {**_ids(upload), "b_now": utcnow(),
                                                    "b_index": index, "b_state": state})
    return done.rowcount > 0


def counts(upload, index: int) -> Counts:
    """Read in a statement of its own after touch(): under READ COMMITTED each statement
    sees what was committed when it began, and this one begins once the row lock is held."""
    return Counts(*db.session.execute(_COUNTS, {**_ids(upload), "b_index": index}).one())


def upsert_chunk(upload_id: int, index: int, size: int) -> None:
    """Insert the chunk's row, or update it when the same chunk was stored before (by a
    retry or a racing request): one statement, so no duplicate-key error to recover from."""
    db.session.execute(_upsert(db.session.get_bind().dialect.name),
                       {"upload_id": upload_id, "chunk_index": index, "size": size,
                        "stored_at": utcnow()})


_upserts: dict = {}


def _upsert(dialect: str):
    if dialect not in _upserts:
        if dialect == "mysql":
            statement = mysql_insert(chunks)
            statement = statement.on_duplicate_key_update(
                size=statement.inserted.size, stored_at=statement.inserted.stored_at)
        else:
            statement = sqlite_insert(chunks)
            statement = statement.on_conflict_do_update(
                index_elements=["upload_id", "chunk_index"],
                set_={"size": statement.excluded.size, "stored_at": statement.excluded.stored_at})
        _upserts[dialect] = statement
    return _upserts[dialect]


def add_event(kind: str, upload, **fields) -> None:
    db.session.execute(_ADD_EVENT, {"kind": kind, "owner_id": upload.owner_id,
                                    "upload_key": upload.key, "md5": upload.md5,
                                    "file_name": upload.file_name, "bytes": None,
                                    "duration_ms": None, "created_at": utcnow(), **fields})


def set_hash(upload, hashed: int, state: bytes | None) -> None:
    db.session.execute(_SET_HASH, {**_ids(upload), "b_hashed": hashed, "b_state": state})


def save_hash(upload, start: int, hashed: int, state: bytes) -> bool:
    """Save a catch-up's prefix hash if hashed_chunks is still `start`; whether it was."""
    return db.session.execute(_SAVE_HASH, {**_ids(upload), "b_from": start, "b_hashed": hashed,
                                           "b_state": state}).rowcount > 0


def hash_and_ready(upload, limit: int) -> list:
    """Rows (hashed_chunks, md5_state, chunk_index, size): the hash state, and the stored
    chunks from hashed_chunks on in order (at most limit); [] if the upload is gone."""
    return db.session.execute(_HASH_AND_READY, {**_ids(upload), "b_limit": limit}).all()


def status_and_next(upload):
    """(status, whether the chunk the hash needs next is stored), or None if gone."""
    return db.session.execute(_STATUS_AND_NEXT, _ids(upload)).one_or_none()


def record_write(upload, size: int, now, expires, state: bytes | None = None) -> None:
    """Add size bytes to a tus upload's offset, marking it updated with a new expiry; with
    the MD5 state of its bytes up to the new offset, if the write hashed them."""
    values = {**_ids(upload), "b_size": size, "b_now": now, "b_expires": expires}
    if state is None:
        db.session.execute(_RECORD_WRITE, values)
    else:
        db.session.execute(_RECORD_HASHED_WRITE, {**values, "b_state": state})


def data_hash(upload):
    """(status, upload_offset, md5_state) of a tus upload, or None if it is gone."""
    return db.session.execute(_DATA_HASH, _ids(upload)).one_or_none()


def save_data_hash(upload, start: bytes | None, state: bytes) -> bool:
    """Save a tus upload's new MD5 state if the row still holds `start`; whether it did."""
    return db.session.execute(_SAVE_DATA_HASH, {**_ids(upload), "b_from": start,
                                                "b_state": state}).rowcount > 0
