"""Body read timeouts: a request body that stalls or trickles is cut off with 408.

Size limits live where sizes are known (the upload-chunk view, the spooled part, the
services), the limit on unfinished uploads in the services, rate limits in ratelimit.py.
"""
import logging
import socket
import threading
import time

from werkzeug.exceptions import RequestTimeout

log = logging.getLogger(__name__)


MAX_SLICE = 256 * 1024


class TimedInput:
    """wsgi.input that cuts off a body which stalls or trickles (slowloris), with 408.

    After `timeout` seconds the body must have kept up an average of `min_rate` bytes/s.
    A read blocked in the server on a trickling client returns only when its buffer is full,
    so reads are made in slices and the Watchdog shuts the socket of an overdue body.
    """

    def __init__(self, stream, timeout: float, min_rate: float, sock=None) -> None:
        self.stream = stream
        self.timeout = timeout
        self.min_rate = min_rate
        self.sock = sock
        # Reads are sliced so a trickle is noticed, but a slice follows the body's own pace
        # (a quarter second of it, up to 256 KiB): tiny slices would cost a fast body more CPU
        # in read calls than the upload itself.
        self.base_slice = int(min(max(min_rate * timeout / 4, 1024), 65536))
        self.slice = self.base_slice
        self.started = time.monotonic()
        self.received = 0
        self.expired = False

    def deadline(self) -> float:
        return self.started + max(self.timeout, self.received / self.min_rate)

    def expire(self) -> None:
        """Stop the body: a blocked read returns at once and answers 408."""
        self.expired = True
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size >= 0:
            return self._check(self.stream.read, size)
        parts = []  # read to the end, still slice by slice
        while part := self._check(self.stream.read, self.slice):
            parts.append(part)
        return b"".join(parts)

    def readinto(self, buffer) -> int:
        """Read into buffer, with no copy of our own where the stream reads into one too
        (werkzeug's LimitedStream then hands down the caller's buffer)."""
        view = memoryview(buffer).cast("B")
        readinto = getattr(self.stream, "readinto", None)
        if readinto is None:
            data = self.read(len(view))
            view[:len(data)] = data
            return len(data)
        return self._check(lambda size: readinto(view[:size]), len(view), count=int)

    def readline(self, size: int = -1) -> bytes:
        return self._check(self.stream.readline, size)

    def _check(self, read, size: int, count=len):
        """read(size) within the slice and the deadline; count(result) is the bytes read."""
        size = self.slice if size is None or size < 0 else min(size, self.slice)  # readline
        try:
            data = read(size)
        except OSError:  # the socket timeout set below: no byte for `timeout` seconds
            raise RequestTimeout("The request body stalled.") from None
        self.received += count(data)
        now = time.monotonic()
        if now > self.started:
            pace = self.received / (now - self.started)
            self.slice = int(min(MAX_SLICE, max(self.base_slice, pace / 4)))
        if self.expired or now > self.deadline():
            self.expired = True
            raise RequestTimeout("The request body arrives too slowly.")
        return data


class Watchdog:
    """One thread per worker process that expires request bodies past their deadline."""

    def __init__(self, period: float = 0.25) -> None:
        self.period = period
        self.inputs: set[TimedInput] = set()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def watch(self, body: TimedInput) -> None:
        with self.lock:
            self.inputs.add(body)
            if self.thread is None or not self.thread.is_alive():  # also after a fork
                self.thread = threading.Thread(target=self._run, name="body-watchdog",
                                               daemon=True)
                self.thread.start()

    def forget(self, body: TimedInput) -> None:
        with self.lock:
            self.inputs.discard(body)

    def _run(self) -> None:
        while True:
            time.sleep(self.period)
            now = time.monotonic()
            with self.lock:
                overdue = [body for body in self.inputs if body.deadline() < now]
            for body in overdue:
                log.info("cutting off a request body after %.1f s (%d bytes)",
                         now - body.started, body.received)
                body.expire()
                self.forget(body)


class BodyTimeouts:
    """WSGI middleware: a read timeout on the client socket and a minimum body rate.

    gunicorn hands the app a blocking socket without a timeout, so without this one client
    sending a body byte by byte would hold a worker thread for as long as it likes.
    """

    def __init__(self, app, timeout: float, min_rate: float) -> None:
        self.app = app
        self.timeout = timeout
        self.min_rate = min_rate
        self.watchdog = Watchdog()

    def __call__(self, environ, start_response):
        sock = environ.get("gunicorn.socket")
        if sock is not None:
            sock.settimeout(self.timeout)
        body = TimedInput(environ["wsgi.input"], self.timeout, self.min_rate, sock)
        environ["wsgi.input"] = body
        has_body = environ.get("CONTENT_LENGTH", "0") not in ("", "0") or \
            "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if not has_body or sock is None:
            return self.app(environ, start_response)
        self.watchdog.watch(body)
        try:
            return self.app(environ, start_response)
        finally:
            self.watchdog.forget(body)
