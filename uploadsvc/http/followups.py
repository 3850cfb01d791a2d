"""Running the follow-ups a service returned, once the client has its answer.

They run on a few threads of the worker process's own (BACKGROUND_THREADS), not on the
connection: gunicorn's threaded worker runs a response's close before it reads the next
request on the same connection, so work there would hold up the client's next request
(the next PATCH or chunk of a stream on a kept-open connection) for as long as it takes.
With BACKGROUND_THREADS = 0 they run on the connection after the answer, as they once did.

Work not yet started when the process exits normally still runs (the interpreter waits for
these threads); after a crash it is simply not done: every follow-up is an optimisation or
a cleanup that completion or `flask cleanup` does as well.
"""
import os
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from flask import Flask, Response, current_app

from ..services import followups
from ..services.followups import FollowUp

EXTENSION = "followups"


class Background:
    """A worker process's follow-up threads. Work already waiting to start is not queued
    twice (a catch-up queued behind another of the same upload would find nothing to do)."""

    def __init__(self, app: Flask, threads: int) -> None:
        self.app = app
        self.threads = threads
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._waiting: set[FollowUp] = set()
        self._unfinished = 0
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0

    def submit(self, later: tuple[FollowUp, ...]) -> None:
        with self._lock:
            later = tuple(f for f in later if f not in self._waiting)
            if not later:
                return
            self._waiting.update(later)
            self._unfinished += 1
            self._executor().submit(self._run, later)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until all work submitted so far has run; whether it has."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._unfinished, timeout)

    def _executor(self) -> ThreadPoolExecutor:
        # Made in the process that uses it: a pool made before gunicorn forks its workers
        # has no threads in them.
        if self._pool is None or self._pid != os.getpid():
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="follow-up")
            self._pid = os.getpid()
        return self._pool

    def _run(self, later: tuple[FollowUp, ...]) -> None:
        with self._lock:
            self._waiting.difference_update(later)
        try:
            with self.app.app_context():
                followups.run(later)
        finally:
            with self._idle:
                self._unfinished -= 1
                self._idle.notify_all()


def after_response(response: Response, later: Iterable[FollowUp]) -> Response:
    """Have `later` run once the response is closed (its body sent)."""
    later = tuple(later)
    if later:
        app = current_app._get_current_object()
        background: Background | None = app.extensions.get(EXTENSION)
        if background is not None:
            response.call_on_close(lambda: background.submit(later))
        else:
            def run() -> None:
                with app.app_context():
                    followups.run(later)

            response.call_on_close(run)
    return response


def drain(app: Flask, timeout: float | None = None) -> bool:
    """Wait until the app's follow-ups submitted so far have run; whether they have."""
    background: Background | None = app.extensions.get(EXTENSION)
    return background is None or background.drain(timeout)


def init_app(app: Flask) -> None:
    threads = int(app.config["BACKGROUND_THREADS"])
    if threads > 0:
        app.extensions[EXTENSION] = Background(app, threads)
