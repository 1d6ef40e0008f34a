"""Team rosters: course groups, frozen project teams, and the evaluations, project assessments
and note contexts that lock a team by linking to it."""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import fields, validate

from api.etags import versioned
from api.schemas import BaseSchema, Id, PageArgs, Timestamp, page_of
from api.security import school_route
from documents.team_rosters import BACKFILL_SOURCES, LINKED_STATUSES
from service.context import ADMIN_ROLES, STAFF_ROLES
from service.team_rosters import BACKFILL_FILTERS, CourseGroups, ProjectTeams
from service.team_rosters_changes import RosterChanges
from service.team_rosters_deletion import ProjectTeamsDeletion
from service.team_rosters_history import TeamHistory
from service.team_rosters_records import Evaluations, NoteContexts, ProjectAssessments
from service.team_rosters_split import BALANCE_ATTRIBUTES, GroupSplits

MODULE = "team_rosters"

blp = Blueprint("team_rosters", __name__, url_prefix="/schools",
                description="Course groups, frozen project teams (locking, versions, cloning) "
                            "and the evaluations, assessments and note contexts linked to them")

NAME = validate.Length(min=1, max=200)


class GroupCreateSchema(BaseSchema):
    name = fields.String(required=True, validate=NAME)
    member_ids = fields.List(Id(), load_default=list, validate=validate.Length(max=500))


class GroupMembersSchema(BaseSchema):
    member_ids = fields.List(Id(), required=True, validate=validate.Length(max=500))


class GroupSchema(BaseSchema):
    """A mutable course group; project teams copy its members when they are made."""

    id = Id()
    name = fields.String()
    member_ids = fields.List(Id())
    created_at = Timestamp()
    updated_at = Timestamp()


class TeamCreateSchema(BaseSchema):
    """Give `team_id` (a course group, whose members are copied now) or `team_name` (a
    custom team, members added later); with both, `team_name` is the display name."""

    team_id = Id(allow_none=True, metadata={"description": "course group to copy"})
    team_name = fields.String(validate=NAME, allow_none=True)


class TeamMemberSchema(BaseSchema):
    user_id = Id()
    name = fields.String(allow_none=True)
    role = fields.String(allow_none=True)
    added_at = Timestamp()


class ProjectTeamSchema(BaseSchema):
    """One version of a project team: a roster snapshot that freezes once linked."""

    id = Id()
    project_id = Id()
    lineage = fields.String(metadata={"description": "shared by every version of this team"})
    version = fields.Integer()
    team_id = Id(allow_none=True, metadata={"description": "the source course group, if any"})
    display_name_at_time = fields.String()
    members = fields.List(fields.Nested(TeamMemberSchema))
    member_count = fields.Integer()
    members_version = fields.Integer(metadata={"description": "bumped by each roster change"})
    locked = fields.Boolean()
    locked_at = Timestamp(allow_none=True)
    locked_reason = fields.String(allow_none=True)
    backfill_source = fields.String(allow_none=True, metadata={
        "description": f"null, or one of {', '.join(BACKFILL_SOURCES)} for migrated teams"})
    superseded = fields.Boolean(metadata={
        "description": "a newer version exists: new records cannot link this one (409 "
                       "`superseded`); records linked already keep it"})
    archived = fields.Boolean(metadata={
        "description": "its project is archived: the team is read-only (writes 409 "
                       "`project_archived`)"})
    created_at = Timestamp()
    updated_at = Timestamp()


class MemberAddSchema(BaseSchema):
    user_id = Id(required=True)
    role = fields.String(validate=validate.Length(max=100), allow_none=True)


class MembersAddSchema(BaseSchema):
    members = fields.List(fields.Nested(MemberAddSchema), required=True,
                          validate=validate.Length(min=1, max=500))


class CloneResultSchema(BaseSchema):
    teams_cloned = fields.Integer()
    members_cloned = fields.Integer()
    project_team_ids = fields.List(Id())


class LinkedCreateSchema(BaseSchema):
    project_id = Id(required=True)
    project_team_id = Id(required=True)
    title = fields.String(required=True, validate=NAME)


class LinkedListArgs(PageArgs):
    project_id = Id()
    project_team_id = Id()
    student_id = Id(metadata={"description": "only records whose locked roster includes "
                                             "this student"})
    status = fields.String(validate=validate.OneOf(LINKED_STATUSES))


class PersonSchema(BaseSchema):
    user_id = Id()
    name = fields.String(allow_none=True)
    role = fields.String(allow_none=True, metadata={"description": "the role in the team"})


class LinkedSchema(BaseSchema):
    """A record linked to (and locking) one project team version, with the roster that
    version had when it was linked."""

    id = Id()
    project_id = Id()
    project_team_id = Id()
    title = fields.String()
    status = fields.String()
    closed_at = Timestamp(allow_none=True)
    team_version = fields.Integer()
    team_name = fields.String()
    members_version = fields.Integer()
    member_ids = fields.List(Id())
    members = fields.List(fields.Nested(PersonSchema), metadata={
        "description": "the locked roster with names and the roles of the team version"})
    created_at = Timestamp()


# Course groups

@blp.route("/<school_id>/groups", methods=["POST"])
@blp.arguments(GroupCreateSchema)
@blp.response(201, GroupSchema)
@blp.doc(operationId="createCourseGroup")
@school_route(module=MODULE, roles=STAFF_ROLES)
def create_group(ctx, body):
    """Create a course group (members must be users of the school, else 422)."""
    return CourseGroups(ctx).create(**body)


@blp.route("/<school_id>/groups", methods=["GET"])
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_of(GroupSchema))
@blp.doc(operationId="listCourseGroups")
@school_route(module=MODULE, roles=STAFF_ROLES)
def list_groups(ctx, args):
    """List the school's course groups by name."""
    return CourseGroups(ctx).list(**args)


@blp.route("/<school_id>/groups/<group_id>", methods=["GET"])
@blp.response(200, GroupSchema)
@blp.doc(operationId="getCourseGroup")
@school_route(module=MODULE, roles=STAFF_ROLES)
@versioned("group_id")
def get_group(ctx, group_id):
    """One course group."""
    return CourseGroups(ctx).detail(group_id)


@blp.route("/<school_id>/groups/<group_id>/members", methods=["PUT"])
@blp.arguments(GroupMembersSchema)
@blp.response(200, GroupSchema)
@blp.doc(operationId="replaceCourseGroupMembers")
@school_route(module=MODULE, roles=STAFF_ROLES)
@versioned("group_id")
def replace_group_members(ctx, body, group_id):
    """Replace the group's members. Project teams made from it do not change."""
    return CourseGroups(ctx).replace_members(group_id, body["member_ids"])


@blp.route("/<school_id>/groups/<group_id>", methods=["DELETE"])
@blp.response(204)
@blp.doc(operationId="deleteCourseGroup")
@school_route(module=MODULE, roles=STAFF_ROLES)
@versioned("group_id")
def delete_group(ctx, group_id):
    """Delete a course group; project teams made from it keep their members and team_id."""
    CourseGroups(ctx).delete(group_id)


# Project teams

@blp.route("/<school_id>/projects/<project_id>/teams", methods=["POST"])
@blp.arguments(TeamCreateSchema)
@blp.response(201, ProjectTeamSchema)
@blp.alt_response(409, description="project_deleting: the project is being deleted")
@school_route(module=MODULE, roles=STAFF_ROLES)
def create_team(ctx, body, project_id):
    """Create a project team from a course group (members copied now) or with a custom
    name; one of team_id / team_name is required (422). From a group that already has a team
    in this project: the next version of that team (parallel creates: consecutive versions),
    which supersedes the older ones."""
    return ProjectTeams(ctx).create(project_id, body.get("team_id"), body.get("team_name"))


class TeamListArgs(PageArgs):
    latest = fields.Boolean(load_default=False, metadata={
        "description": "only the newest version of each team (the one evaluations use)"})
    backfill_source = fields.String(validate=validate.OneOf(sorted(BACKFILL_FILTERS)), metadata={
        "description": "only backfilled teams, for review: `group` (members copied from the "
                       "course group) or `inferred` (members inferred from the records)"})


@blp.route("/<school_id>/projects/<project_id>/teams", methods=["GET"])
@blp.arguments(TeamListArgs, location="query")
@blp.response(200, page_of(ProjectTeamSchema))
@school_route(module=MODULE)
def list_teams(ctx, args, project_id):
    """Every version of the project's teams with members (`latest=true`: the newest of
    each); a student sees only theirs."""
    return ProjectTeams(ctx).list(project_id, **args)


@blp.route("/<school_id>/projects/<project_id>/teams/clone-from/<source_id>",
           methods=["POST"])
@blp.response(201, CloneResultSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def clone_teams(ctx, project_id, source_id):
    """Copy the latest version of each team of the source project into this one (unlocked).
    Teams already cloned from the same origin are not copied twice."""
    return ProjectTeams(ctx).clone(project_id, source_id)


@blp.route("/<school_id>/project-teams/<team_id>", methods=["GET"])
@blp.response(200, ProjectTeamSchema)
@school_route(module=MODULE)
@versioned("team_id", field="write_version")
def get_team(ctx, team_id):
    """One project team version with members (students: only a team they are in)."""
    return ProjectTeams(ctx).detail(team_id)


@blp.route("/<school_id>/project-teams/<team_id>/members", methods=["GET"])
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_of(TeamMemberSchema))
@school_route(module=MODULE)
def list_team_members(ctx, args, team_id):
    """The members of one project team version, with names."""
    return ProjectTeams(ctx).members(team_id, **args)


@blp.route("/<school_id>/project-teams/<team_id>/members", methods=["POST"])
@blp.arguments(MembersAddSchema)
@blp.response(200, ProjectTeamSchema)
@blp.alt_response(409, description="team_locked: POST .../versions for a new version; "
                                   "already_member: someone is in the team already")
@school_route(module=MODULE, roles=STAFF_ROLES)
def add_team_members(ctx, body, team_id):
    """Add members (all or none)."""
    return ProjectTeams(ctx).add_members(team_id, body["members"])


@blp.route("/<school_id>/project-teams/<team_id>/members/<user_id>", methods=["DELETE"])
@blp.response(204)
@blp.alt_response(409, description="team_locked: POST .../versions for a new version")
@school_route(module=MODULE, roles=STAFF_ROLES)
def remove_team_member(ctx, team_id, user_id):
    """Remove one member of an unlocked team."""
    ProjectTeams(ctx).remove_member(team_id, user_id)


@blp.route("/<school_id>/project-teams/<team_id>/versions", methods=["POST"])
@blp.response(201, ProjectTeamSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def create_team_version(ctx, team_id):
    """A new unlocked version (latest + 1) with this version's members; records linked to
    older versions keep pointing at them."""
    return ProjectTeams(ctx).new_version(team_id)


@blp.route("/<school_id>/project-teams/<team_id>", methods=["DELETE"])
@blp.response(204)
@blp.alt_response(409, description="team_linked: a record links (locks) this version")
@school_route(module=MODULE, roles=STAFF_ROLES)
@versioned("team_id", field="write_version")
def delete_team(ctx, team_id):
    """Delete one version of a team that nothing links. A project's unlinked teams also go
    with the project (DELETE S/projects/{id})."""
    ProjectTeamsDeletion(ctx).delete_team(team_id)


class RoleChangeSchema(BaseSchema):
    user_id = Id()
    name = fields.String(allow_none=True)
    role_before = fields.String(allow_none=True)
    role = fields.String(allow_none=True, metadata={"description": "the role in `other_id`"})


class VersionDiffSchema(BaseSchema):
    """What changed from one version of a team (`project_team_id`) to another (`other_id`)."""

    project_team_id = Id()
    other_id = Id()
    from_version = fields.Integer()
    to_version = fields.Integer()
    added = fields.List(fields.Nested(PersonSchema), metadata={
        "description": "in `other_id`, not in `project_team_id`"})
    removed = fields.List(fields.Nested(PersonSchema), metadata={
        "description": "in `project_team_id`, not in `other_id`"})
    role_changed = fields.List(fields.Nested(RoleChangeSchema), metadata={
        "description": "members of both versions whose role differs"})


@blp.route("/<school_id>/project-teams/<team_id>/diff/<other_id>", methods=["GET"])
@blp.response(200, VersionDiffSchema)
@blp.alt_response(422, description="not_same_team: the two are not versions of one team")
@school_route(module=MODULE)
def diff_team_versions(ctx, team_id, other_id):
    """Who was added and removed between two versions of one team, with names and roles."""
    return TeamHistory(ctx).diff(team_id, other_id)


class CorrectionSchema(BaseSchema):
    members = fields.List(fields.Nested(MemberAddSchema), required=True,
                          validate=validate.Length(max=500),
                          metadata={"description": "the corrected roster, whole"})
    relink_record_ids = fields.List(Id(), load_default=list, validate=validate.Length(max=500),
                                    metadata={"description": "evaluations, assessments or "
                                              "note contexts to move to the new version"})


class CorrectionResultSchema(BaseSchema):
    team = fields.Nested(ProjectTeamSchema, metadata={"description": "the new version"})
    relinked_record_ids = fields.List(Id())


@blp.route("/<school_id>/project-teams/<team_id>/correct", methods=["POST"])
@blp.arguments(CorrectionSchema)
@blp.response(201, CorrectionResultSchema)
@blp.alt_response(409, description="record_closed: a named record is closed (nothing "
                                   "written)")
@school_route(module=MODULE, roles=ADMIN_ROLES)
def correct_team(ctx, body, team_id):
    """Correct a team (e.g. a backfilled one, found with `?backfill_source=`): a new version
    with these members, locked when records move to it; each relinked record is audited."""
    return RosterChanges(ctx).correct(team_id, body["members"], body["relink_record_ids"])


# Evaluations, project assessments and note contexts: the same routes for each.

def linked_routes(path: str, manager, what: str) -> None:
    endpoint = path.replace("-", "_")

    @blp.route(f"/<school_id>/{path}", methods=["POST"], endpoint=f"create_{endpoint}")
    @blp.arguments(LinkedCreateSchema)
    @blp.response(201, LinkedSchema)
    @blp.doc(summary=f"Create a {what}",
             description=f"Links a team of the same project (another project's team → 422) "
                         f"and locks it; the {what} records the roster it locked.")
    @school_route(module=MODULE, roles=STAFF_ROLES)
    def create(ctx, body):
        return manager(ctx).create(**body)

    @blp.route(f"/<school_id>/{path}", methods=["GET"], endpoint=f"list_{endpoint}")
    @blp.arguments(LinkedListArgs, location="query")
    @blp.response(200, page_of(LinkedSchema, f"{endpoint.title()}PageSchema"))
    @blp.doc(summary=f"List {what}s",
             description="Newest first; students see those whose roster includes them.")
    @school_route(module=MODULE)
    def list_records(ctx, args):
        return manager(ctx).list(**args)

    @blp.route(f"/<school_id>/{path}/<record_id>", methods=["GET"],
               endpoint=f"get_{endpoint}")
    @blp.response(200, LinkedSchema)
    @blp.doc(summary=f"One {what}")
    @school_route(module=MODULE)
    def get(ctx, record_id):
        return manager(ctx).detail(record_id)

    @blp.route(f"/<school_id>/{path}/<record_id>/close", methods=["POST"],
               endpoint=f"close_{endpoint}")
    @blp.response(200, LinkedSchema)
    @blp.doc(summary=f"Close a {what}",
             description="Idempotent: status closed, closed_at set by the first close only.")
    @school_route(module=MODULE, roles=STAFF_ROLES)
    def close(ctx, record_id):
        return manager(ctx).close(record_id)


linked_routes("evaluations", Evaluations, "evaluation")
linked_routes("project-assessments", ProjectAssessments, "project assessment")
linked_routes("note-contexts", NoteContexts, "note context")


class StudentTeamSchema(BaseSchema):
    """The team version a student was in for one evaluation (or, without `evaluation_id`,
    a current team no evaluation of theirs links yet)."""

    evaluation_id = Id(metadata={"optional": True})
    evaluation_title = fields.String(metadata={"optional": True})
    evaluation_status = fields.String(metadata={"optional": True})
    project_id = Id()
    project_team_id = Id()
    version = fields.Integer(metadata={"description": "the team version"})
    team_name = fields.String(allow_none=True)
    members = fields.List(fields.Nested(PersonSchema))


@blp.route("/<school_id>/students/<user_id>/teams", methods=["GET"])
@blp.response(200, StudentTeamSchema(many=True))
@school_route(module=MODULE)
def student_teams(ctx, user_id):
    """Which team (and version, with its members) a student was in for each evaluation,
    newest first, then their current teams no evaluation links. Students: only their own."""
    return TeamHistory(ctx).student_teams(user_id)


class LateJoinersSchema(BaseSchema):
    user_ids = fields.List(Id(), required=True, validate=validate.Length(min=1, max=100))


@blp.route("/<school_id>/evaluations/<evaluation_id>/late-joiners", methods=["POST"])
@blp.arguments(LateJoinersSchema)
@blp.response(200, LinkedSchema)
@blp.alt_response(409, description="evaluation_closed; already_member")
@school_route(module=MODULE, roles=STAFF_ROLES)
def add_late_joiners(ctx, body, evaluation_id):
    """Add students to an open evaluation: a new version of its team with them, to which the
    evaluation moves (audited as a roster change while open). Other records keep theirs."""
    return RosterChanges(ctx).late_joiners(evaluation_id, body["user_ids"])


class SplitSchema(BaseSchema):
    teams = fields.Integer(validate=validate.Range(min=1, max=500),
                           metadata={"description": "how many teams (or give `size`)"})
    size = fields.Integer(validate=validate.Range(min=1, max=500),
                          metadata={"description": "about how many per team"})
    seed = fields.Integer(validate=validate.Range(min=0, max=2**31 - 1), metadata={
        "description": "same seed, same members: same teams; drawn and answered when absent"})
    balance_by = fields.String(validate=validate.OneOf(BALANCE_ATTRIBUTES), metadata={
        "description": "spread each value of this user attribute evenly over the teams"})
    dry_run = fields.Boolean(load_default=False, metadata={"description": "preview only"})


class SplitMemberSchema(BaseSchema):
    user_id = Id()
    name = fields.String(allow_none=True)
    value = fields.String(allow_none=True, metadata={"description": "the balance_by value"})


class SplitTeamSchema(BaseSchema):
    id = Id(allow_none=True, metadata={"description": "the new course group (null in a "
                                                      "dry run)"})
    name = fields.String()
    member_ids = fields.List(Id())
    members = fields.List(fields.Nested(SplitMemberSchema))


class SplitResultSchema(BaseSchema):
    source_group_id = Id()
    seed = fields.Integer()
    balance_by = fields.String(allow_none=True)
    dry_run = fields.Boolean()
    teams = fields.List(fields.Nested(SplitTeamSchema))


@blp.route("/<school_id>/groups/<group_id>/split", methods=["POST"])
@blp.arguments(SplitSchema)
@blp.response(200, SplitResultSchema)
@blp.doc(operationId="splitCourseGroup")
@school_route(module=MODULE, roles=STAFF_ROLES)
def split_group(ctx, body, group_id):
    """Split a course group into `teams` new course groups, or groups of about `size`:
    shuffled by `seed`, or also balanced by an attribute. Team sizes differ by at most one.
    `dry_run`: the same plan, nothing written."""
    return GroupSplits(ctx).split(group_id, **body)
