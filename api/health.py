"""Health, liveness and readiness probes. (The docs page's assets: api/openapi.py.)"""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import fields

from api.schemas import BaseSchema
from service.health import database_reachable

blp = Blueprint("health", __name__, description="Service health")


class HealthSchema(BaseSchema):
    status = fields.String(metadata={"example": "ok"})
    database = fields.String(metadata={"example": "ok", "optional": True,
                                       "description": "Not in the liveness probe's answer."})


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
