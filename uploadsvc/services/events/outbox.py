"""The webhook outbox: upload events written in the transaction of the change they report
(so an event exists if and only if the change was committed), and what operators do with it.

Each event gets one HookDelivery row per endpoint; deliverer sends them. The body is fixed
here, when the change happens: every attempt, on any worker, sends the same bytes and the
same event id, which is how receivers tell a repeated delivery from a new event.
"""
import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import func, select, update

from ...core.extensions import db
from ...core.models import (
    API,
    DELIVERED,
    FAILED,
    PENDING,
    STREAMED,
    UPLOADING,
    HookDelivery,
    Upload,
    UploadEvent,
    utcnow,
)
from .settings import event_type

PARTIAL = "partial"  # tus concatenation: a part is no upload of its own to other systems


def record(kind: str, upload: Upload, **fields) -> None:
    """Add an upload event, and its webhook deliveries, to the current transaction; the
    caller commits them with the change itself."""
    db.session.add(UploadEvent.of(kind, upload, **fields))
    config = current_app.config
    if not config["HOOK_URLS"] or kind not in config["HOOK_EVENTS"] or upload.concat == PARTIAL:
        return
    now = utcnow()
    event_id = str(uuid.uuid4())
    body = json.dumps(payload(event_id, kind, upload, now), separators=(",", ":"))
    for url in config["HOOK_URLS"]:
        db.session.add(HookDelivery(event_id=event_id, kind=kind, upload_key=upload.key,
                                    url=url, payload=body, status=PENDING, attempts=0,
                                    created_at=now, next_attempt_at=now))


def iso(moment: datetime | None) -> str | None:
    """A naive UTC time as the API writes times: 2024-01-01T00:05:00.000Z."""
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def payload(event_id: str, kind: str, upload: Upload, now: datetime) -> dict:
    """The event's JSON: one shape for /api and tus uploads."""
    # A row not flushed yet has no column defaults: they are what its INSERT will write.
    protocol = upload.protocol or API
    about = {"id": upload.key, "protocol": protocol, "md5": upload.md5 or None,
             "fileName": upload.file_name, "status": upload.status or UPLOADING,
             "path": upload.path, "size": upload.size,
             "startTime": iso(upload.started_at or now),
             "completedTime": iso(upload.completed_at)}
    if protocol in STREAMED:
        about.update(uploadLength=upload.upload_length, uploadOffset=upload.upload_offset,
                     metadata=decode_metadata(upload.upload_metadata))
    else:
        about.update(totalChunks=upload.total_chunks, fileSize=upload.file_size)
    if current_app.config["AUTH_REQUIRED"]:
        about["owner"] = upload.owner_id
    return {"id": event_id, "type": event_type(kind), "time": iso(now), "upload": about}


def decode_metadata(header: str | None) -> dict[str, str | None]:
    """tus Upload-Metadata as a dict (values that are not UTF-8 text are left out)."""
    found: dict[str, str | None] = {}
    for pair in (header or "").split(","):
        key, _, value = pair.strip().partition(" ")
        if not key:
            continue
        try:
            found[key] = base64.b64decode(value.strip(), validate=True).decode() if value else None
        except (binascii.Error, UnicodeDecodeError):
            continue
    return found


# -- what operators see and do (flask hooks, /metrics) ---------------------------------------


def deliveries(status: str | None = None, limit: int = 100) -> list[HookDelivery]:
    """Deliveries with this status (all without one), the newest first."""
    query = select(HookDelivery).order_by(HookDelivery.id.desc()).limit(limit)
    if status is not None:
        query = query.filter_by(status=status)
    found = list(db.session.execute(query).scalars())
    db.session.commit()
    return found


def retry(delivery_id: int | None = None) -> int:
    """Send failed deliveries again from now (one, or all with None): how many."""
    query = update(HookDelivery).filter_by(status=FAILED).values(
        status=PENDING, next_attempt_at=utcnow(), attempts=0, lease=None, claimed_until=None,
        created_at=utcnow())  # the retry period starts again
    if delivery_id is not None:
        query = query.filter_by(id=delivery_id)
    count = db.session.execute(query).rowcount
    db.session.commit()
    return count


@dataclass(frozen=True)
class Backlog:
    """The outbox now: deliveries waiting, failed, and the age of the oldest waiting one."""

    pending: int
    failed: int
    oldest_seconds: float


def backlog(now: datetime | None = None) -> Backlog:
    rows = dict((status, (count, oldest)) for status, count, oldest in db.session.execute(
        select(HookDelivery.status, func.count(), func.min(HookDelivery.created_at))
        .where(HookDelivery.status != DELIVERED).group_by(HookDelivery.status)).all())
    db.session.commit()
    pending, oldest = rows.get(PENDING, (0, None))
    age = ((now or utcnow()) - oldest).total_seconds() if oldest is not None else 0.0
    return Backlog(pending=pending, failed=rows.get(FAILED, (0, None))[0],
                   oldest_seconds=max(age, 0.0))
