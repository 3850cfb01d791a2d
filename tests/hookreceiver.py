"""A webhook endpoint for tests: a threaded HTTP server on 127.0.0.1 that records what it
gets and checks signatures, and can fail the first N requests, be down for a while, answer
slowly, hold requests unanswered, or refuse (for the pre-create hook)."""
import contextlib
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from uploadsvc.services.events.signatures import SIGNATURE_HEADER, verify

from .servers import free_port


@dataclass
class Received:
    """One request as it arrived, and what it was answered."""

    headers: dict
    body: bytes
    signed: bool  # the signature checked out with the receiver's secret
    status: int | None = None  # what it is answered; None while held or delayed

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def event_id(self) -> str | None:
        return self.headers.get("Uploadsvc-Event-Id")


class HookReceiver:
    """Start with start(); stop() takes it down (the port then refuses connections) and
    start() brings it back on the same port."""

    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.received: list[Received] = []
        self.changed = threading.Condition()
        self.failures = 0  # the next this many requests are answered `fail_status`
        self.fail_status = 500
        self.delay = 0.0  # seconds before answering
        self.answer = (204, "", b"")  # status, content type, body
        self.holding = False  # keep new requests unanswered until release()
        self._released = threading.Event()
        self.server: ThreadingHTTPServer | None = None

    def __enter__(self) -> "HookReceiver":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "HookReceiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                receiver._handle(self)

            def log_message(self, *args):
                pass

        self._released.clear()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.release()
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def release(self) -> None:
        """Answer the held requests, and hold no more."""
        with self.changed:
            self.holding = False
        self._released.set()

    def wait_for(self, predicate, timeout: float = 60, what: str = "a condition"):
        """Wait until predicate(received) is true; its value."""
        with self.changed:
            found = self.changed.wait_for(lambda: predicate(self.received), timeout)
        assert found, f"timed out waiting for {what}; received {self.summary()}"
        return found

    def summary(self) -> list:
        return [(r.headers.get("Uploadsvc-Event"), r.event_id, r.status)
                for r in list(self.received)]

    def delivered(self) -> list[Received]:
        """Requests answered with a 2xx, in order of arrival."""
        return [r for r in list(self.received) if r.status is not None and r.status < 300]

    def events(self) -> list[dict]:
        """The bodies of requests answered with a 2xx, first arrivals only."""
        seen, found = set(), []
        for r in self.delivered():
            if r.event_id not in seen:
                seen.add(r.event_id)
                found.append(r.json)
        return found

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length)
        signature = handler.headers.get(SIGNATURE_HEADER)
        signed = bool(self.secret and signature and verify(self.secret, body, signature))
        record = Received(dict(handler.headers.items()), body, signed)
        with self.changed:
            self.received.append(record)
            held = self.holding
            status, content_type, answer = self.answer
            if self.failures > 0:
                self.failures -= 1
                status, content_type, answer = self.fail_status, "text/plain", b"failing"
            self.changed.notify_all()
        if held:
            self._released.wait(120)
        if self.delay:
            time.sleep(self.delay)
        with self.changed:  # before the answer goes out: the sender may act on it at once
            record.status = status
            self.changed.notify_all()
        with contextlib.suppress(OSError):  # the sender may have gone (timeout, kill -9)
            handler.send_response(status)
            if content_type:
                handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(answer)))
            handler.end_headers()
            handler.wfile.write(answer)
            handler.wfile.flush()
