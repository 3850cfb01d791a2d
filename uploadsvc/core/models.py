"""Upload state and its rules. Models never commit and never touch files."""
import hashlib
from datetime import UTC, date, datetime

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db

UPLOADING = "uploading"
COMPLETED = "completed"
# Upload.protocol: chunks through /api, or one data file through the tus endpoint, in tus 1.0
# or in the IETF resumable upload draft (chosen by the request's headers).
API = "api"
TUS = "tus"
IETF = "ietf"
# The protocols whose bytes are one stream appended at the recorded offset.
STREAMED = (TUS, IETF)

# MySQL's DATETIME drops fractions unless asked; the API reports milliseconds.
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")
# MySQL tables in utf8mb4 (4-byte characters such as emoji in names) whatever the server's
# default, compared byte for byte (stored names are file names: "a.txt" is not "A.txt").
MYSQL_TABLE = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


def utcnow() -> datetime:
    """Naive UTC now: what the columns store on every backend."""
    return datetime.now(UTC).replace(tzinfo=None)


def name_digest(file_name: str) -> str:
    """Fixed-width key for a file name, so uniqueness is exact (binary) on every backend."""
    return hashlib.sha256(file_name.encode("utf-8")).hexdigest()


class Upload(db.Model):
    """One file being uploaded, or uploaded, under one (owner, md5, file name)."""

    __tablename__ = "uploads"
    __table_args__ = (UniqueConstraint("owner_id", "md5", "name_digest"), MYSQL_TABLE)

    id: Mapped[int] = mapped_column(primary_key=True)
    # The API key that created it, 0 when access control is off: an upload is only ever seen
    # by its owner. Not NULL, so that the unique constraint holds for keyless uploads too.
    owner_id: Mapped[int] = mapped_column(default=0, server_default="0")
    # Who created it, for the per-client limit of unfinished uploads: key:<id> or ip:<address>.
    client: Mapped[str] = mapped_column(String(64), default="", server_default="", index=True)
    # Server-made storage key: the only thing chunk paths are built from.
    key: Mapped[str] = mapped_column(String(32), unique=True)
    md5: Mapped[str] = mapped_column(String(32), index=True)
    file_name: Mapped[str] = mapped_column(String(255))
    name_digest: Mapped[str] = mapped_column(String(64))
    total_chunks: Mapped[int]
    # Size of every chunk but the last, once a non-last chunk has been seen.
    chunk_size: Mapped[int | None] = mapped_column(BigInteger)
    # The whole file's size as the client declared it (fileSize, optional); the merged file
    # must have it. `size` is what the finished file has.
    file_size: Mapped[int | None] = mapped_column(BigInteger)
    size: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default=UPLOADING, index=True)
    # Name under uploads/, reserved before the merge places the file there.
    stored_name: Mapped[str | None] = mapped_column(String(255), unique=True)
    started_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, index=True)
    completed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # Chunks 0..hashed_chunks-1 are assembled and hashed into md5_state (a saved MD5 context),
    # so completing needs no second pass; -1 once a chunk was re-sent: merge in one pass.
    hashed_chunks: Mapped[int] = mapped_column(default=0, server_default="0")
    md5_state: Mapped[bytes | None] = mapped_column(LargeBinary(128))

    # How the upload arrives: "api" (chunks of /api) or "tus" (one data file, see tus_service).
    # A tus upload's md5 is "" until the service has hashed the finished file.
    protocol: Mapped[str] = mapped_column(String(8), default=API, server_default=API)
    # tus only: declared length (None while deferred), bytes stored so far, the raw
    # Upload-Metadata header, when an unfinished upload expires, and concatenation:
    # concat "partial" or "final", concat_parts the final's Upload-Concat part list.
    upload_length: Mapped[int | None] = mapped_column(BigInteger)
    upload_offset: Mapped[int | None] = mapped_column(BigInteger)
    upload_metadata: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(Timestamp, index=True)
    concat: Mapped[str | None] = mapped_column(String(8))
    concat_parts: Mapped[str | None] = mapped_column(Text)
    # ietf only: raised by every request that takes the upload over (offset retrieval,
    # append, cancellation); a request still reading a body under an older value stops,
    # as the draft recommends, so that the newer one need not wait for it.
    generation: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # ietf only: the representation's digests (RFC 9530 Repr-Digest) as JSON, algorithm:
    # hex; the creation's are checked at completion, and a SHA-256 computed then is kept.
    repr_digest: Mapped[str | None] = mapped_column(Text)

    chunks: Mapped[list["Chunk"]] = relationship(
        back_populates="upload", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def is_completed(self) -> bool:
        return self.status == COMPLETED

    @property
    def path(self) -> str | None:
        """The file's URL path, also its place under the data directory."""
        return f"/uploads/{self.stored_name}" if self.is_completed else None

    @property
    def upload_time_ms(self) -> int:
        end = self.completed_at or utcnow()
        return int((end - self.started_at).total_seconds() * 1000)

    def mark_completed(self, size: int) -> None:
        self.status = COMPLETED
        self.size = size
        self.completed_at = self.updated_at = utcnow()


class Chunk(db.Model):
    """A chunk whose bytes are durably stored; the row is the truth about what is stored."""

    __tablename__ = "chunks"
    __table_args__ = (UniqueConstraint("upload_id", "chunk_index"), MYSQL_TABLE)

    id: Mapped[int] = mapped_column(primary_key=True)
    upload_id: Mapped[int] = mapped_column(ForeignKey("uploads.id", ondelete="CASCADE"))
    chunk_index: Mapped[int]
    size: Mapped[int] = mapped_column(BigInteger)
    stored_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    upload: Mapped[Upload] = relationship(back_populates="chunks")


class UploadEvent(db.Model):
    """What happened to uploads, kept after the upload itself is gone; stats read it."""

    __tablename__ = "upload_events"
    __table_args__ = MYSQL_TABLE

    CREATED = "created"
    CHUNK_STORED = "chunk_stored"
    COMPLETED = "completed"
    VERIFICATION_FAILED = "verification_failed"
    DELETED = "deleted"
    EXPIRED = "expired"
    # A finished tus partial upload, consumed by the final upload it was concatenated into.
    CONCATENATED = "concatenated"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    # The owner of the upload (Upload.owner_id): an owner sees only the events of theirs.
    owner_id: Mapped[int] = mapped_column(default=0, server_default="0", index=True)
    upload_key: Mapped[str] = mapped_column(String(32), index=True)
    md5: Mapped[str] = mapped_column(String(32))
    file_name: Mapped[str] = mapped_column(String(255))
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, index=True)

    @classmethod
    def of(cls, kind: str, upload: Upload, **fields) -> "UploadEvent":
        return cls(kind=kind, owner_id=upload.owner_id, upload_key=upload.key, md5=upload.md5,
                   file_name=upload.file_name, **fields)


class EventDay(db.Model):
    """One UTC day's pruned upload events of one kind and owner, folded into totals, so that
    statistics stay whole after the events themselves are gone (EVENT_RETENTION)."""

    __tablename__ = "upload_event_days"
    __table_args__ = MYSQL_TABLE

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    owner_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)


# HookDelivery.status
PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"


class HookDelivery(db.Model):
    """The outbox: one upload event to send to one webhook endpoint, written in the same
    transaction as the change it reports, and claimed by one deliverer at a time (lease)."""

    __tablename__ = "hook_deliveries"
    __table_args__ = (Index("ix_hook_deliveries_status_next_attempt_at", "status",
                            "next_attempt_at"),
                      Index("ix_hook_deliveries_upload_key_status", "upload_key", "status"),
                      MYSQL_TABLE)

    id: Mapped[int] = mapped_column(primary_key=True)
    # The event's own id, the same for every endpoint and every attempt: receivers tell
    # duplicates apart by it.
    event_id: Mapped[str] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    upload_key: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(Text)
    # The JSON body, fixed when the event happened: every attempt sends the same bytes.
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, index=True)
    next_attempt_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # The deliverer sending it now: its token, and when its claim lapses.
    lease: Mapped[str | None] = mapped_column(String(32))
    claimed_until: Mapped[datetime | None] = mapped_column(Timestamp)
    delivered_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_error: Mapped[str | None] = mapped_column(String(255))


class ApiKey(db.Model):
    """A bearer key; only its SHA-256 is stored, so a leaked database leaks no usable key."""

    __tablename__ = "api_keys"
    __table_args__ = MYSQL_TABLE

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The key's first characters, so that a person can tell keys apart in `flask keys list`.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


# Lease.kind: an exclusive hold, or a shared one.
EXCLUSIVE = "x"
SHARED = "s"
# Lease.holder of a name's gate row, which every taker of the name locks first.
GATE = ""


class Lease(db.Model):
    """One hold of a named lock (an upload's, or its hashing's) by one request on some host,
    until expires_ms unless renewed. Each name also has a gate row (holder ""): a taker
    locks it before it reads the holds, so takers of one name go one at a time."""

    __tablename__ = "leases"
    __table_args__ = MYSQL_TABLE

    name: Mapped[str] = mapped_column(String(48), primary_key=True)
    holder: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(1), default=EXCLUSIVE)
    # The chunk a shared holder claimed for writing (at most one holder per chunk).
    chunk: Mapped[int | None] = mapped_column(BigInteger)
    # Which process holds it: "<host>/<pid>/<start>", so that the host can tell its own
    # dead processes' leases without waiting for them to lapse.
    owner: Mapped[str] = mapped_column(String(120), default="")
    # Unix time in milliseconds (every host's clock: keep them in sync).
    expires_ms: Mapped[int] = mapped_column(BigInteger, default=0)
