"""The Flask app: configuration, database, tokens, blueprints and error mapping.

Each area has one blueprint module here exposing `blp`; every such module is registered
under /api/v1. Routes are thin: parse with a schema, call one manager method, dump.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil

from flask import Flask
from pymongo.errors import ConnectionFailure
from werkzeug.middleware.proxy_fix import ProxyFix

from api import config, errors, logs
from api.cors import init_cors
from api.csv_responses import init_csv_responses
from api.idempotency import init_idempotency
from api.metrics import init_metrics
from api.openapi import RotaApi
from api.request_ids import init_request_ids
from api.security import init_security
from documents import all_documents
from documents.connection import connect, ensure_indexes

log = logging.getLogger(__name__)
URL_PREFIX = "/api/v1"
__all__ = ["RotaApi", "blueprint_modules", "create_app"]


def blueprint_modules():
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        loaded = importlib.import_module(f"{__name__}.{module.name}")
        if hasattr(loaded, "blp"):
            yield loaded


def create_app(overrides: dict | None = None) -> Flask:
    app = Flask("rota")
    app.config.update(config.load(overrides))
    logs.configure(app.config["ROTA_LOG_LEVEL"])
    app.json.sort_keys = False
    connect(app.config["MONGODB_URI"])
    if app.config["ROTA_CREATE_INDEXES"]:
        try:
            ensure_indexes(all_documents())
        except ConnectionFailure as exc:
            # Start anyway: requests answer 503 until the database is back.
            log.warning("could not create indexes, database unreachable: %s", exc)
    # Hooks run in this order: the request id and the clock first, so that every answer,
    # even one refused by a later hook, has both; the idempotency key once the caller is known.
    init_request_ids(app)
    logs.init_access_log(app)
    init_security(app)
    init_idempotency(app)
    init_csv_responses(app)
    init_metrics(app)
    init_cors(app)
    if app.config["ROTA_TRUSTED_PROXIES"]:
        # The client's address (login throttle, logs) is the one these proxies forwarded.
        proxies = app.config["ROTA_TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)
    api = RotaApi(app)
    for module in blueprint_modules():
        api.register_blueprint(module.blp, url_prefix=URL_PREFIX + (module.blp.url_prefix or ""))
    errors.register(app)
    return app
