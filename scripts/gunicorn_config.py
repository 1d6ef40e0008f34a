"""gunicorn settings for Rota (`gunicorn -c python:scripts.gunicorn_config 'api:create_app()'`;
`rota serve` and the live test server use them): JSON log lines for gunicorn's own messages,
no plain access log (the app writes one JSON line per request), the configuration checked once
in the master before any worker starts, and Prometheus multiprocess bookkeeping."""

from __future__ import annotations

import os
import shutil
import sys

accesslog = None  # the app's JSON access line replaces gunicorn's
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "api.logs.JsonFormatter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json",
                            "stream": "ext://sys.stderr"}},
    "root": {"level": "INFO", "handlers": ["stderr"]},
    "loggers": {"gunicorn.error": {"level": "INFO", "handlers": ["stderr"],
                                   "propagate": False},
                "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False}},
}


def on_starting(_server) -> None:
    """In the master: refuse a wrong configuration with one line and exit code 2 (workers
    would each fail with a traceback), and start the metrics of this run from zero."""
    from api.config import ConfigError, validate

    try:
        validate()
    except ConfigError as exc:
        print(f"rota: configuration error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if metrics_dir:
        shutil.rmtree(metrics_dir, ignore_errors=True)
        os.makedirs(metrics_dir)


def child_exit(_server, worker) -> None:
    """A dead worker's live gauges leave the sums (its counters stay counted)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
