"""Prometheus metrics: counted where things happen, served at /metrics for all workers.

Under gunicorn each worker is a process of its own. With PROMETHEUS_MULTIPROC_DIR set (by
gunicorn.conf.py) prometheus_client has every process write its values to files there, and
/metrics adds them up, so whichever worker answers reports the whole server.
"""
import hmac
import os
import time

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from ..core.units import parse_bool
from .errors import error_response

# prometheus_client decides at import whether values live in files; decide alike.
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
if MULTIPROCESS:  # the metrics below open their files there as they are defined
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
UNMATCHED = "<unmatched>"  # the route label of requests no URL rule matched (404, 405)

REQUESTS = Counter("uploadsvc_http_requests", "HTTP requests by method, route and status.",
                   ["method", "route", "status"])
REQUEST_SECONDS = Histogram("uploadsvc_http_request_duration_seconds",
                            "Time to answer HTTP requests, by method and route.",
                            ["method", "route"])
BYTES_RECEIVED = Counter("uploadsvc_bytes_received", "Bytes stored (chunks, tus PATCH bodies).")
UPLOADS_CREATED = Counter("uploadsvc_uploads_created", "Uploads started.")
UPLOADS_COMPLETED = Counter("uploadsvc_uploads_completed",
                            "Uploads completed (merged and verified, or from a stored copy).")
UPLOADS_FAILED = Counter("uploadsvc_uploads_failed",
                         "Completions refused because the merged file failed MD5 verification.")
UPLOADS_REMOVED = Counter("uploadsvc_uploads_removed", "Uploads deleted or expired.", ["reason"])
CHUNK_WRITE_SECONDS = Histogram(
    "uploadsvc_chunk_write_seconds", "Time to store a chunk durably (lock, write, fsync, row).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
MERGE_SECONDS = Histogram(
    "uploadsvc_merge_seconds", "Time to merge, hash and place a completed upload.",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800))


# -- what the service reports ---------------------------------------------------------------


def upload_created() -> None:
    UPLOADS_CREATED.inc()


def chunk_stored(size: int, seconds: float) -> None:
    BYTES_RECEIVED.inc(size)
    CHUNK_WRITE_SECONDS.observe(seconds)


def merged(seconds: float) -> None:
    MERGE_SECONDS.observe(seconds)


def upload_completed() -> None:
    UPLOADS_COMPLETED.inc()


def verification_failed() -> None:
    UPLOADS_FAILED.inc()


def upload_removed(reason: str) -> None:
    UPLOADS_REMOVED.labels(reason).inc()


# -- HTTP -----------------------------------------------------------------------------------

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    """Prometheus text exposition, summed over all worker processes."""
    token = current_app.config["METRICS_TOKEN"]
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(),
                                                                 str(token).encode()):
            return error_response(401, "unauthorized",
                                  "Send the metrics token as 'Authorization: Bearer <token>'.",
                                  {"WWW-Authenticate": "Bearer"})
    return Response(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)


def _registry():
    if not MULTIPROCESS:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def _start_timer() -> None:
    g.metrics_started = time.perf_counter()


def _count_request(response):
    # The URL rule, not the path: one series per route, however many uploads there are.
    route = request.url_rule.rule if request.url_rule is not None else UNMATCHED
    REQUESTS.labels(request.method, route, str(response.status_code)).inc()
    started = g.pop("metrics_started", None)
    if started is not None:
        REQUEST_SECONDS.labels(request.method, route).observe(time.perf_counter() - started)
    return response


def init_app(app: Flask) -> None:
    """Count every request and serve /metrics, unless METRICS is off (then /metrics is 404)."""
    if not parse_bool(app.config["METRICS"]):
        return
    app.before_request(_start_timer)
    app.after_request(_count_request)
    app.register_blueprint(bp)
