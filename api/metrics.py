"""`GET /metrics`: Prometheus text for every worker together.

With `PROMETHEUS_MULTIPROC_DIR` set (`rota serve` and the live test server set it to a fresh
directory; gunicorn's `child_exit` hook marks dead workers) each worker writes its samples
there and any worker answers /metrics with the sum of all; without it, this process's own.
/metrics needs no token unless `ROTA_METRICS_TOKEN` is set: keep it off the public internet.
"""

from __future__ import annotations

import hmac
import os

from flask import Response, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from api.errors import error_response

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
REQUESTS = Counter("rota_http_requests", "HTTP requests by route template, method and status",
                   ["route", "method", "status"])
LATENCY = Histogram("rota_http_request_duration_seconds", "Time to answer, by route template",
                    ["route"], buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
ROUND_TRIPS = Histogram("rota_db_round_trips", "Database round trips per request, by route "
                        "template", ["route"], buckets=(0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 100))


def observe(route: str, method: str, status: int, seconds: float, round_trips: int) -> None:
    method = method if method in METHODS else "other"  # a label value per made-up method: no
    REQUESTS.labels(route, method, str(status)).inc()
    LATENCY.labels(route).observe(seconds)
    ROUND_TRIPS.labels(route).observe(round_trips)


def registry():
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return REGISTRY
    combined = CollectorRegistry()
    multiprocess.MultiProcessCollector(combined)
    return combined


def metrics_view():
    token = current_app.config.get("ROTA_METRICS_TOKEN")
    sent = request.headers.get("Authorization", "").encode()
    if token and not hmac.compare_digest(sent, f"Bearer {token}".encode()):
        return error_response(401, "unauthorized", "Send 'Authorization: Bearer "
                                                   "<ROTA_METRICS_TOKEN>' for /metrics.")
    return Response(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)


def init_metrics(app) -> None:
    app.add_url_rule("/metrics", "metrics", metrics_view, methods=["GET"])
