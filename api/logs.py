"""JSON logs: one object per line on standard error, and one access line per request.

Every line has `time` (ISO 8601 UTC), `level`, `logger`, `message` and `pid`, plus
`request_id` when it was logged inside a request (`api/request_ids.py`). The access line
(logger `rota.access`, message `request`) adds `user_id`, `school_id` (routes with one),
`route` (the URL rule, e.g. `/api/v1/schools/<school_id>/users`), `method`, `status`,
`latency_ms` and `db_round_trips`. gunicorn's own lines use the same format
(`scripts/gunicorn_config.py`).
"""

from __future__ import annotations

import logging
import sys
import time
from contextlib import ExitStack

from flask import g, request
from flask_jwt_extended import get_jwt_identity
from pythonjsonlogger.json import JsonFormatter as BaseJsonFormatter

from api import metrics
from documents.connection import ROUND_TRIPS

ACCESS = logging.getLogger("rota.access")
UNMATCHED_ROUTE = "unmatched"  # a path no route knows: one label, whatever was asked


class JsonFormatter(BaseJsonFormatter):
    def __init__(self, *args, **kwargs):
        super().__init__("{levelname}{name}{message}{process}", style="{", timestamp="time",
                         rename_fields={"levelname": "level", "name": "logger",
                                        "process": "pid"})


class StderrHandler(logging.StreamHandler):
    """Writes to sys.stderr as it is at each line, like logging's last resort: a test's
    capture may swap it after the app was made."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def configure(level: str) -> None:
    """JSON lines on standard error for the whole process, once (under gunicorn the root
    logger already has them from its `logconfig_dict`)."""
    root = logging.getLogger()
    root.setLevel(level)
    logging.captureWarnings(True)  # Python's warnings become JSON lines too
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = StderrHandler()
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)


def start_request() -> None:
    """Start the clock and the count of this request's database round trips."""
    g.started = time.perf_counter()
    g.counting = ExitStack()
    g.round_trips = g.counting.enter_context(ROUND_TRIPS.record())


def log_request(response):
    seconds = time.perf_counter() - g.get("started", time.perf_counter())
    round_trips = len(g.get("round_trips", ()))
    route = request.url_rule.rule if request.url_rule else UNMATCHED_ROUTE
    metrics.observe(route, request.method, response.status_code, seconds, round_trips)
    ACCESS.info("request", extra={
        "user_id": _user_id(), "school_id": (request.view_args or {}).get("school_id"),
        "route": route, "method": request.method, "status": response.status_code,
        "latency_ms": round(seconds * 1000, 1), "db_round_trips": round_trips})
    return response


def stop_counting(_exc) -> None:
    counting = g.pop("counting", None)
    if counting is not None:
        counting.close()


def _user_id() -> str | None:
    caller = g.get("caller")  # api/security.py: a token's user or an API key's service account
    if caller is not None:
        return str(caller.user_id)
    try:
        return get_jwt_identity()
    except RuntimeError:  # no token was checked on this route
        return None


def init_access_log(app) -> None:
    app.before_request(start_request)
    app.after_request(log_request)
    app.teardown_request(stop_counting)
