"""Limits on what one client can take: proxy trust, body read timeouts, rate limits.

Size limits live where sizes are known (the upload-chunk view, SpoolFile, the service), and
the limit on unfinished uploads in the service; this module wraps the WSGI app.
"""
import time

from flask import Flask
from flask_limiter import Limiter
from werkzeug.exceptions import RequestTimeout
from werkzeug.middleware.proxy_fix import ProxyFix

from . import access


class TimedInput:
    """wsgi.input that cuts off a body which stalls or trickles (slowloris), with 408."""

    def __init__(self, stream, timeout: float, min_rate: float) -> None:
        self.stream = stream
        self.timeout = timeout
        self.min_rate = min_rate
        self.started = time.monotonic()
        self.received = 0

    def read(self, size: int = -1) -> bytes:
        return self._check(self.stream.read, size)

    def readline(self, size: int = -1) -> bytes:
        return self._check(self.stream.readline, size)

    def _check(self, read, size: int) -> bytes:
        try:
            data = read(size)
        except TimeoutError:  # the socket timeout set below: no byte for `timeout` seconds
            raise RequestTimeout("The request body stalled.") from None
        self.received += len(data)
        elapsed = time.monotonic() - self.started
        if elapsed > self.timeout and self.received < self.min_rate * elapsed:
            raise RequestTimeout("The request body arrives too slowly.")
        return data


class BodyTimeouts:
    """WSGI middleware: a read timeout on the client socket and a minimum body rate.

    gunicorn hands the app a blocking socket without a timeout, so without this one client
    sending a body byte by byte would hold a worker thread for as long as it likes.
    """

    def __init__(self, app, timeout: float, min_rate: float) -> None:
        self.app = app
        self.timeout = timeout
        self.min_rate = min_rate

    def __call__(self, environ, start_response):
        sock = environ.get("gunicorn.socket")
        if sock is not None:
            sock.settimeout(self.timeout)
        environ["wsgi.input"] = TimedInput(environ["wsgi.input"], self.timeout, self.min_rate)
        return self.app(environ, start_response)


def init_app(app: Flask) -> None:
    config = app.config
    if config["BODY_TIMEOUT"]:
        app.wsgi_app = BodyTimeouts(app.wsgi_app, float(config["BODY_TIMEOUT"]),
                                    float(config["BODY_MIN_RATE"]))
    if config["PROXY_COUNT"]:
        # Outermost, so that every later part sees the client's own address.
        count = int(config["PROXY_COUNT"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)
    config.setdefault("RATELIMIT_ENABLED", bool(config["RATE_LIMIT"]))
    config.setdefault("RATELIMIT_DEFAULT", config["RATE_LIMIT"] or None)
    config.setdefault("RATELIMIT_STORAGE_URI", config["RATE_LIMIT_STORAGE_URI"])
    config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    # One Limiter per app: its settings and storage are per instance, not per app.
    Limiter(key_func=access.client_id, app=app)
