"""Projects and sub-projects (module `tracks`): admins manage, staff read."""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import fields, validate

from api.schemas import BaseSchema, Date, Id, PageArgs, Timestamp, page_of
from api.security import school_route
from service.context import ADMIN_ROLES, STAFF_ROLES
from service.projects import Projects

blp = Blueprint("projects", __name__, url_prefix="/schools",
                description="Projects with one optional level of sub-projects (module `tracks`). "
                            "School admins manage them; staff read them.")


class ProjectCreateSchema(BaseSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(validate=validate.Length(max=5000))
    auto_balance_students = fields.Boolean(
        metadata={"description": "Enrolments always go to the least-loaded instructor. "
                                 "Defaults to false; a sub-project defaults to its parent's."})
    start_date = Date()
    end_date = Date()


class ProjectUpdateSchema(BaseSchema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    description = fields.String(allow_none=True, validate=validate.Length(max=5000))
    auto_balance_students = fields.Boolean()
    start_date = Date(allow_none=True)
    end_date = Date(allow_none=True)


class ProjectSchema(BaseSchema):
    id = Id(dump_only=True)
    name = fields.String()
    slug = fields.String(metadata={"description": "Unique per school, made from the name at "
                                                  "creation (`-2`, `-3`... when taken); stable."})
    description = fields.String(allow_none=True)
    parent_id = Id(allow_none=True, metadata={"description": "Set for a sub-project."})
    auto_balance_students = fields.Boolean()
    start_date = Date(allow_none=True)
    end_date = Date(allow_none=True)
    created_at = Timestamp()
    updated_at = Timestamp()


ProjectPageSchema = page_of(ProjectSchema)


@blp.route("/<school_id>/projects", methods=["POST"])
@blp.arguments(ProjectCreateSchema)
@blp.response(201, ProjectSchema)
@school_route(module="tracks", roles=ADMIN_ROLES)
def create_project(ctx, body):
    """Create a project (admins)."""
    return Projects(ctx).create(**body)


@blp.route("/<school_id>/projects", methods=["GET"])
@blp.arguments(PageArgs, location="query")
@blp.response(200, ProjectPageSchema)
@school_route(module="tracks", roles=STAFF_ROLES)
def list_projects(ctx, args):
    """Top-level projects by name (staff and admins)."""
    return Projects(ctx).list(**args)


@blp.route("/<school_id>/projects/<project_id>", methods=["GET"])
@blp.response(200, ProjectSchema)
@school_route(module="tracks", roles=STAFF_ROLES)
def get_project(ctx, project_id):
    """A project or a sub-project (staff and admins)."""
    return Projects(ctx).get_project(project_id)


@blp.route("/<school_id>/projects/<project_id>", methods=["PATCH"])
@blp.arguments(ProjectUpdateSchema)
@blp.response(200, ProjectSchema)
@school_route(module="tracks", roles=ADMIN_ROLES)
def update_project(ctx, body, project_id):
    """Change name, description, auto_balance_students or dates (admins). The slug stays."""
    return Projects(ctx).update(project_id, **body)


@blp.route("/<school_id>/projects/<project_id>", methods=["DELETE"])
@blp.response(204)
@school_route(module="tracks", roles=ADMIN_ROLES)
def delete_project(ctx, project_id):
    """Delete a project (admins) together with its sub-projects and all their tracks, and
    with them the tracks' instructors, student enrolments and courses. The audit event
    (`delete` on the project) counts what was removed. 409 `project_has_teams` while the
    team rosters module holds project teams for the project or one of its sub-projects."""
    Projects(ctx).delete(project_id)


@blp.route("/<school_id>/projects/<project_id>/sub-projects", methods=["POST"])
@blp.arguments(ProjectCreateSchema)
@blp.response(201, ProjectSchema)
@school_route(module="tracks", roles=ADMIN_ROLES)
def create_sub_project(ctx, body, project_id):
    """Create a sub-project (admins). One level only: under a sub-project → 422."""
    return Projects(ctx).create_sub_project(project_id, **body)


@blp.route("/<school_id>/projects/<project_id>/sub-projects", methods=["GET"])
@blp.arguments(PageArgs, location="query")
@blp.response(200, ProjectPageSchema)
@school_route(module="tracks", roles=STAFF_ROLES)
def list_sub_projects(ctx, args, project_id):
    """Sub-projects of a project by name (staff and admins)."""
    return Projects(ctx).list_sub_projects(project_id, **args)
