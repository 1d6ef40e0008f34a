"""Health, liveness and readiness probes, plus the docs page's own assets."""

from __future__ import annotations

from flask import send_from_directory
from flask_smorest import Blueprint
from marshmallow import fields
from swagger_ui_bundle import swagger_ui_path

from api.schemas import BaseSchema
from service.health import database_reachable

blp = Blueprint("health", __name__, description="Service health")


class HealthSchema(BaseSchema):
    status = fields.String(metadata={"example": "ok"})
    database = fields.String(metadata={"example": "ok"})


@blp.route("/health", methods=["GET"])
@blp.response(200, HealthSchema)
@blp.alt_response(503, schema=HealthSchema, description="The database is unreachable")
@blp.doc(security=[])
def health():
    return database_status()


def database_status():
    if database_reachable():
        return {"status": "ok", "database": "ok"}
    return {"status": "degraded", "database": "unreachable"}, 503


@blp.route("/health/live", methods=["GET"])
@blp.response(200, HealthSchema)
@blp.doc(security=[], description="The process answers. Never touches the database: a "
                                  "liveness probe must not restart workers for an outage.")
def live():
    return {"status": "ok"}


@blp.route("/health/ready", methods=["GET"])
@blp.response(200, HealthSchema)
@blp.alt_response(503, schema=HealthSchema, description="The database did not answer a ping "
                                                        "within 1 s")
@blp.doc(security=[], description="Ready for traffic: the database answers a ping within 1 s "
                                  "(a readiness probe; the answer comes in about 1 s at worst).")
def ready():
    return database_status()


@blp.route("/docs/assets/<path:filename>", methods=["GET"])
@blp.doc(security=[], description="Swagger UI's JavaScript and CSS, served locally (no CDN).")
def docs_asset(filename):
    return send_from_directory(swagger_ui_path, filename, max_age=86400)
