"""The holds of this thread, and what every commit does with them: the fence renews them
on the condition that they have not lapsed, or deletes the one whose work the commit ends
(release_in_commit), so a request that stalled past its lease never commits over the work
of the one that took the lock after it. Times are the database server's (now_ms)."""
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from flask import current_app, has_app_context
from sqlalchemy import delete, literal_column, tuple_, update
from sqlalchemy.orm import Session

from ...core.database import HOLDS, end_reads
from ...core.extensions import db
from ...core.models import Lease
from ...storage import LeaseLost, Locker
from . import renewer

log = logging.getLogger(__name__)

LEASES = Lease.__table__


@dataclass
class Hold:
    """One hold of a named lock by this thread, as its row says."""

    locker: Locker  # the DatabaseLocker that took it
    name: str
    token: str
    chunk: int | None  # the chunk asked for with the hold
    claimed: bool  # whether the hold got it
    renewed: float = field(default_factory=time.monotonic)  # taken or last renewed
    undecided: bool = False  # a hold naming a chunk, until claim() asks for it
    ending: bool = False  # the next commit that writes releases it (release_in_commit)
    releasing: bool = False  # a commit under way deletes it
    released: bool = False  # a commit deleted it


def these(holds: list[Hold]):
    """The rows of these holds, by their primary key."""
    return tuple_(LEASES.c.name, LEASES.c.holder).in_([(h.name, h.token) for h in holds])


def now_ms(connection):
    """The database server's time in Unix milliseconds, as an SQL expression: every host
    computes and compares lease expiries with one clock, whatever its own says."""
    if connection.dialect.name == "mysql":
        return literal_column("CAST(UNIX_TIMESTAMP(NOW(6)) * 1000 AS SIGNED)")
    # SQLite's time is its host's, but SQLite is one host's database.
    return literal_column("CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)")


def renew_on(connection, holds: list[Hold], now) -> int:
    """Extend these holds (of one locker) that have not lapsed by `now`; how many were."""
    return connection.execute(
        update(LEASES).where(these(holds), LEASES.c.expires_ms > now)
        .values(expires_ms=now + holds[0].locker.lease_ms)).rowcount


def fence(session: Session) -> None:
    """Before a commit: renew the thread's holds if the transaction wrote, or fail."""
    holds = thread_holds()
    if not holds or not session.in_transaction() or not has_app_context():
        return
    app = current_app._get_current_object()
    holds = [held for held in holds  # this app's database, those not released yet
             if held.locker.app is app and not held.released]
    if not holds:
        return
    connection = session.connection()
    if not connection.info.get(HOLDS):
        return  # it only read: there is nothing to keep from a newer holder
    now = now_ms(connection)
    ending = [held for held in holds if held.ending]
    if ending:
        deleted = connection.execute(
            delete(LEASES).where(these(ending), LEASES.c.expires_ms > now)).rowcount
        _lost_unless(deleted == len(ending), ending)
        for held in ending:
            held.releasing = True
    for locker in {held.locker for held in holds if not held.ending}:
        mine = [held for held in holds if held.locker is locker and not held.ending]
        _lost_unless(renew_on(connection, mine, now) == len(mine), mine)


def _lost_unless(kept: bool, holds: list[Hold]) -> None:
    if not kept:
        names = ", ".join(sorted({held.name for held in holds}))
        log.warning("lease of %s lapsed: the transaction is not committed", names)
        raise LeaseLost(names)


def release_in_commit(name: str) -> None:
    """Release this thread's innermost hold of `name` with the next commit that writes: the
    fence deletes it instead of renewing it, so the work's last transaction ends the hold
    too (until that commits, the hold stays, and is released as usual if it never does)."""
    for held in reversed(thread_holds()):
        if held.name == name:
            held.ending = True
            return


def committed(session: Session) -> None:
    for held in thread_holds():
        if held.releasing:
            held.releasing, held.released = False, True
            renewer.drop(held)


def rolled_back(session: Session) -> None:
    for held in thread_holds():
        held.releasing = False


# -- holds of this thread and this process ------------------------------------------------

_local = threading.local()


def thread_holds() -> list[Hold]:
    return getattr(_local, "holds", [])


@contextmanager
def registered(held: Hold) -> Iterator[None]:
    """Keep the hold renewed and fenced while the caller runs; then end the session's
    transaction (committed if the block ended well, rolled back if not) and release it."""
    _local.holds = [*thread_holds(), held]
    renewer.keep(held)
    failed = True
    try:
        yield
        failed = False
    finally:
        try:
            session = db.session()
            if session.in_transaction():
                if failed:
                    session.rollback()  # what failed is not committed on the way out
                else:
                    end_reads()
        finally:
            _local.holds = [other for other in thread_holds() if other is not held]
            renewer.drop(held)
            if not held.released:
                held.locker._release(held.token, held.name)
