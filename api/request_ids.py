"""`X-Request-ID`: the caller's id when it is sane, a new one otherwise; on every response, in
every error body (`api/errors.py`) and on every log record made while the request runs."""

from __future__ import annotations

import logging
import re
import uuid

from flask import has_request_context, request

HEADER = "X-Request-ID"
ENVIRON_KEY = "rota.request_id"  # on the request itself: an app context (g) may span several
# Bounded and safe to copy into logs and headers: no spaces, quotes or control characters.
SANE = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def request_id() -> str:
    """This request's id, decided on first use (an error raised before any hook still has
    one)."""
    if ENVIRON_KEY not in request.environ:
        sent = request.headers.get(HEADER, "")
        request.environ[ENVIRON_KEY] = sent if SANE.fullmatch(sent) else uuid.uuid4().hex
    return request.environ[ENVIRON_KEY]


def echo(response):
    response.headers[HEADER] = request_id()
    return response


def _stamp_records() -> None:
    """Give every log record made inside a request its id, whichever handler writes it (the
    JSON handler, gunicorn's, pytest's caplog)."""
    make_record = logging.getLogRecordFactory()
    if getattr(make_record, "_rota_request_id", False):
        return

    def with_request_id(*args, **kwargs):
        record = make_record(*args, **kwargs)
        if has_request_context():
            record.request_id = request_id()
        return record

    with_request_id._rota_request_id = True
    logging.setLogRecordFactory(with_request_id)


def decide() -> None:
    request_id()


def init_request_ids(app) -> None:
    _stamp_records()
    app.before_request(decide)
    app.after_request(echo)
