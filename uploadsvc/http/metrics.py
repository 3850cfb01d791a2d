"""/metrics, the Prometheus text exposition of every worker, and the HTTP request counts."""
import hmac
import logging
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
from prometheus_client.core import GaugeMetricFamily

from ..core.units import parse_bool
from ..services.events import outbox
from ..services.metrics import MULTIPROCESS
from .errors import error_response

log = logging.getLogger(__name__)

UNMATCHED = "<unmatched>"  # the route label of requests no URL rule matched (404, 405)

REQUESTS = Counter("uploadsvc_http_requests", "HTTP requests by method, route and status.",
                   ["method", "route", "status"])
REQUEST_SECONDS = Histogram("uploadsvc_http_request_duration_seconds",
                            "Time to answer HTTP requests, by method and route.",
                            ["method", "route"])

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
    return Response(generate_latest(_registry()) + _outbox_figures(),
                    content_type=CONTENT_TYPE_LATEST)


class OutboxCollector:
    """The webhook outbox as the database holds it now: the same whichever worker answers."""

    def collect(self):
        found = outbox.backlog()
        yield GaugeMetricFamily("uploadsvc_hook_outbox_pending",
                                "Webhook deliveries waiting to be sent.", value=found.pending)
        yield GaugeMetricFamily("uploadsvc_hook_outbox_failed",
                                "Webhook deliveries given up (flask hooks retry).",
                                value=found.failed)
        yield GaugeMetricFamily("uploadsvc_hook_outbox_oldest_age_seconds",
                                "Age of the oldest webhook delivery waiting (0: none).",
                                value=found.oldest_seconds)


def _outbox_figures() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OutboxCollector())
    try:
        return generate_latest(registry)
    except Exception:  # the database away: the process's own metrics are still worth having
        log.warning("outbox figures unavailable", exc_info=True)
        return b""


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
