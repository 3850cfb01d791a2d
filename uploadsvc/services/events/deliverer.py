"""Delivering the outbox: at least once, in order per upload and endpoint, by any number of
deliverers on any number of hosts (a thread in each gunicorn worker, `flask hooks deliver`).

A deliverer claims rows with a lease (a conditional UPDATE that only takes rows nobody holds,
or whose holder's lease lapsed), sends them with no transaction open, and records the outcome
only if it still holds the lease. One killed mid-send leaves its rows to the next deliverer
once the lease lapses: the event is sent again, with the same id. An event is not sent while
an earlier event of the same upload to the same endpoint is waiting. Failures (network
errors, timeouts, non-2xx answers) are retried with exponential backoff and jitter until
HOOK_RETRY_FOR has passed, then the row is marked failed (`flask hooks retry`).
"""
import logging
import random
import threading
import time
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

from flask import Flask, current_app
from sqlalchemy import exists, func, or_, select, text, update
from sqlalchemy.orm import aliased

from ...core.extensions import db
from ...core.models import DELIVERED, FAILED, PENDING, HookDelivery, utcnow
from ...version import __version__
from .. import metrics
from .settings import event_type
from .signatures import SIGNATURE_HEADER, sign

if TYPE_CHECKING:  # requests (5 MiB of memory) is loaded only by a process that sends hooks
    import requests

log = logging.getLogger(__name__)

BATCH = 20
MAX_BACKOFF = timedelta(hours=1)


def database_now(plus: timedelta = timedelta(0)):
    """The database server's UTC time plus a delay, as SQL on MySQL, so that the hosts'
    clocks do not decide whose lease has lapsed; on SQLite (one host's) this host's."""
    if db.engine.dialect.name == "mysql":
        return func.timestampadd(text("MICROSECOND"), plus // timedelta(microseconds=1),
                                 func.utc_timestamp(6))
    return utcnow() + plus


def claim(limit: int = BATCH) -> tuple[str, list[HookDelivery]]:
    """Take up to limit deliveries that are due, free and first in their upload's order:
    (the lease token, the rows now held with it)."""
    now = database_now()
    free = or_(HookDelivery.claimed_until.is_(None), HookDelivery.claimed_until < now)
    earlier = aliased(HookDelivery)
    waiting_before = exists().where(
        earlier.upload_key == HookDelivery.upload_key, earlier.url == HookDelivery.url,
        earlier.status == PENDING, earlier.id < HookDelivery.id)
    due = list(db.session.execute(
        select(HookDelivery.id)
        .where(HookDelivery.status == PENDING, HookDelivery.next_attempt_at <= now, free,
               ~waiting_before)
        .order_by(HookDelivery.id).limit(limit)).scalars())
    db.session.commit()
    token = uuid.uuid4().hex
    if not due:
        return token, []
    # Taken only if still free: of racing deliverers, one gets each row.
    db.session.execute(
        update(HookDelivery).where(HookDelivery.id.in_(due), HookDelivery.status == PENDING,
                                   free)
        .values(lease=token, claimed_until=database_now(current_app.config["HOOK_LEASE"]))
        # The rows held are read below: no SELECT first to keep objects in step.
        .execution_options(synchronize_session=False))
    db.session.commit()
    held = list(db.session.execute(
        select(HookDelivery).filter_by(lease=token).order_by(HookDelivery.id)
        .execution_options(populate_existing=True)).scalars())
    db.session.commit()
    return token, held


def send(delivery: HookDelivery, session: "requests.Session") -> str | None:
    """POST the event to its endpoint; None on a 2xx answer, else what went wrong."""
    import requests

    body = delivery.payload.encode()
    headers = {"Content-Type": "application/json", "User-Agent": f"uploadsvc/{__version__}",
               "Uploadsvc-Event-Id": delivery.event_id,
               "Uploadsvc-Event": event_type(delivery.kind),
               "Uploadsvc-Delivery-Attempt": str(delivery.attempts + 1)}
    secret = current_app.config["HOOK_SECRET"]
    if secret:
        headers[SIGNATURE_HEADER] = sign(str(secret), body)
    try:
        response = session.post(delivery.url, data=body, headers=headers,
                                timeout=current_app.config["HOOK_TIMEOUT"],
                                allow_redirects=False)
        response.close()
    except requests.RequestException as exc:
        return f"{type(exc).__name__}: {exc}"[:255]
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}"


def backoff(attempts: int) -> timedelta:
    """The wait after the attempts-th failure: doubling from HOOK_RETRY_DELAY, at most an
    hour, less a random part of up to half (so failed deliveries do not retry in step)."""
    first = current_app.config["HOOK_RETRY_DELAY"]
    delay = min(first * 2 ** min(attempts - 1, 30), max(MAX_BACKOFF, first))
    return delay * random.uniform(0.5, 1.0)


def settle(delivery: HookDelivery, token: str, error: str | None) -> bool:
    """Record one attempt's outcome if this deliverer still holds the row; whether it did."""
    now = utcnow()
    retried = delivery.attempts > 0  # read first: the commit below expires the object
    attempts = delivery.attempts + 1
    values = {"attempts": attempts, "lease": None, "claimed_until": None}
    if error is None:
        values.update(status=DELIVERED, delivered_at=now, last_error=None)
    elif now - delivery.created_at >= current_app.config["HOOK_RETRY_FOR"]:
        values.update(status=FAILED, last_error=error)
    else:
        values.update(next_attempt_at=database_now(backoff(attempts)),
                      last_error=error)
    held = db.session.execute(
        update(HookDelivery).filter_by(id=delivery.id, lease=token, status=PENDING)
        .values(**values).execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    if not held:  # the lease lapsed and another deliverer took the row: its outcome counts
        log.warning("hook delivery %d (event %s): lease lost while sending; left to the "
                    "deliverer that holds it", delivery.id, delivery.event_id)
        return False
    outcome = "delivered" if error is None else values.get("status", "retry")
    metrics.hook_attempt(outcome, retried=retried)
    if error is None:
        log.info("hook event %s %s delivered to %s", delivery.event_id,
                 event_type(delivery.kind), delivery.url)
    else:
        log.warning("hook event %s to %s: %s (attempt %d%s)", delivery.event_id, delivery.url,
                    error, attempts, ", given up" if outcome == FAILED else "")
    return True


def deliver_once(session: "requests.Session | None" = None, limit: int = BATCH) -> int:
    """Claim what is due and send it; how many deliveries were attempted."""
    import requests

    lapses = time.monotonic() + current_app.config["HOOK_LEASE"].total_seconds()
    token, held = claim(limit)
    own = session or requests.Session()
    try:
        for delivery in held:
            # Send only with time for a whole attempt left on the lease (timed from before
            # the claim, on this host's monotonic clock); a row skipped lapses, and the next
            # claim takes it.
            if lapses - time.monotonic() > current_app.config["HOOK_TIMEOUT"]:
                settle(delivery, token, send(delivery, own))
    finally:
        if session is None:
            own.close()
    return len(held)


def deliver_until_idle(session: "requests.Session | None" = None) -> int:
    """Deliver until nothing is due; how many deliveries were attempted."""
    total = 0
    while attempted := deliver_once(session):
        total += attempted
    return total


class DelivererThread:
    """A daemon thread delivering the outbox for one app, as long as the process lives."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="hook-deliverer", daemon=True)

    def start(self) -> "DelivererThread":
        self.thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        self.stopped.set()
        self.thread.join(timeout)

    def _run(self) -> None:
        import requests

        interval = self.app.config["HOOK_POLL_INTERVAL"]
        with requests.Session() as session:
            while not self.stopped.is_set():
                attempted = 0
                try:
                    with self.app.app_context():
                        attempted = deliver_once(session)
                except Exception:  # a database away now is no reason to stop for good
                    log.warning("hook delivery failed; trying again", exc_info=True)
                    time.sleep(interval)
                if not attempted:
                    self.stopped.wait(interval)
