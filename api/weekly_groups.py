"""Weekly groups: programs, program students, groups and their week-by-week snapshots.

Roles: admins create and change everything; staff read programs and weeks and may move
students (instructors rebalance groups during the week); students may read only their own
history (the program student whose `email` is theirs).
"""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import fields, validate

from api.schemas import BaseSchema, Date, Id, PageArgs, Timestamp, page_of
from api.security import school_route
from service.context import ADMIN_ROLES, STAFF_ROLES
from service.weekly_groups import WeeklyGroups
from service.weekly_groups_moves import WeekMoves

blp = Blueprint("weekly_groups", __name__, url_prefix="/schools",
                description="Weekly groups: programs, students, groups per week, moves")

MODULE = "weekly_groups"
MAX_WEEKS = 52
MAX_GROUP_SIZE = 200
NOT_BLANK = validate.Regexp(r"\S", error="Must not be blank.")


class ProgramCreateSchema(BaseSchema):
    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), NOT_BLANK])
    description = fields.String(validate=validate.Length(max=2000))
    max_weeks = fields.Integer(load_default=6, validate=validate.Range(min=1, max=MAX_WEEKS))
    start_date = Date()
    end_date = Date()


class ProgramSchema(BaseSchema):
    id = Id(dump_only=True)
    name = fields.String()
    description = fields.String(allow_none=True)
    max_weeks = fields.Integer()
    current_week = fields.Integer()
    start_date = Date(allow_none=True)
    end_date = Date(allow_none=True)
    created_at = Timestamp(dump_only=True)


class CurrentWeekSchema(BaseSchema):
    id = Id(metadata={"description": "the program"})
    current_week = fields.Integer()
    max_weeks = fields.Integer()


class ProgramStudentCreateSchema(BaseSchema):
    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), NOT_BLANK])
    ability_level = fields.String(validate=validate.Length(min=1, max=100))
    birth_date = Date()
    customer_id = fields.String(validate=validate.Length(min=1, max=100), metadata={
        "description": "natural key for imports, unique in the school"})
    email = fields.Email(metadata={"description": "ties the student to a user of the same "
                                                  "email, who may then read this history"})


class ProgramStudentSchema(BaseSchema):
    id = Id()
    program_id = Id()
    name = fields.String()
    ability_level = fields.String(allow_none=True)
    birth_date = Date(allow_none=True)
    age = fields.Integer(allow_none=True, metadata={"description": "in whole years, today"})
    customer_id = fields.String(allow_none=True)
    email = fields.String(allow_none=True)


class WeeklyGroupCreateSchema(BaseSchema):
    base_name = fields.String(required=True,
                              validate=[validate.Length(min=1, max=200), NOT_BLANK])
    ability_level = fields.String(validate=validate.Length(min=1, max=100))
    max_size = fields.Integer(load_default=8, validate=validate.Range(min=1, max=MAX_GROUP_SIZE))


class WeeklyGroupSchema(BaseSchema):
    id = Id()
    program_id = Id()
    base_name = fields.String()
    ability_level = fields.String(allow_none=True)
    max_size = fields.Integer(metadata={"description": "the default size of new weeks"})
    created_at = Timestamp()


class WeekInstructorSchema(BaseSchema):
    id = Id()
    name = fields.String()
    email = fields.String()


class WeekGroupSchema(BaseSchema):
    group_id = Id()
    base_name = fields.String()
    name = fields.String(metadata={"description": "this week's name (the base name unless "
                                                  "renamed for the week)"})
    ability_level = fields.String(allow_none=True)
    max_size = fields.Integer()
    instructor = fields.Nested(WeekInstructorSchema, allow_none=True)
    students = fields.List(fields.Nested(ProgramStudentSchema))
    capacity = fields.String(metadata={"example": "5/8"})


class GroupWeekSchema(BaseSchema):
    group_id = Id()
    week_number = fields.Integer()
    base_name = fields.String()
    name = fields.String()
    ability_level = fields.String(allow_none=True)
    max_size = fields.Integer()
    instructor = fields.Nested(WeekInstructorSchema, allow_none=True)
    capacity = fields.String(metadata={"example": "5/8"})


class WeekViewSchema(BaseSchema):
    program_id = Id()
    week_number = fields.Integer()
    current_week = fields.Integer()
    groups = fields.List(fields.Nested(WeekGroupSchema))
    unassigned_students = fields.List(fields.Nested(ProgramStudentSchema))


class GenerateGroupsSchema(BaseSchema):
    max_group_size = fields.Integer(load_default=8,
                                    validate=validate.Range(min=1, max=MAX_GROUP_SIZE))
    week_number = fields.Integer(load_default=1, validate=validate.Range(min=1))


class GroupWeekRenameSchema(BaseSchema):
    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), NOT_BLANK])


class GroupWeekInstructorSchema(BaseSchema):
    instructor_id = Id(required=True, allow_none=True, metadata={
        "description": "a staff member or school admin of the school; null removes"})


class StudentMovesSchema(BaseSchema):
    student_ids = fields.List(Id(), required=True, validate=validate.Length(min=1, max=500))
    group_id = Id(required=True)


class StudentMovesResultSchema(BaseSchema):
    week_number = fields.Integer()
    group_id = Id()
    moved_student_ids = fields.List(Id())
    unchanged_student_ids = fields.List(Id(), metadata={"description": "already in the group"})
    capacity = fields.String(metadata={"example": "8/8"})


class StudentHistoryWeekSchema(BaseSchema):
    group_id = Id()
    group_name = fields.String(allow_none=True)
    joined_at = Timestamp(allow_none=True)


class StudentHistoryMoveSchema(BaseSchema):
    week_number = fields.Integer()
    reason = fields.String(metadata={"description": "move, generate, copy or import"})
    from_group_id = Id(allow_none=True)
    from_group_name = fields.String(allow_none=True)
    to_group_id = Id(allow_none=True)
    to_group_name = fields.String(allow_none=True)
    moved_by = Id(allow_none=True)
    moved_at = Timestamp()


class StudentHistorySchema(BaseSchema):
    student = fields.Nested(ProgramStudentSchema)
    weeks = fields.Dict(keys=fields.String(), values=fields.Nested(StudentHistoryWeekSchema),
                        metadata={"description": "week number -> the group that week"})
    moves = fields.List(fields.Nested(StudentHistoryMoveSchema))


PROGRAM = "/<school_id>/programs/<program_id>"
WEEK_GROUP = PROGRAM + "/weeks/<int:week>/groups/<group_id>"


@blp.route("/<school_id>/programs", methods=["POST"])
@blp.arguments(ProgramCreateSchema)
@blp.response(201, ProgramSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def create_program(ctx, body):
    """Create a program; it starts at week 1."""
    return WeeklyGroups(ctx).create_program(**body)


@blp.route("/<school_id>/programs", methods=["GET"])
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_of(ProgramSchema))
@school_route(module=MODULE, roles=STAFF_ROLES)
def list_programs(ctx, args):
    """The school's programs by name."""
    return WeeklyGroups(ctx).list_programs(**args)


@blp.route(PROGRAM, methods=["GET"])
@blp.response(200, ProgramSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def get_program(ctx, program_id):
    """One program."""
    return WeeklyGroups(ctx).get_program(program_id)


@blp.route(PROGRAM + "/advance-week", methods=["POST"])
@blp.response(200, CurrentWeekSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def advance_week(ctx, program_id):
    """Move the program to its next week; 409 `final_week` at the last one."""
    return WeeklyGroups(ctx).advance_week(program_id)


@blp.route(PROGRAM + "/students", methods=["POST"])
@blp.arguments(ProgramStudentCreateSchema)
@blp.response(201, ProgramStudentSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def add_student(ctx, body, program_id):
    """Add a student to the program; 409 `duplicate` for a customer_id used in the school."""
    return WeeklyGroups(ctx).add_student(program_id, **body)


@blp.route(PROGRAM + "/students", methods=["GET"])
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_of(ProgramStudentSchema))
@school_route(module=MODULE, roles=STAFF_ROLES)
def list_students(ctx, args, program_id):
    """The program's students by name, with their age today."""
    return WeeklyGroups(ctx).list_students(program_id, **args)


@blp.route(PROGRAM + "/groups", methods=["POST"])
@blp.arguments(WeeklyGroupCreateSchema)
@blp.response(201, WeeklyGroupSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def create_group(ctx, body, program_id):
    """Create a group for every week of the program; 409 `duplicate` for a taken base name."""
    return WeeklyGroups(ctx).create_group(program_id, **body)


@blp.route(PROGRAM + "/groups", methods=["GET"])
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_of(WeeklyGroupSchema))
@school_route(module=MODULE, roles=STAFF_ROLES)
def list_groups(ctx, args, program_id):
    """The program's groups by ability level and base name."""
    return WeeklyGroups(ctx).list_groups(program_id, **args)


@blp.route(PROGRAM + "/groups/generate", methods=["POST"])
@blp.arguments(GenerateGroupsSchema)
@blp.response(200, WeekViewSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def generate_groups(ctx, body, program_id):
    """Group the students by ability level, youngest first, in chunks of `max_group_size`,
    named "<level> Group <n>"; replaces that week's memberships only. Answers the week view.
    422 for a week outside the program."""
    return WeekMoves(ctx).generate_groups(program_id, **body)


@blp.route(PROGRAM + "/weeks/<int:week>", methods=["GET"])
@blp.response(200, WeekViewSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def week_view(ctx, program_id, week):
    """The week's groups with their name, instructor, students and capacity, and the
    students in no group that week. 404 for a week outside 1..max_weeks."""
    return WeeklyGroups(ctx).week_view(program_id, week)


@blp.route(WEEK_GROUP + "/name", methods=["PUT"])
@blp.arguments(GroupWeekRenameSchema)
@blp.response(200, GroupWeekSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def rename_group(ctx, body, program_id, week, group_id):
    """Name the group for this week only."""
    return WeeklyGroups(ctx).rename_group(program_id, week, group_id, body["name"])


@blp.route(WEEK_GROUP + "/instructor", methods=["PUT"])
@blp.arguments(GroupWeekInstructorSchema)
@blp.response(200, GroupWeekSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def set_instructor(ctx, body, program_id, week, group_id):
    """Set (or with null, remove) the group's instructor for this week; the instructors
    concerned are notified. 422 when the instructor is not staff or admin of the school."""
    return WeeklyGroups(ctx).set_instructor(program_id, week, group_id, body["instructor_id"])


@blp.route(PROGRAM + "/weeks/<int:week>/moves", methods=["POST"])
@blp.arguments(StudentMovesSchema)
@blp.response(200, StudentMovesResultSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def move_students(ctx, body, program_id, week):
    """Move the students into the group for this week, all or none. 409 `group_full` when
    they do not all fit (never over capacity, whatever runs in parallel); 422
    `student_in_other_program`, or `group_not_in_program` for a group of another program."""
    return WeekMoves(ctx).move_students(program_id, week, body["student_ids"],
                                           body["group_id"])


@blp.route(PROGRAM + "/weeks/<int:to_week>/copy-from/<int:from_week>", methods=["POST"])
@blp.response(200, WeekViewSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def copy_week(ctx, program_id, to_week, from_week):
    """Make `to_week` a copy of `from_week` (names, instructors, sizes, memberships),
    replacing what it held. 422 for weeks outside the program or equal weeks."""
    return WeekMoves(ctx).copy_week(program_id, to_week, from_week)


@blp.route(PROGRAM + "/students/<student_id>/history", methods=["GET"])
@blp.response(200, StudentHistorySchema)
@school_route(module=MODULE)
def student_history(ctx, program_id, student_id):
    """The student's group in each week and every change, oldest first. Staff and admins see
    any student; a student only the program student carrying their email (else 404)."""
    return WeeklyGroups(ctx).history(program_id, student_id)
