"""Locks every host honours: leases in the database, with an expiry and a fencing check.

A hold is a row of ``leases`` (name, holder token, shared or exclusive, the chunk it
claimed, the process, an expiry). A taker locks the name's gate row first (SELECT ... FOR
UPDATE on MySQL; SQLite's BEGIN IMMEDIATE does as much), reads the live holds, and adds its
own if they allow it, in one short transaction of its own. So the takers of one name, on any
host, go one at a time, and no request waits inside a transaction.

A hold lasts LEASE_SECONDS unless renewed: a thread of each process renews its holds every
third of that, so a request may take as long as its client does, and a host that dies (or
stops, or loses the database) holds nothing for longer than the lease. On its own host a
dead process's holds end at once: the host tells its processes by pid and start time.
Every expiry is a time of the database server's clock, computed and compared by the
database (``now_ms``): the hosts' clocks may be anything.

Fencing (holds.py): a transaction that wrote, committed by a thread that holds leases, first
renews them on the condition that they have not lapsed, or deletes the one whose work it
ends; if one has lapsed, the commit fails with LeaseLost.
"""
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from sqlalchemy import delete, event, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ...core.database import end_reads
from ...core.extensions import db
from ...core.models import EXCLUSIVE, GATE, SHARED, UPLOADING, Upload
from ...storage import LockBusy, Locker
from ...storage.base import LOCK_NAME
from . import owners
from .holds import (
    LEASES,
    Hold,
    committed,
    fence,
    now_ms,
    registered,
    release_in_commit,
    renew_on,
    rolled_back,
    thread_holds,
)

log = logging.getLogger(__name__)

# Waits between tries of a busy lock: from the first to the longest.
FIRST_POLL, LONGEST_POLL = 0.02, 0.25


class DatabaseLocker(Locker):
    """Leases of one app's database."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.lease_ms = int(float(app.config["LEASE_SECONDS"]) * 1000)
        self.host = owners.host_id(app.config["DATA_DIR"])

    joins_transaction = True

    @contextmanager
    def hold(self, name: str, exclusive: bool = True, timeout: float = 0.0,
             chunk: int | None = None) -> Iterator[None]:
        _check(name)
        end_reads()  # never wait with the session's transaction open
        token = uuid.uuid4().hex
        claimed = self._wait_for(name, token, exclusive, chunk, timeout)
        with registered(Hold(self, name, token, chunk, claimed, undecided=chunk is not None)):
            yield

    @contextmanager
    def hold_joined(self, name: str, exclusive: bool = True, timeout: float = 0.0,
                    chunk: int | None = None) -> Iterator[bool]:
        """hold(), taken in the session's open transaction, in which the caller has just read
        what the lock guards under a row lock, and committed with it: that read still stands
        once the hold does (yields True), with no transaction of the hold's own. If the lock
        is busy, or its gate is still to be made, the transaction is committed as it is (its
        rows stay loaded) and the hold is waited for as hold() waits (yields False: the
        caller reads again)."""
        _check(name)
        token = uuid.uuid4().hex
        session = db.session()
        connection = session.connection()
        rows = connection.execute(_holds_of(name)).all()
        claimed = None
        if rows and rows[0].holder == GATE:
            claimed = self._add(connection, rows[1:], rows[0].now, name, token,
                                EXCLUSIVE if exclusive else SHARED, chunk)
        session.commit()  # the hold, if added, and the caller's reads end together
        kept = claimed is not None
        if not kept:
            claimed = self._wait_for(name, token, exclusive, chunk, timeout)
        with registered(Hold(self, name, token, chunk, claimed, undecided=chunk is not None)):
            yield kept

    def _wait_for(self, name: str, token: str, exclusive: bool, chunk: int | None,
                  timeout: float) -> bool:
        """Take the hold, polling while it is busy (LockBusy after `timeout`); whether it
        claimed the chunk."""
        kind = EXCLUSIVE if exclusive else SHARED
        deadline, pause = time.monotonic() + timeout, FIRST_POLL
        while (claimed := self._take(name, token, kind, chunk)) is None:
            if time.monotonic() >= deadline:
                raise LockBusy(name)
            time.sleep(min(pause, max(deadline - time.monotonic(), 0)))
            pause = min(pause * 2, LONGEST_POLL)
        return claimed

    @contextmanager
    def claim(self, key: str, index: int) -> Iterator[bool]:
        for held in reversed(thread_holds()):  # the innermost hold is the caller's
            if held.locker is self and held.name == key and held.chunk == index \
                    and held.undecided:
                held.undecided = False
                yield held.claimed  # decided when the hold was taken
                return
        _check(key)
        end_reads()
        token = uuid.uuid4().hex
        claimed = self._take(key, token, SHARED, index)
        if claimed is None:  # held exclusively: no chunk of it is written now
            yield False
            return
        held = Hold(self, key, token, index, claimed)
        if not claimed:
            self._release(token, key)
            yield False
            return
        with registered(held):
            yield True

    def ending(self, name: str) -> None:
        release_in_commit(name)

    # -- the database -------------------------------------------------------------------

    def _take(self, name: str, token: str, kind: str, chunk: int | None) -> bool | None:
        """Add the hold if the live ones allow it: None if not, else whether it claimed the
        chunk. One transaction, on a connection of its own."""
        for _ in range(3):  # the gate made meanwhile by another taker, or swept
            with db.engine.connect() as connection, connection.begin() as transaction:
                rows = connection.execute(_holds_of(name)).all()
                if rows and rows[0].holder == GATE:
                    claimed = self._add(connection, rows[1:], rows[0].now, name, token, kind,
                                        chunk)
                    if claimed is None:
                        transaction.rollback()
                    return claimed  # committed as the block ends, unless rolled back
                transaction.rollback()
            # Made once this connection is back in the pool: a thread that holds one
            # connection while it waits for another can starve a worker's pool.
            self._make_gate(name)
        raise LockBusy(name)

    def _add(self, connection, holds, now: int, name: str, token: str, kind: str,
             chunk: int | None) -> bool | None:
        """Insert this hold if the live holds allow it (None if not); whether it claimed
        the chunk. Dead holds are removed on the way. `now` is the database's, read with
        the holds."""
        live, dead = [], []
        for row in holds:
            (live if row.expires_ms > now and self._alive(row.owner) else dead).append(row)
        if any(row.kind == EXCLUSIVE for row in live) or (kind == EXCLUSIVE and live):
            return None
        claimed = chunk is not None and all(row.chunk != chunk for row in live)
        if dead:
            connection.execute(delete(LEASES).where(
                LEASES.c.name == name, LEASES.c.holder.in_([row.holder for row in dead])))
        connection.execute(insert(LEASES).values(
            name=name, holder=token, kind=kind, chunk=chunk if claimed else None,
            owner=f"{self.host}/{owners.process()}",
            expires_ms=now_ms(connection) + self.lease_ms))
        return claimed

    def _make_gate(self, name: str) -> None:
        try:
            with db.engine.begin() as connection:
                connection.execute(insert(LEASES).values(
                    name=name, holder=GATE, kind=EXCLUSIVE, owner="", expires_ms=0))
        except IntegrityError:
            pass  # another taker made it

    def _release(self, token: str, name: str) -> None:
        with db.engine.begin() as connection:
            connection.execute(delete(LEASES).where(LEASES.c.name == name,
                                                    LEASES.c.holder == token))

    def renew(self, holds: list[Hold]) -> int:
        """Extend these holds that have not lapsed; how many were."""
        with self.app.app_context(), db.engine.begin() as connection:
            return renew_on(connection, holds, now_ms(connection))

    def _alive(self, owner: str) -> bool:
        """Whether the process that took a hold may still run: one of this host's is
        looked up; another host's is trusted until its lease lapses."""
        host, pid, start = owners.parse(owner)
        if host != self.host:
            return True
        return owners.start_time(pid) == start


def _holds_of(name: str):
    """The name's gate (first: its holder sorts first) and holds, with the database's time,
    its gate row locked: the takers of one name go one at a time."""
    return (select(LEASES.c.holder, LEASES.c.kind, LEASES.c.chunk, LEASES.c.owner,
                   LEASES.c.expires_ms, now_ms(db.engine).label("now"))
            .where(LEASES.c.name == name).order_by(LEASES.c.holder).with_for_update())


def _check(name: str) -> None:
    if not LOCK_NAME.fullmatch(name):
        raise ValueError("invalid lock name")


def sweep() -> int:
    """Remove lapsed holds and the gates of names nobody holds that belong to no upload in
    progress (`flask cleanup`); how many rows went. A taker that finds its gate gone makes
    it again, so this is safe beside any hold."""
    now = now_ms(db.session.connection())
    lapsed = db.session.execute(delete(LEASES).where(
        LEASES.c.holder != GATE, LEASES.c.expires_ms < now)).rowcount
    held = select(LEASES.c.name).where(LEASES.c.holder != GATE).scalar_subquery()
    gates = db.session.execute(select(LEASES.c.name).where(
        LEASES.c.holder == GATE, LEASES.c.name.not_in(held))).scalars().all()
    live = set(db.session.execute(select(Upload.key).where(
        Upload.status == UPLOADING,
        Upload.key.in_({name.partition(".")[0] for name in gates}))).scalars())
    idle = [name for name in gates if name.partition(".")[0] not in live]
    removed = 0
    for start in range(0, len(idle), 500):
        removed += db.session.execute(delete(LEASES).where(
            LEASES.c.holder == GATE, LEASES.c.name.in_(idle[start:start + 500]))).rowcount
    db.session.commit()
    return lapsed + removed


def init_app(app: Flask) -> None:
    """Give a store that several hosts share the database's leases, and fence every
    commit."""
    store = app.extensions["store"]
    if store.shared:  # on one host's disk, the store's own file locks are that host's
        store.locker = DatabaseLocker(app)
    if not event.contains(Session, "before_commit", fence):
        event.listen(Session, "before_commit", fence)
        event.listen(Session, "after_commit", committed)
        event.listen(Session, "after_rollback", rolled_back)
