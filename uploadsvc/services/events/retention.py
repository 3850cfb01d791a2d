"""Keeping the event tables bounded (EVENT_RETENTION, run by `flask cleanup`): chunk events
older than the retention are folded into daily totals, then deleted, in one transaction, so
that statistics count them as before; webhook deliveries sent or given up that long ago are
deleted. A delivery still waiting is never touched, however old."""
import logging
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ...core.extensions import db
from ...core.models import DELIVERED, FAILED, EventDay, HookDelivery, UploadEvent, utcnow

log = logging.getLogger(__name__)

# The events whose detail is pruned: one per stored chunk, the table's bulk. An upload's own
# events (created, completed, ...) are few and stay: tus answers 410 by its expired event.
PRUNED_KINDS = (UploadEvent.CHUNK_STORED,)
BATCH = 5000


@dataclass
class RetentionReport:
    folded: int = 0  # events folded into daily totals and deleted
    deliveries: int = 0  # webhook deliveries deleted


def prune(older_than: timedelta, dry_run: bool = False) -> RetentionReport:
    """Fold and delete events older than older_than; delete old finished deliveries."""
    cutoff = utcnow() - older_than
    report = RetentionReport()
    old_events = (UploadEvent.kind.in_(PRUNED_KINDS), UploadEvent.created_at < cutoff)
    finished = (HookDelivery.status.in_((DELIVERED, FAILED)), HookDelivery.created_at < cutoff)
    if dry_run:
        report.folded = _count(select(func.count()).select_from(UploadEvent).where(*old_events))
        report.deliveries = _count(
            select(func.count()).select_from(HookDelivery).where(*finished))
        return report
    while (folded := _fold_batch(old_events)) != 0:
        report.folded += max(folded, 0)
    report.deliveries = db.session.execute(delete(HookDelivery).where(*finished)).rowcount
    db.session.commit()
    if report.folded or report.deliveries:
        log.info("pruned %d events older than %s into daily totals, %d webhook deliveries",
                 report.folded, older_than, report.deliveries)
    return report


def _count(query) -> int:
    found = db.session.execute(query).scalar_one()
    db.session.commit()
    return found


def _fold_batch(old_events) -> int:
    """Fold and delete one batch of old events: how many (0: none left, -1: a concurrent
    cleanup took some of them first; this batch was rolled back, to be tried again)."""
    ids = list(db.session.execute(select(UploadEvent.id).where(*old_events)
                                  .order_by(UploadEvent.id).limit(BATCH)).scalars())
    if not ids:
        db.session.commit()
        return 0
    window = (*old_events, UploadEvent.id.between(ids[0], ids[-1]))
    day = func.date(UploadEvent.created_at)
    groups = db.session.execute(
        select(day, UploadEvent.owner_id, UploadEvent.kind, func.count(),
               func.coalesce(func.sum(UploadEvent.bytes), 0))
        .where(*window).group_by(day, UploadEvent.owner_id, UploadEvent.kind)).all()
    counted = sum(count for *_, count, _ in groups)
    # Deleted first: only rows this transaction deleted are added to the totals.
    if db.session.execute(delete(UploadEvent).where(*window)).rowcount != counted:
        db.session.rollback()
        return -1
    try:
        for when, owner, kind, count, total in groups:
            _add(date.fromisoformat(str(when)), owner, kind, count, int(total))
        db.session.commit()
    except IntegrityError:  # a concurrent cleanup made the same day's row first
        db.session.rollback()
        return -1
    return counted


def _add(day: date, owner: int, kind: str, count: int, total: int) -> None:
    key = {"day": day, "owner_id": owner, "kind": kind}
    added = db.session.execute(
        update(EventDay).filter_by(**key)
        .values(count=EventDay.count + count, bytes=EventDay.bytes + total)).rowcount
    if not added:
        db.session.execute(insert(EventDay).values(**key, count=count, bytes=total))
