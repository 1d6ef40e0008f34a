"""Projects and sub-projects, shared by the tracks and team rosters modules (either one on
gives access): staff and admins create them, staff edit and archive their own, admins every
one; the project wizard."""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import ValidationError, fields, validate

from api.etags import versioned
from api.schemas import BaseSchema, Date, Id, PageArgs, Timestamp, page_of
from api.security import school_route
from api.tracks import TrackInstructorAddSchema, TrackSchema
from documents.projects import STATUSES
from service.context import ADMIN_ROLES, STAFF_ROLES
from service.projects import Projects
from service.projects_wizard import ProjectWizard

blp = Blueprint("projects", __name__, url_prefix="/schools",
                description="Projects with one optional level of sub-projects, shared by the "
                            "tracks and team rosters modules: either module on gives access "
                            "(else 403 `module_disabled`). Staff and school admins create "
                            "them; staff edit and archive the ones they created, admins every "
                            "one. Status goes draft → active → archived; an archived project, "
                            "its sub-projects and their tracks are read-only (409 "
                            "`project_archived`).")

ROLE_NAME = fields.String(validate=validate.Length(min=1, max=100))


class ProjectCreateSchema(BaseSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(validate=validate.Length(max=5000))
    auto_balance_students = fields.Boolean(
        metadata={"description": "Balancing is opt-in: on, every change of a track's "
                                 "instructors or students also rebalances its unpinned "
                                 "students. Set on a project, it is copied to its "
                                 "sub-projects (whose tracks follow their sub-project). "
                                 "Defaults to false; a sub-project defaults to its parent's."})
    status = fields.String(validate=validate.OneOf(["draft", "active"]), metadata={
        "description": "draft (default) or active."})
    target_roles = fields.List(ROLE_NAME, validate=validate.Length(max=50), metadata={
        "description": "Role names the project trains for, e.g. \"Backend Developer\"."})
    objectives = fields.String(validate=validate.Length(max=5000))
    start_date = Date(metadata={"description": "With end_date, the duration."})
    end_date = Date()


class ProjectUpdateSchema(BaseSchema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    description = fields.String(allow_none=True, validate=validate.Length(max=5000))
    auto_balance_students = fields.Boolean()
    status = fields.String(validate=validate.OneOf(STATUSES), metadata={
        "description": "Forward only: draft → active → archived (draft → archived too); "
                       "another move → 409 `invalid_status`. Archiving is final and archives "
                       "the sub-projects and tracks; archiving again finishes an archive that "
                       "was interrupted. Audited as `status`."})
    target_roles = fields.List(ROLE_NAME, validate=validate.Length(max=50))
    objectives = fields.String(allow_none=True, validate=validate.Length(max=5000))
    start_date = Date(allow_none=True)
    end_date = Date(allow_none=True)


class ProjectSchema(BaseSchema):
    id = Id(dump_only=True, allow_none=True)
    name = fields.String()
    slug = fields.String(allow_none=True, metadata={
        "description": "Unique per school, made from the name at creation (`-2`, `-3`... "
                       "when taken); stable. null in a wizard dry run."})
    description = fields.String(allow_none=True)
    parent_id = Id(allow_none=True, metadata={"description": "Set for a sub-project."})
    auto_balance_students = fields.Boolean()
    status = fields.String(metadata={"description": "draft, active or archived."})
    target_roles = fields.List(fields.String())
    objectives = fields.String(allow_none=True)
    start_date = Date(allow_none=True)
    end_date = Date(allow_none=True)
    created_by = Id(allow_none=True, metadata={"description": "Staff may edit what they "
                                                               "created."})
    created_at = Timestamp()
    updated_at = Timestamp()


class ProjectListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(STATUSES))


ProjectPageSchema = page_of(ProjectSchema)


# ---- the wizard ----

def flattened(messages, prefix: str = "") -> dict:
    """Nested marshmallow messages as `{"sub_projects.1.name": [...]}`."""
    if not isinstance(messages, dict):
        return {prefix: messages}
    flat = {}
    for key, value in messages.items():
        flat.update(flattened(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


class WizardTrackSchema(BaseSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(validate=validate.Length(max=5000))
    sub_project = fields.Integer(validate=validate.Range(min=0), metadata={
        "description": "Index in sub_projects; left out: directly under the project."})
    instructors = fields.List(fields.Nested(TrackInstructorAddSchema), metadata={
        "description": "Default: the wizard's instructors."})


class WizardSchema(BaseSchema):
    project = fields.Nested(ProjectCreateSchema, required=True)
    sub_projects = fields.List(fields.Nested(ProjectCreateSchema), load_default=list,
                               validate=validate.Length(max=50))
    tracks = fields.List(fields.Nested(WizardTrackSchema), load_default=list,
                         validate=validate.Length(max=200), metadata={
                             "description": "Custom tracks (admins, module tracks)."})
    generate_tracks = fields.Boolean(load_default=False, metadata={
        "description": "One track per sub-project and target role (the sub-project's, else "
                       "the project's), named \"<sub-project>: <role>\"."})
    instructors = fields.List(fields.Nested(TrackInstructorAddSchema), load_default=list,
                              metadata={"description": "Teach the generated tracks and the "
                                                       "custom ones without their own."})
    dry_run = fields.Boolean(load_default=False, metadata={
        "description": "Check everything and answer 200 with what would be created (ids "
                       "null); nothing is written."})

    def handle_error(self, error, data, *, many, **kwargs):
        raise ValidationError(flattened(error.messages))


class WizardTrackResultSchema(TrackSchema):
    id = Id(allow_none=True)
    root_project_id = Id(allow_none=True, metadata={"description": "null in a dry run."})
    sub_project_index = fields.Integer(allow_none=True)
    generated = fields.Boolean()
    instructor_ids = fields.List(Id())


class WizardResultSchema(BaseSchema):
    project = fields.Nested(ProjectSchema)
    sub_projects = fields.List(fields.Nested(ProjectSchema))
    tracks = fields.List(fields.Nested(WizardTrackResultSchema))
    dry_run = fields.Boolean()


# ---- routes ----

@blp.route("/<school_id>/projects", methods=["POST"])
@blp.arguments(ProjectCreateSchema)
@blp.response(201, ProjectSchema)
@school_route(roles=STAFF_ROLES)
def create_project(ctx, body):
    """Create a project (staff and admins)."""
    return Projects(ctx).create(**body)


@blp.route("/<school_id>/projects/wizard", methods=["POST"])
@blp.arguments(WizardSchema)
@blp.response(201, WizardResultSchema)
@blp.alt_response(200, schema=WizardResultSchema, description="A dry run: nothing written.")
@school_route(roles=STAFF_ROLES)
def project_wizard(ctx, body):
    """The project wizard: a project, its sub-projects (with target roles) and tracks in one
    request, all or nothing (201). Every part is checked before anything is written; a 422
    names the failing parts by place, e.g. `details: {"sub_projects.1.name": [...]}`. If a
    write fails midway, what was written is removed again. Tracks (custom or generated) need
    a school admin and the tracks module. `dry_run: true` answers 200 with the preview."""
    result = ProjectWizard(ctx).run(**body)
    return (result, 200) if result["dry_run"] else result


@blp.route("/<school_id>/projects", methods=["GET"])
@blp.arguments(ProjectListArgs, location="query")
@blp.response(200, ProjectPageSchema)
@school_route(roles=STAFF_ROLES)
def list_projects(ctx, args):
    """Top-level projects by name, optionally of one status (staff and admins)."""
    return Projects(ctx).list(**args)


@blp.route("/<school_id>/projects/<project_id>", methods=["GET"])
@blp.response(200, ProjectSchema)
@school_route(roles=STAFF_ROLES)
@versioned("project_id")
def get_project(ctx, project_id):
    """A project or a sub-project (staff and admins)."""
    return Projects(ctx).get_project(project_id)


@blp.route("/<school_id>/projects/<project_id>", methods=["PATCH"])
@blp.arguments(ProjectUpdateSchema)
@blp.response(200, ProjectSchema)
@school_route(roles=STAFF_ROLES)
@versioned("project_id")
def update_project(ctx, body, project_id):
    """Change fields or the status (admins; staff for what they created, else 403). The slug
    stays. An archived project → 409 `project_archived`."""
    return Projects(ctx).update(project_id, **body)


@blp.route("/<school_id>/projects/<project_id>", methods=["DELETE"])
@blp.response(204)
@school_route(roles=ADMIN_ROLES)
@versioned("project_id")
def delete_project(ctx, project_id):
    """Delete a project (admins) together with its sub-projects and all their tracks, and
    with them the tracks' instructors, student enrolments and courses, and the project
    teams that nothing links. The audit event (`delete` on the project) counts what was
    removed. 409 `project_has_teams` (naming them) while a record links one of its teams."""
    Projects(ctx).delete(project_id)


@blp.route("/<school_id>/projects/<project_id>/sub-projects", methods=["POST"])
@blp.arguments(ProjectCreateSchema)
@blp.response(201, ProjectSchema)
@school_route(roles=STAFF_ROLES)
def create_sub_project(ctx, body, project_id):
    """Create a sub-project (staff and admins). One level only: under a sub-project → 422.
    Under an archived project → 409 `project_archived`."""
    return Projects(ctx).create_sub_project(project_id, **body)


@blp.route("/<school_id>/projects/<project_id>/sub-projects", methods=["GET"])
@blp.arguments(PageArgs, location="query")
@blp.response(200, ProjectPageSchema)
@school_route(roles=STAFF_ROLES)
def list_sub_projects(ctx, args, project_id):
    """Sub-projects of a project by name (staff and admins)."""
    return Projects(ctx).list_sub_projects(project_id, **args)
