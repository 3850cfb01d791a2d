"""The operator's routes (Prometheus metrics), for the OpenAPI document: kept in it only
when UPLOADSVC_METRICS registers them."""
from collections.abc import Mapping

from apispec import APISpec

from .pages import error


def add_paths(spec: APISpec, config: Mapping) -> None:
    """Register /metrics on spec."""
    spec.path("/metrics", operations={"get": {
        "summary": "Prometheus metrics of all workers (text exposition format)",
        "operationId": "metrics",
        "description": "Served (and listed here) unless UPLOADSVC_METRICS is false; with "
                       "UPLOADSVC_METRICS_TOKEN set, the token is required as a bearer token "
                       "(401 otherwise).",
        "responses": {
            "200": {"description": "The metrics.",
                    "content": {"text/plain": {"schema": {"type": "string"}}}},
            "401": error(401, "The metrics token is required."),
            "429": error(429), "500": error(500),
        }}})
