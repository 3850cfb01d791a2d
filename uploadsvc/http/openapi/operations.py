"""The operator's routes (Prometheus metrics), for the OpenAPI document."""
from collections.abc import Mapping

from apispec import APISpec

from .pages import error


def add_paths(spec: APISpec, config: Mapping) -> None:
    """Register /metrics on spec."""
    spec.path("/metrics", operations={"get": {
        "summary": "Prometheus metrics of all workers (text exposition format)",
        "operationId": "metrics",
        "description": "Off with UPLOADSVC_METRICS=false (404); with UPLOADSVC_METRICS_TOKEN "
                       "set, the token is required as a bearer token (401 otherwise).",
        "responses": {
            "200": {"description": "The metrics.",
                    "content": {"text/plain": {"schema": {"type": "string"}}}},
            "401": error(401, "The metrics token is required."),
            "404": error(404, "Metrics are turned off."),
            "429": error(429), "500": error(500),
        }}})
