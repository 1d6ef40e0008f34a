"""Weekly groups: programs, program students, groups and their week-by-week snapshots.

Roles: admins create and change everything; staff read programs and weeks and may move
students (instructors rebalance groups during the week); students may read only their own
history (the program student whose `email` is theirs).
"""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import fields, validate

from api.etags import versioned
from api.schemas import BaseSchema, Date, Id, PageArgs, Timestamp, page_of
from api.security import school_route
from service.context import ADMIN_ROLES, STAFF_ROLES
from service.weekly_groups import WeeklyGroups
from service.weekly_groups_calendar import WeekCalendar
from service.weekly_groups_changes import WeekChanges
from service.weekly_groups_edits import WeeklyEdits
from service.weekly_groups_moves import WeekMoves
from service.weekly_groups_notes import StudentNotes

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
    carry_forward = fields.Boolean(load_default=False, metadata={
        "description": "advance-week carries the memberships into the new week when empty"})


class ProgramUpdateSchema(BaseSchema):
    name = fields.String(validate=[validate.Length(min=1, max=200), NOT_BLANK])
    description = fields.String(allow_none=True, validate=validate.Length(max=2000))
    max_weeks = fields.Integer(validate=validate.Range(min=1, max=MAX_WEEKS), metadata={
        "description": "shrinking is refused (409 `weeks_hold_members`) while a dropped week "
                       "holds members"})
    start_date = Date(allow_none=True)
    end_date = Date(allow_none=True)
    carry_forward = fields.Boolean()


class ProgramSchema(BaseSchema):
    id = Id(dump_only=True)
    name = fields.String()
    description = fields.String(allow_none=True)
    max_weeks = fields.Integer()
    current_week = fields.Integer()
    start_date = Date(allow_none=True)
    end_date = Date(allow_none=True)
    carry_forward = fields.Boolean()
    created_at = Timestamp(dump_only=True)


class CurrentWeekSchema(BaseSchema):
    id = Id(metadata={"description": "the program"})
    current_week = fields.Integer()
    max_weeks = fields.Integer()
    carried = fields.Integer(metadata={"description": "students carried into the new week"})


class AdvanceWeekArgs(BaseSchema):
    carry_forward = fields.Boolean(load_default=None, metadata={
        "description": "carry the previous week's members and instructors into the new "
                       "week when it has no members; default: the program's setting"})


class ProgramStudentCreateSchema(BaseSchema):
    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), NOT_BLANK])
    ability_level = fields.String(validate=validate.Length(min=1, max=100))
    birth_date = Date()
    customer_id = fields.String(validate=validate.Length(min=1, max=100), metadata={
        "description": "natural key for imports, unique in the school"})
    email = fields.Email(metadata={"description": "ties the student to a user of the same "
                                                  "email, who may then read this history"})
    first_week = fields.Integer(validate=validate.Range(min=1), metadata={
        "description": "the week the student joins; before it \"not yet enrolled\""})


class ProgramStudentUpdateSchema(BaseSchema):
    name = fields.String(validate=[validate.Length(min=1, max=200), NOT_BLANK])
    ability_level = fields.String(allow_none=True, validate=validate.Length(min=1, max=100))
    birth_date = Date(allow_none=True)
    customer_id = fields.String(allow_none=True, validate=validate.Length(min=1, max=100))
    email = fields.Email(allow_none=True)
    first_week = fields.Integer(allow_none=True, validate=validate.Range(min=1))


class ProgramStudentSchema(BaseSchema):
    id = Id()
    program_id = Id()
    name = fields.String()
    ability_level = fields.String(allow_none=True)
    birth_date = Date(allow_none=True)
    age = fields.Integer(allow_none=True, metadata={"description": "in whole years, today"})
    customer_id = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    first_week = fields.Integer(metadata={"description": "the week the student joins"})


class WeeklyGroupCreateSchema(BaseSchema):
    base_name = fields.String(required=True,
                              validate=[validate.Length(min=1, max=200), NOT_BLANK])
    ability_level = fields.String(validate=validate.Length(min=1, max=100))
    max_size = fields.Integer(load_default=8, validate=validate.Range(min=1, max=MAX_GROUP_SIZE))


class WeeklyGroupUpdateSchema(BaseSchema):
    base_name = fields.String(validate=[validate.Length(min=1, max=200), NOT_BLANK])
    ability_level = fields.String(allow_none=True, validate=validate.Length(min=1, max=100))
    max_size = fields.Integer(validate=validate.Range(min=1, max=MAX_GROUP_SIZE), metadata={
        "description": "applied to every week; 409 `group_too_small` when a week holds more"})


class DeleteGroupArgs(BaseSchema):
    force = fields.Boolean(load_default=False, metadata={
        "description": "unassign the group's members instead of refusing (409)"})


class WeeklyGroupSchema(BaseSchema):
    id = Id()
    program_id = Id()
    base_name = fields.String()
    ability_level = fields.String(allow_none=True)
    max_size = fields.Integer(metadata={"description": "the default size of new weeks"})
    generated = fields.Boolean(metadata={"description": "created by a generation"})
    created_at = Timestamp()


class WeekInstructorSchema(BaseSchema):
    id = Id()
    name = fields.String()
    email = fields.String()


class WeekGroupSchema(BaseSchema):
    group_id = Id(allow_none=True, metadata={"description": "null only in a generation "
                                                          "preview: a group to create"})
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
    not_yet_enrolled_students = fields.List(fields.Nested(ProgramStudentSchema), metadata={
        "description": "students whose first week is later"})
    dry_run = fields.Boolean(metadata={"optional": True,
                                       "description": "a proposal: nothing was written "
                                                      "(group_id null: a group to create)"})


PAIR = fields.List(Id(), validate=validate.Length(equal=2))


class GenerateGroupsSchema(BaseSchema):
    max_group_size = fields.Integer(load_default=8,
                                    validate=validate.Range(min=1, max=MAX_GROUP_SIZE))
    week_number = fields.Integer(load_default=1, validate=validate.Range(min=1))
    dry_run = fields.Boolean(load_default=False, metadata={
        "description": "answer the proposed groups and write nothing"})
    age_band_years = fields.Integer(load_default=None, validate=validate.Range(min=1, max=20),
                                    metadata={"description": "split each level into age "
                                              "bands this many years wide (none: one band)"})
    together = fields.List(PAIR, load_default=list, validate=validate.Length(max=500),
                           metadata={"description": "pairs of student ids kept in one group"})
    apart = fields.List(PAIR, load_default=list, validate=validate.Length(max=500),
                        metadata={"description": "pairs of student ids kept in different "
                                                 "groups"})


class GroupWeekRenameSchema(BaseSchema):
    name = fields.String(required=True, validate=[validate.Length(min=1, max=200), NOT_BLANK])


class GroupWeekInstructorSchema(BaseSchema):
    instructor_id = Id(required=True, allow_none=True, metadata={
        "description": "a staff member or school admin of the school; null removes"})


class StudentMovesSchema(BaseSchema):
    student_ids = fields.List(Id(), required=True, validate=validate.Length(min=1, max=500))
    group_id = Id(required=True, allow_none=True, metadata={
        "description": "null: unassign the students"})
    waitlist = fields.Boolean(load_default=False, metadata={
        "description": "students beyond the free seats wait for one instead of a 409"})


class StudentMovesResultSchema(BaseSchema):
    week_number = fields.Integer()
    group_id = Id(allow_none=True)
    moved_student_ids = fields.List(Id())
    unchanged_student_ids = fields.List(Id(), metadata={"description": "already in the group"})
    waitlisted = fields.List(Id(), metadata={"description": "now waiting for a seat (202)"})
    change_id = Id(allow_none=True, metadata={"description": "the change set, for undo"})
    capacity = fields.String(allow_none=True, metadata={"example": "8/8"})


class SwapSchema(BaseSchema):
    student_a = Id(required=True)
    student_b = Id(required=True)


class SwappedStudentSchema(BaseSchema):
    student_id = Id()
    group_id = Id(allow_none=True, metadata={"description": "their group now"})


class SwapResultSchema(BaseSchema):
    week_number = fields.Integer()
    change_id = Id()
    student_a = fields.Nested(SwappedStudentSchema)
    student_b = fields.Nested(SwappedStudentSchema)


class WaitingStudentSchema(ProgramStudentSchema):
    position = fields.Integer(metadata={"description": "1: seated at the next free seat"})
    since = Timestamp()


class WaitlistSchema(GroupWeekSchema):
    students = fields.List(fields.Nested(WaitingStudentSchema))


class ChangeMoveSchema(BaseSchema):
    student_id = Id()
    from_group_id = Id(allow_none=True)
    to_group_id = Id(allow_none=True)


class ChangedWeekSchema(BaseSchema):
    week_number = fields.Integer()
    week_version = fields.Integer(metadata={"description": "the week's version it produced"})
    moves = fields.List(fields.Nested(ChangeMoveSchema))


class ChangeSetSchema(BaseSchema):
    id = Id()
    reason = fields.String(metadata={"description": "move, swap, generate, copy, "
                                                    "carry_forward, delete_group, undo"})
    actor_id = Id(allow_none=True)
    created_at = Timestamp()
    weeks = fields.List(fields.Nested(ChangedWeekSchema))
    student_count = fields.Integer()
    undo_of = Id(allow_none=True, metadata={"description": "the change set this one undid"})
    undone_by = Id(allow_none=True, metadata={"description": "the undo of this one"})


class MyWeeklyGroupSchema(GroupWeekSchema):
    program_id = Id()
    program_name = fields.String()
    is_current_week = fields.Boolean()
    students = fields.List(fields.Nested(ProgramStudentSchema))


class NoteCreateSchema(BaseSchema):
    text = fields.String(required=True, validate=[validate.Length(min=1, max=5000), NOT_BLANK])
    is_private = fields.Boolean(load_default=False, metadata={
        "description": "read by its author and the admins only"})


class NoteAuthorSchema(BaseSchema):
    id = Id()
    name = fields.String(allow_none=True)


class NoteSchema(BaseSchema):
    id = Id()
    student_id = Id()
    author = fields.Nested(NoteAuthorSchema)
    text = fields.String()
    is_private = fields.Boolean()
    created_at = Timestamp()


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
STUDENT = PROGRAM + "/students/<student_id>"
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
@versioned("program_id")
def get_program(ctx, program_id):
    """One program."""
    return WeeklyGroups(ctx).get_program(program_id)


@blp.route(PROGRAM, methods=["PATCH"])
@blp.arguments(ProgramUpdateSchema)
@blp.response(200, ProgramSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
@versioned("program_id")
def update_program(ctx, body, program_id):
    """Change the name, description, dates, `carry_forward` or `max_weeks`. Shrinking is
    refused while a dropped week holds members (409 `weeks_hold_members`) or the program is
    past the new end (409 `current_week_dropped`)."""
    return WeeklyEdits(ctx).update_program(program_id, **body)


@blp.route(PROGRAM, methods=["DELETE"])
@blp.response(204)
@school_route(module=MODULE, roles=ADMIN_ROLES)
@versioned("program_id")
def delete_program(ctx, program_id):
    """Delete the program with its students, groups, weeks, notes and change sets."""
    WeeklyEdits(ctx).delete_program(program_id)


@blp.route(PROGRAM + "/advance-week", methods=["POST"])
@blp.arguments(AdvanceWeekArgs, location="query")
@blp.response(200, CurrentWeekSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def advance_week(ctx, args, program_id):
    """Move the program to its next week; 409 `final_week` at the last one. With
    `carry_forward` the new week takes the previous week's members when it has none."""
    return WeekCalendar(ctx).advance_week(program_id, args["carry_forward"])


@blp.route(PROGRAM + "/weeks/current", methods=["GET"])
@blp.response(200, WeekViewSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def current_week(ctx, program_id):
    """The week view of the program's current week."""
    return WeekCalendar(ctx).current_week(program_id)


@blp.route("/<school_id>/my/weekly-groups", methods=["GET"])
@blp.response(200, MyWeeklyGroupSchema(many=True))
@school_route(module=MODULE, roles=STAFF_ROLES)
def my_weekly_groups(ctx):
    """The groups the caller teaches in the current and the next week of each program, with
    their students."""
    return WeekCalendar(ctx).my_groups()


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


@blp.route(STUDENT, methods=["PATCH"])
@blp.arguments(ProgramStudentUpdateSchema)
@blp.response(200, ProgramStudentSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def update_student(ctx, body, program_id, student_id):
    """Change a student's details; 409 `duplicate` for a customer_id used in the school."""
    return WeeklyEdits(ctx).update_student(program_id, student_id, **body)


@blp.route(STUDENT, methods=["DELETE"])
@blp.response(204)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def delete_student(ctx, program_id, student_id):
    """Take the student out of every week's group and waitlist, then delete them."""
    WeeklyEdits(ctx).delete_student(program_id, student_id)


@blp.route(STUDENT + "/notes", methods=["POST"])
@blp.arguments(NoteCreateSchema)
@blp.response(201, NoteSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def add_note(ctx, body, program_id, student_id):
    """A staff note on the student; a private one is read by its author and the admins."""
    return StudentNotes(ctx).add_note(program_id, student_id, **body)


@blp.route(STUDENT + "/notes", methods=["GET"])
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_of(NoteSchema))
@school_route(module=MODULE, roles=STAFF_ROLES)
def list_notes(ctx, args, program_id, student_id):
    """The notes the caller may read, newest first (students never read notes)."""
    return StudentNotes(ctx).list_notes(program_id, student_id, **args)


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


@blp.route(PROGRAM + "/groups/<group_id>", methods=["PATCH"])
@blp.arguments(WeeklyGroupUpdateSchema)
@blp.response(200, WeeklyGroupSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def update_group(ctx, body, program_id, group_id):
    """Change the group's base name, level or size, in every week (a week's own name is
    kept); 409 `group_too_small` when a week holds more members than the new size."""
    return WeeklyEdits(ctx).update_group(program_id, group_id, **body)


@blp.route(PROGRAM + "/groups/<group_id>", methods=["DELETE"])
@blp.arguments(DeleteGroupArgs, location="query")
@blp.response(204)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def delete_group(ctx, args, program_id, group_id):
    """Delete the group from every week; 409 `group_has_members` while a week holds
    members, unless `?force=true`: then they are unassigned."""
    WeeklyEdits(ctx).delete_group(program_id, group_id, args["force"])


@blp.route(PROGRAM + "/changes", methods=["GET"])
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_of(ChangeSetSchema))
@school_route(module=MODULE, roles=STAFF_ROLES)
def list_changes(ctx, args, program_id):
    """The program's change sets (moves, swaps, generations, copies, carry-forwards, undos),
    newest first."""
    return WeekChanges(ctx).list_changes(program_id, **args)


@blp.route(PROGRAM + "/changes/<change_id>/undo", methods=["POST"])
@blp.response(200, ChangeSetSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def undo_change(ctx, program_id, change_id):
    """Put the students of one change set back where they were; answers the undo's own
    change set. 409 `undo_conflict` (`details.student_ids`) when a later change touched
    some of them, or their old group has no room now."""
    return WeekChanges(ctx).undo(program_id, change_id)


@blp.route(PROGRAM + "/groups/generate", methods=["POST"])
@blp.arguments(GenerateGroupsSchema)
@blp.response(200, WeekViewSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def generate_groups(ctx, body, program_id):
    """Group the students by ability level, then age band, youngest first, at most
    `max_group_size` a group, named "<level> Group <n>", keeping `together` pairs together
    and `apart` pairs apart; replaces that week's memberships only and removes generated
    groups left empty in every week. Answers the week view, or with `dry_run` the proposed
    groups (nothing written). 422 for a week outside the program."""
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


@blp.route(WEEK_GROUP + "/waitlist", methods=["GET"])
@blp.response(200, WaitlistSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def group_waitlist(ctx, program_id, week, group_id):
    """Who waits for a seat in the group that week, first first."""
    return WeeklyGroups(ctx).waitlist(program_id, week, group_id)


@blp.route(PROGRAM + "/weeks/<int:week>/moves", methods=["POST"])
@blp.arguments(StudentMovesSchema)
@blp.response(200, StudentMovesResultSchema)
@blp.alt_response(202, schema=StudentMovesResultSchema,
                  description="some students were waitlisted (`waitlisted`)")
@school_route(module=MODULE, roles=STAFF_ROLES)
def move_students(ctx, body, program_id, week):
    """Move the students into the group for this week (`group_id` null: out of any group),
    all or none. 409 `group_full` when they do not all fit (never over capacity, whatever
    runs in parallel), unless `waitlist`: then those beyond the free seats wait (202), and
    the first waiting takes the next seat freed. 422 `student_in_other_program`,
    `group_not_in_program`, or `group_not_in_week` for a group starting later."""
    result = WeekMoves(ctx).move_students(program_id, week, body["student_ids"],
                                          body["group_id"], body["waitlist"])
    return result, 202 if result["waitlisted"] else 200


@blp.route(PROGRAM + "/weeks/<int:week>/swaps", methods=["POST"])
@blp.arguments(SwapSchema)
@blp.response(200, SwapResultSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def swap_students(ctx, body, program_id, week):
    """The two students exchange their groups this week in one step, full groups included
    (one may be in no group). 422 `same_group` when they share a group."""
    return WeekMoves(ctx).swap(program_id, week, body["student_a"], body["student_b"])


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
