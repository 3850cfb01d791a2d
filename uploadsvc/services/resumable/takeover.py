"""A newer request ends an older one still running on the same upload, on any host.

The draft recommends it: a client that lost its connection comes back with HEAD or PATCH
while the server may still be waiting for the old body. Each offset retrieval, append and
cancellation raises the row's generation before it waits for the upload's lock; a request
reading a body registers what generation it runs under, and one thread per process looks at
the rows of the bodies it reads every PERIOD seconds and cuts each body whose generation
moved on (the HTTP layer's cut: the socket's read side is shut, so even a stalled read
returns). The cut request keeps and records what arrived, and releases the lock: the newer
one waits a fraction of a second, never the lease.
"""
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from flask import Flask, current_app
from sqlalchemy import select, update

from ...core.database import end_reads
from ...core.extensions import db
from ...core.models import IETF, Upload
from ..tus.uploads import find

log = logging.getLogger(__name__)

PERIOD = 0.1


def take_over(key: str) -> Upload:
    """The upload (404, 410), with a new generation: any request still reading a body for
    it is cut."""
    upload = find(key, (IETF,))
    db.session.execute(update(Upload).filter_by(id=upload.id, key=upload.key)
                       .values(generation=Upload.generation + 1))
    # Read in the transaction that raised it: the value is this request's, not a later one's.
    upload.generation = db.session.execute(
        select(Upload.generation).filter_by(id=upload.id)).scalar_one()
    db.session.commit()
    return upload


@dataclass(eq=False)
class Watch:
    """A body being read for an upload under a generation; `cut` ends it."""

    app: Flask
    key: str
    generation: int
    cut: Callable[[], None]
    ended: bool = field(default=False)


class Watcher:
    """The thread of a process that cuts the bodies of superseded requests."""

    def __init__(self) -> None:
        self.watches: set[Watch] = set()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None

    def add(self, watch: Watch) -> None:
        with self.lock:
            self.watches.add(watch)
            if self.thread is None or not self.thread.is_alive():  # also after a fork
                self.thread = threading.Thread(target=self._run, name="upload-takeover",
                                               daemon=True)
                self.thread.start()

    def remove(self, watch: Watch) -> None:
        with self.lock:
            self.watches.discard(watch)

    def _run(self) -> None:
        while True:
            self.wake.wait(PERIOD)
            with self.lock:
                watches = list(self.watches)
            for app in {watch.app for watch in watches}:
                try:
                    self._check(app, [watch for watch in watches if watch.app is app])
                except Exception:  # the database is away: look again next time
                    log.warning("could not look for superseded requests", exc_info=True)

    def _check(self, app: Flask, watches: list[Watch]) -> None:
        with app.app_context():
            try:
                rows = dict(db.session.execute(
                    select(Upload.key, Upload.generation)
                    .where(Upload.key.in_({watch.key for watch in watches}))).all())
            finally:
                db.session.remove()
        for watch in watches:
            if rows.get(watch.key, watch.generation) != watch.generation:
                log.info("upload %s: a newer request arrived; ending the older one",
                         watch.key)
                watch.ended = True
                self.remove(watch)
                watch.cut()


_watcher = Watcher()


@contextmanager
def watching(upload: Upload, cut: Callable[[], None]) -> Iterator[Watch]:
    """While the caller reads a body for the upload under its generation, cut it as soon as
    a newer request takes the upload over; yields the watch (`ended` once cut)."""
    end_reads()
    watch = Watch(current_app._get_current_object(), upload.key, upload.generation, cut)
    _watcher.add(watch)
    try:
        yield watch
    finally:
        _watcher.remove(watch)
