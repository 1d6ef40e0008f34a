"""Schools, module switches, people, departments and the audit trail."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask_smorest import Blueprint
from marshmallow import ValidationError, fields, validate

from api.auth import UserSchema
from api.etags import versioned
from api.schemas import BaseSchema, Id, PageArgs, Timestamp, page_of
from api.security import authenticated, school_route
from service.audit import AuditLog
from service.context import ADMIN_ROLES, STAFF_ROLES
from service.schools import SCHOOL_ROLES, Schools, SchoolUsers

blp = Blueprint("schools", __name__, url_prefix="/schools",
                description="Schools, module switches and people")


class ModulesSchema(BaseSchema):
    timetable = fields.Boolean()
    weekly_groups = fields.Boolean()
    tracks = fields.Boolean()
    team_rosters = fields.Boolean()


class SchoolCreateSchema(BaseSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    code = fields.String(required=True, validate=[
        validate.Length(min=1, max=50),
        validate.Regexp(r"^[A-Za-z0-9_.-]+$", error="Letters, digits, '.', '_' and '-' only.")])


def known_zone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError("Not a known IANA time zone (e.g. Europe/Berlin).") from None


class SchoolUpdateSchema(BaseSchema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    timezone = fields.String(validate=[validate.Length(min=1, max=64), known_zone], metadata={
        "description": "IANA time zone, e.g. Europe/Berlin: where today is for the school."})


class SchoolSchema(BaseSchema):
    id = Id(dump_only=True)
    company_id = Id(dump_only=True)
    name = fields.String()
    code = fields.String()
    timezone = fields.String(metadata={"description": "IANA time zone; default UTC."})
    modules = fields.Nested(ModulesSchema)
    created_at = Timestamp(dump_only=True)


class UserCreateSchema(BaseSchema):
    email = fields.Email(required=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    role = fields.String(required=True, validate=validate.OneOf(SCHOOL_ROLES))
    department = fields.String(validate=validate.Length(min=1, max=100))
    password = fields.String(validate=validate.Length(min=8, max=512), load_only=True)
    external_id = fields.String(validate=validate.Length(min=1, max=100))


class UserListArgs(PageArgs):
    role = fields.String(validate=validate.OneOf(SCHOOL_ROLES))
    department = fields.String()


class DepartmentSchema(BaseSchema):
    name = fields.String()
    people = fields.Integer()


class DepartmentListSchema(BaseSchema):
    items = fields.List(fields.Nested(DepartmentSchema))
    total = fields.Integer()


class AuditArgs(PageArgs):
    entity_type = fields.String()
    entity_id = fields.String()
    action = fields.String()


class AuditEventSchema(BaseSchema):
    id = Id()
    actor_id = Id(allow_none=True)
    actor_role = fields.String()
    actor_name = fields.String(allow_none=True, metadata={
        "description": "the service account's name when an API key made the change"})
    action = fields.String()
    entity_type = fields.String()
    entity_id = fields.String(allow_none=True)
    entity_ids = fields.List(fields.String(), metadata={
        "description": "the documents a bulk write (an import batch) created"})
    before = fields.Dict()
    after = fields.Dict()
    created_at = Timestamp()


@blp.route("", methods=["POST"])
@blp.arguments(SchoolCreateSchema)
@blp.response(201, SchoolSchema)
@authenticated
def create_school(actor, body):
    return Schools(actor).create(**body)


@blp.route("", methods=["GET"])
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_of(SchoolSchema))
@authenticated
def list_schools(actor, args):
    return Schools(actor).list(**args)


@blp.route("/<school_id>", methods=["GET"])
@blp.response(200, SchoolSchema)
@authenticated
@versioned("school_id")
def get_school(actor, school_id):
    return Schools(actor).get(school_id)


@blp.route("/<school_id>", methods=["PATCH"])
@blp.arguments(SchoolUpdateSchema)
@blp.response(200, SchoolSchema)
@authenticated
@versioned("school_id")
def update_school(actor, body, school_id):
    """Rename the school or set its time zone (company admins and the school's admins);
    an unknown zone is 422."""
    return Schools(actor).update(school_id, **body)


@blp.route("/<school_id>/modules", methods=["PUT"])
@blp.arguments(ModulesSchema)
@blp.response(200, SchoolSchema)
@authenticated
@versioned("school_id")
def set_modules(actor, switches, school_id):
    return Schools(actor).set_modules(school_id, switches)


@blp.route("/<school_id>/users", methods=["POST"])
@blp.arguments(UserCreateSchema)
@blp.response(201, UserSchema)
@school_route(roles=ADMIN_ROLES)
def create_user(ctx, body):
    return SchoolUsers(ctx).create(**body)


@blp.route("/<school_id>/users", methods=["GET"])
@blp.arguments(UserListArgs, location="query")
@blp.response(200, page_of(UserSchema))
@school_route(roles=STAFF_ROLES)
def list_users(ctx, args):
    return SchoolUsers(ctx).list(**args)


@blp.route("/<school_id>/users/<user_id>", methods=["GET"])
@blp.response(200, UserSchema)
@school_route(roles=STAFF_ROLES)
def get_user(ctx, user_id):
    return SchoolUsers(ctx).get_user(user_id)


@blp.route("/<school_id>/departments", methods=["GET"])
@blp.response(200, DepartmentListSchema)
@school_route(roles=STAFF_ROLES)
def list_departments(ctx):
    items = SchoolUsers(ctx).departments()
    return {"items": items, "total": len(items)}


@blp.route("/<school_id>/audit", methods=["GET"])
@blp.arguments(AuditArgs, location="query")
@blp.response(200, page_of(AuditEventSchema))
@school_route(roles=ADMIN_ROLES)
def list_audit(ctx, args):
    return AuditLog(ctx).list(**args)


