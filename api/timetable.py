"""The timetable module: settings, periods, department permissions, assignments with many
classes, overrides, self-allocations, alteration requests, the staff grid, the conflicts
report and the CSV / iCalendar exports."""

from __future__ import annotations

from flask import Response
from flask_smorest import Blueprint
from marshmallow import ValidationError, fields, validate

from api.auth import UserSchema
from api.etags import versioned
from api.schemas import BaseSchema, Date, Id, PageArgs, TimeOfDay, Timestamp, page_of
from api.security import school_route
from api.timetable_dated import DATED_STATUSES, DatedChangeSchema, DatedGridArgs
from documents.timetable import ASSIGNMENT_TYPES, REQUEST_STATUSES
from service.context import ADMIN_ROLES, STAFF_ROLES
from service.timetable import MODULE, SETTINGS_KIND, TimetableSetup
from service.timetable_alterations import AlterationRequests
from service.timetable_assignments import Assignments
from service.timetable_dated import DatedTimetable
from service.timetable_edits import LessonEdits
from service.timetable_exchanges import ExchangeRequests
from service.timetable_exports import TimetableViews
from service.timetable_grids import TimetableGrids

blp = Blueprint("timetable", __name__, url_prefix="/schools",
                description="Timetable: periods, assignments, swaps, overrides and exports. "
                            "Keys in paths (class ids, rooms, departments) may contain `/`, "
                            "sent percent-encoded (`10%2FA`) or as is.")

DAY = validate.Range(min=0, max=6)
GRID_STATUSES = ("empty", "assigned", "self_added", "altered_sent", "altered_received",
                 "overridden")


# schemas

class SettingsSchema(BaseSchema):
    working_days = fields.List(fields.Integer(validate=DAY),
                               metadata={"description": "0 = Monday ... 6 = Sunday"})
    default_period_duration = fields.Integer(
        metadata={"description": "Minutes; used when a period is created without end_time."})
    allow_overlapping_assignments = fields.Boolean(
        metadata={"description": "When on, a class or room may be taught by several staff in "
                                 "one slot (combined lessons); staff are never double booked."})
    updated_at = Timestamp(dump_only=True)


class SettingsUpdateSchema(BaseSchema):
    working_days = fields.List(fields.Integer(validate=DAY),
                               validate=validate.Length(min=1, max=7))
    default_period_duration = fields.Integer(validate=validate.Range(min=5, max=600))
    allow_overlapping_assignments = fields.Boolean()


class PeriodCreateSchema(BaseSchema):
    period_number = fields.Integer(required=True, validate=validate.Range(min=1, max=100))
    period_name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    start_time = TimeOfDay(required=True)
    end_time = TimeOfDay(metadata={"description": "Defaults to start_time + the school's "
                                                  "default_period_duration."})


class PeriodUpdateSchema(BaseSchema):
    period_number = fields.Integer(validate=validate.Range(min=1, max=100))
    period_name = fields.String(validate=validate.Length(min=1, max=100))
    start_time = TimeOfDay()
    end_time = TimeOfDay()


class BreakSchema(BaseSchema):
    after_period = fields.Integer(required=True, validate=validate.Range(min=1, max=100),
                                  metadata={"description": "The break follows this period "
                                                           "(1 = the first generated)."})
    minutes = fields.Integer(required=True, validate=validate.Range(min=1, max=600))


class PeriodGenerateSchema(BaseSchema):
    first_start = TimeOfDay(load_default="08:00",
                            metadata={"description": "When the first period starts."})
    count = fields.Integer(load_default=8, validate=validate.Range(min=1, max=30),
                           metadata={"description": "How many periods (8 by default)."})
    duration = fields.Integer(validate=validate.Range(min=5, max=600), metadata={
        "description": "Minutes per period; the school's default_period_duration if absent."})
    breaks = fields.List(fields.Nested(BreakSchema), load_default=list)


class PeriodDeleteArgs(BaseSchema):
    cascade = fields.Boolean(load_default=False, metadata={
        "description": "End the period's lessons too (each audited); without it a period "
                       "with lessons answers 409 `period_in_use`."})


class PeriodSchema(BaseSchema):
    id = Id()
    period_number = fields.Integer()
    period_name = fields.String()
    start_time = fields.String(metadata={"example": "08:00"})
    end_time = fields.String(metadata={"example": "08:45"})
    duration_minutes = fields.Integer()
    is_active = fields.Boolean()


class DepartmentPermissionSchema(BaseSchema):
    department = fields.String()
    allow_alterations = fields.Boolean(metadata={"description": "May send requests."})
    allow_inbound = fields.Boolean(metadata={"description": "May receive requests."})
    updated_at = Timestamp(allow_none=True)


class DepartmentPermissionListSchema(BaseSchema):
    items = fields.List(fields.Nested(DepartmentPermissionSchema))
    total = fields.Integer()


class DepartmentPermissionUpdateSchema(BaseSchema):
    allow_alterations = fields.Boolean()
    allow_inbound = fields.Boolean()


class EligibleTargetArgs(PageArgs):
    department = fields.String(metadata={"description": "Only staff of this department."})


def not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Must not be blank.")


class ClassSchema(BaseSchema):
    class_id = fields.String(required=True, validate=[validate.Length(min=1, max=50), not_blank],
                             metadata={"example": "10-A"})
    subject = fields.String(required=True,
                            validate=[validate.Length(min=1, max=100), not_blank])
    room_number = fields.String(allow_none=True, validate=validate.Length(max=50))
    student_count = fields.Integer(allow_none=True, validate=validate.Range(min=0, max=10000))


class AssignmentCreateSchema(BaseSchema):
    staff_id = Id(required=True)
    period_id = Id(required=True)
    day_of_week = fields.Integer(required=True, validate=DAY)
    classes = fields.List(fields.Nested(ClassSchema), required=True,
                          validate=validate.Length(min=1, max=50))
    week = fields.String(allow_none=True, validate=validate.OneOf(("A", "B")), metadata={
        "description": "A/B rotation: runs in week A (or B) only; lessons of the other week "
                       "may share the slot. Absent: every week."})


class AssignmentUpdateSchema(BaseSchema):
    period_id = Id(metadata={"description": "Move the lesson to this period ..."})
    day_of_week = fields.Integer(validate=DAY, metadata={"description": "... and/or day."})
    subject = fields.String(validate=[validate.Length(min=1, max=100), not_blank],
                            metadata={"description": "The subject of every class."})
    room_number = fields.String(allow_none=True, validate=validate.Length(max=50),
                                metadata={"description": "The room of every class."})


class ClassUpdateSchema(BaseSchema):
    subject = fields.String(validate=[validate.Length(min=1, max=100), not_blank])
    room_number = fields.String(allow_none=True, validate=validate.Length(max=50))
    student_count = fields.Integer(allow_none=True, validate=validate.Range(min=0, max=10000))


class LockSchema(BaseSchema):
    reason = fields.String(required=True, validate=[validate.Length(min=1, max=1000),
                                                    not_blank])


class AssignmentSchema(BaseSchema):
    id = Id()
    staff_id = Id()
    period_id = Id()
    day_of_week = fields.Integer()
    week = fields.String(allow_none=True, metadata={"description": "A or B: that rotation "
                                                                   "week only; null: every week."})
    classes = fields.List(fields.Nested(ClassSchema))
    assignment_type = fields.String(validate=validate.OneOf(ASSIGNMENT_TYPES))
    is_locked = fields.Boolean()
    locked = fields.Function(lambda assignment: bool(assignment.is_locked),
                             metadata={"type": "boolean", "description": "Same as is_locked."})
    original_staff_id = Id(allow_none=True)
    override_notes = fields.String(allow_none=True)
    swap_request_id = Id(allow_none=True)
    activity_name = fields.String(allow_none=True)
    description = fields.String(allow_none=True)
    locked_reason = fields.String(allow_none=True, metadata={"description": "The admin's."})
    locked_by = Id(allow_none=True)
    locked_at = Timestamp(allow_none=True)
    created_by = Id(allow_none=True)
    updated_by = Id(allow_none=True, metadata={"description": "Who changed it last."})
    exchange_request_id = Id(allow_none=True, metadata={
        "description": "The two-way exchange that brought it to its holder."})
    version = fields.Integer()
    created_at = Timestamp()
    updated_at = Timestamp()


class AssignmentListArgs(PageArgs):
    staff_id = Id()
    day_of_week = fields.Integer(validate=DAY)
    period_id = Id()


class OverrideSchema(BaseSchema):
    new_staff_id = Id(required=True)
    notes = fields.String(validate=validate.Length(max=1000))


class SelfAllocationCreateSchema(BaseSchema):
    period_id = Id(required=True)
    day_of_week = fields.Integer(required=True, validate=DAY)
    activity_name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(validate=validate.Length(max=2000))
    classes = fields.List(fields.Nested(ClassSchema), validate=validate.Length(max=50))


class StaffSummarySchema(BaseSchema):
    id = Id()
    name = fields.String()
    email = fields.String()
    department = fields.String(allow_none=True)


class SlotSchema(BaseSchema):
    period_id = Id()
    period_number = fields.Integer()
    period_name = fields.String()
    start_time = fields.String()
    end_time = fields.String()
    status = fields.String(validate=validate.OneOf(GRID_STATUSES), metadata={
        "description": "altered_sent and overridden also show on the original holder's grid, "
                       "with the assignment now held by someone else (its staff_id)"})
    locked = fields.Boolean(metadata={"description": "The lesson here is locked."})
    assignment = fields.Nested(AssignmentSchema, allow_none=True)
    dated_status = fields.String(validate=validate.OneOf(DATED_STATUSES), metadata={
        "optional": True,
        "description": "Dated grids only: what happens on that date (covered: someone covers "
                       "your lesson; covering: you cover `change`; absent: yours, uncovered)."})
    change = fields.Nested(DatedChangeSchema, allow_none=True, metadata={
        "optional": True,
        "description": "Dated grids only: the date's change shown by dated_status."})


class DaySchema(BaseSchema):
    day_of_week = fields.Integer()
    date = Date(metadata={"optional": True, "description": "Dated grids only."})
    week = fields.String(allow_none=True, metadata={
        "optional": True, "description": "Dated grids: A or B when the school rotates."})
    holiday = fields.String(allow_none=True, metadata={"optional": True,
                                                       "description": "Dated grids only."})
    slots = fields.List(fields.Nested(SlotSchema))


class StaffGridSchema(BaseSchema):
    staff = fields.Nested(StaffSummarySchema)
    periods = fields.List(fields.Nested(PeriodSchema))
    days = fields.List(fields.Nested(DaySchema))


class GridArgs(BaseSchema):
    date = Date(metadata={"description": "Show the week holding this date: its rotation "
                                         "week, holidays and dated changes applied."})


class GridLessonSchema(AssignmentSchema):
    staff_name = fields.String(allow_none=True)


class KeyChangeSchema(BaseSchema):
    assignment_id = Id()
    action = fields.String(validate=validate.OneOf(("cover", "cancel", "room")))
    cover_staff_id = Id(allow_none=True)
    room = fields.String(allow_none=True)
    notes = fields.String(allow_none=True)


class KeySlotSchema(BaseSchema):
    period_id = Id()
    period_number = fields.Integer()
    period_name = fields.String()
    start_time = fields.String()
    end_time = fields.String()
    status = fields.String(validate=validate.OneOf(("empty", "assigned", "holiday")))
    locked = fields.Boolean(metadata={"description": "A lesson here is locked."})
    changes = fields.List(fields.Nested(KeyChangeSchema), metadata={
        "optional": True,
        "description": "With ?date=: that date's change of each lesson shown (covered, "
                       "cancelled, moved to another room)."})
    assignment = fields.Nested(GridLessonSchema, allow_none=True,
                               metadata={"description": "The first of `assignments`."})
    assignments = fields.List(fields.Nested(GridLessonSchema), metadata={
        "description": "Every lesson of the slot teaching the class (using the room): more "
                       "than one only where overlapping assignments are allowed."})


class KeyDaySchema(BaseSchema):
    day_of_week = fields.Integer()
    date = Date(allow_none=True, metadata={"optional": True,
                                           "description": "With ?date= only."})
    week = fields.String(allow_none=True, metadata={
        "optional": True, "description": "With ?date= only: the A/B rotation week."})
    holiday = fields.String(allow_none=True, metadata={
        "optional": True, "description": "With ?date= only: the holiday's name."})
    slots = fields.List(fields.Nested(KeySlotSchema))


class KeyGridSchema(BaseSchema):
    key = fields.String(metadata={"description": "The key as compared: case and spaces aside."})
    date = Date(allow_none=True)
    periods = fields.List(fields.Nested(PeriodSchema))
    days = fields.List(fields.Nested(KeyDaySchema))


class ClassGridSchema(KeyGridSchema):
    class_id = fields.String()


class RoomGridSchema(KeyGridSchema):
    room = fields.String()


class ExchangeRequestCreateSchema(BaseSchema):
    assignment_id = Id(required=True, metadata={"description": "Your lesson, offered ..."})
    target_assignment_id = Id(required=True,
                              metadata={"description": "... for this colleague's lesson."})
    reason = fields.String(required=True, validate=validate.Length(min=1, max=1000))


class ExchangeRequestSchema(BaseSchema):
    id = Id()
    assignment_id = Id()
    target_assignment_id = Id()
    requester_id = Id()
    target_staff_id = Id()
    day_of_week = fields.Integer()
    period_id = Id()
    target_day_of_week = fields.Integer()
    target_period_id = Id()
    reason = fields.String()
    status = fields.String(validate=validate.OneOf(REQUEST_STATUSES))
    responded_by = Id(allow_none=True)
    responded_at = Timestamp(allow_none=True)
    response_reason = fields.String(allow_none=True)
    failure_code = fields.String(allow_none=True, metadata={
        "description": "Why it failed: assignment_changed, slot_taken, locked or "
                       "interrupted; both lessons stay where they were."})
    created_at = Timestamp()
    updated_at = Timestamp()


class AlterationRequestCreateSchema(BaseSchema):
    assignment_id = Id(required=True)
    target_staff_id = Id(metadata={"description": "A named colleague, or ..."})
    target_department = fields.String(validate=validate.Length(min=1, max=100),
                                      metadata={"description": "... a whole department: the "
                                                               "first eligible acceptor wins."})
    reason = fields.String(required=True, validate=validate.Length(min=1, max=1000))


class AlterationRequestSchema(BaseSchema):
    id = Id()
    assignment_id = Id()
    day_of_week = fields.Integer()
    period_id = Id()
    requester_id = Id()
    target_staff_id = Id(allow_none=True)
    target_department = fields.String(allow_none=True)
    reason = fields.String()
    status = fields.String(validate=validate.OneOf(REQUEST_STATUSES))
    accepted_by = Id(allow_none=True)
    declined_by = fields.List(Id(), metadata={
        "description": "Members of the target department who declined."})
    responded_by = Id(allow_none=True)
    responded_at = Timestamp(allow_none=True)
    response_reason = fields.String(allow_none=True)
    failure_code = fields.String(allow_none=True, metadata={
        "description": "Why a request failed: assignment_changed, slot_taken, locked or "
                       "interrupted."})
    created_at = Timestamp()
    updated_at = Timestamp()


class AlterationListArgs(PageArgs):
    box = fields.String(load_default="all",
                        validate=validate.OneOf(("incoming", "outgoing", "all")))
    status = fields.String(validate=validate.OneOf(REQUEST_STATUSES))


class AnswerSchema(BaseSchema):
    reason = fields.String(validate=validate.Length(max=1000))


class AlterationRequestListSchema(BaseSchema):
    items = fields.List(fields.Nested(AlterationRequestSchema))
    total = fields.Integer()


class ConflictSchema(BaseSchema):
    kind = fields.String(validate=validate.OneOf(("staff", "class", "room")))
    key = fields.String(metadata={"description": "The staff id, class id or room (normalised)."})
    day_of_week = fields.Integer()
    period_id = Id()
    period_number = fields.Integer()
    assignment_ids = fields.List(fields.String())
    staff_ids = fields.List(fields.String())


class ConflictListSchema(BaseSchema):
    items = fields.List(fields.Nested(ConflictSchema))
    total = fields.Integer()


class ExportArgs(BaseSchema):
    staff_id = Id(metadata={"description": "One staff member's week; the whole school if "
                                           "absent (admins)."})


# settings and periods

@blp.route("/<school_id>/timetable/settings", methods=["GET"])
@blp.response(200, SettingsSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
@versioned("school_id", kind=SETTINGS_KIND)
def get_settings(ctx):
    """The school's timetable settings."""
    return TimetableSetup(ctx).settings()


@blp.route("/<school_id>/timetable/settings", methods=["PUT"])
@blp.arguments(SettingsUpdateSchema)
@blp.response(200, SettingsSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
@versioned("school_id", kind=SETTINGS_KIND)
def update_settings(ctx, body):
    """Change working days, default period duration or overlapping (fields given only).
    409 `day_in_use` when a removed working day still has assignments. Switching
    overlapping off refuses double bookings again from the next booking on (those made
    meanwhile show in the conflicts report)."""
    return TimetableSetup(ctx).update_settings(**body)


@blp.route("/<school_id>/timetable/periods", methods=["POST"])
@blp.arguments(PeriodCreateSchema)
@blp.response(201, PeriodSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def create_period(ctx, body):
    """Add a period: 422 when end <= start, 409 `period_number_taken` / `period_overlap`."""
    return TimetableSetup(ctx).create_period(**body)


@blp.route("/<school_id>/timetable/periods", methods=["GET"])
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_of(PeriodSchema))
@school_route(module=MODULE, roles=STAFF_ROLES)
def list_periods(ctx, args):
    """Active periods ordered by number."""
    return TimetableSetup(ctx).list_periods(**args)


@blp.route("/<school_id>/timetable/periods/<period_id>", methods=["PATCH"])
@blp.arguments(PeriodUpdateSchema)
@blp.response(200, PeriodSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def update_period(ctx, body, period_id):
    """Change a period; the same rules as creating one."""
    return TimetableSetup(ctx).update_period(period_id, **body)


@blp.route("/<school_id>/timetable/periods/<period_id>", methods=["DELETE"])
@blp.arguments(PeriodDeleteArgs, location="query")
@blp.response(204)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def delete_period(ctx, args, period_id):
    """Soft delete: the period leaves every grid. 409 `period_in_use` while it has lessons,
    unless `?cascade=true`, which ends them (audited)."""
    TimetableSetup(ctx).delete_period(period_id, **args)


@blp.route("/<school_id>/timetable/periods/generate", methods=["POST"])
@blp.arguments(PeriodGenerateSchema)
@blp.response(201, page_of(PeriodSchema, "GeneratedPeriodsSchema"))
@school_route(module=MODULE, roles=ADMIN_ROLES)
def generate_periods(ctx, body):
    """A bell schedule: `count` periods named "Period N" from `first_start`, back to back
    but for the breaks, numbered after the school's last active period. All or none: 409
    `period_overlap` when one overlaps an existing period."""
    made = TimetableSetup(ctx).generate_periods(**body)
    return {"items": made, "total": len(made), "page": 1, "page_size": len(made)}


# department permissions

@blp.route("/<school_id>/timetable/department-permissions", methods=["GET"])
@blp.response(200, DepartmentPermissionListSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def list_department_permissions(ctx):
    """Every department with whether it may send and receive alteration requests."""
    items = TimetableSetup(ctx).department_permissions()
    return {"items": items, "total": len(items)}


@blp.route("/<school_id>/timetable/department-permissions/<path:department>", methods=["PUT"])
@blp.arguments(DepartmentPermissionUpdateSchema)
@blp.response(200, DepartmentPermissionSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def set_department_permission(ctx, body, department):
    """Lock or open a department for sending (`allow_alterations`) and receiving
    (`allow_inbound`) alteration requests. The department must be one some user of the
    school belongs to (case and surrounding spaces aside; 422 otherwise)."""
    return TimetableSetup(ctx).set_department_permission(department, **body)


@blp.route("/<school_id>/timetable/eligible-targets", methods=["GET"])
@blp.arguments(EligibleTargetArgs, location="query")
@blp.response(200, page_of(UserSchema, "EligibleTargetPageSchema"))
@school_route(module=MODULE, roles=STAFF_ROLES)
def list_eligible_targets(ctx, args):
    """Staff (other than the caller) whose department may receive alteration requests."""
    return TimetableSetup(ctx).eligible_targets(**args)


# assignments

@blp.route("/<school_id>/timetable/assignments", methods=["POST"])
@blp.arguments(AssignmentCreateSchema)
@blp.response(201, AssignmentSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def create_assignment(ctx, body):
    """Assign a staff member one slot with one or more classes. 409 `slot_taken` when they
    are already booked; `class_taken` / `room_taken` unless overlapping is allowed."""
    return Assignments(ctx).create(**body)


@blp.route("/<school_id>/timetable/assignments", methods=["GET"])
@blp.arguments(AssignmentListArgs, location="query")
@blp.response(200, page_of(AssignmentSchema))
@school_route(module=MODULE, roles=STAFF_ROLES)
def list_assignments(ctx, args):
    """Assignments by staff, day and period; staff see their own."""
    return Assignments(ctx).list(**args)


@blp.route("/<school_id>/timetable/assignments/<assignment_id>", methods=["GET"])
@blp.response(200, AssignmentSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
@versioned("assignment_id")
def get_assignment(ctx, assignment_id):
    """One assignment (staff: their own)."""
    return Assignments(ctx).get_assignment(assignment_id)


@blp.route("/<school_id>/timetable/assignments/<assignment_id>", methods=["DELETE"])
@blp.response(204)
@school_route(module=MODULE, roles=ADMIN_ROLES)
@versioned("assignment_id")
def delete_assignment(ctx, assignment_id):
    """Remove an assignment and free its classes and rooms."""
    Assignments(ctx).delete(assignment_id)


@blp.route("/<school_id>/timetable/assignments/<assignment_id>/classes", methods=["POST"])
@blp.arguments(ClassSchema)
@blp.response(201, AssignmentSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def add_class(ctx, body, assignment_id):
    """Add a class to an assignment (many-class). Admins, or its staff member unless locked."""
    return Assignments(ctx).add_class(assignment_id, **body)


@blp.route("/<school_id>/timetable/assignments/<assignment_id>/classes/<path:class_id>",
           methods=["DELETE"])
@blp.response(200, AssignmentSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
@versioned("assignment_id")
def remove_class(ctx, assignment_id, class_id):
    """Remove one class from an assignment; answers the assignment as it is now. 409
    `last_class`: a lesson keeps one class (a self-allocated activity may have none)."""
    return Assignments(ctx).remove_class(assignment_id, class_id)


@blp.route("/<school_id>/timetable/assignments/<assignment_id>/classes/<path:class_id>",
           methods=["PATCH"])
@blp.arguments(ClassUpdateSchema)
@blp.response(200, AssignmentSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
@versioned("assignment_id")
def edit_class(ctx, body, assignment_id, class_id):
    """Change one class of a lesson; 409 `room_taken` as on creation."""
    return LessonEdits(ctx).edit_class(assignment_id, class_id, **body)


@blp.route("/<school_id>/timetable/assignments/<assignment_id>", methods=["PATCH"])
@blp.arguments(AssignmentUpdateSchema)
@blp.response(200, AssignmentSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
@versioned("assignment_id")
def edit_assignment(ctx, body, assignment_id):
    """Move a lesson to another slot and/or change the subject or room of its classes,
    checked as a new booking (409 `slot_taken`, `class_taken`, `room_taken`; 409
    `assignment_changed` when it changed meanwhile). Admins any lesson; staff a lesson they
    created, unless locked (403 `locked`, `not_creator`)."""
    return LessonEdits(ctx).edit(assignment_id, **body)


@blp.route("/<school_id>/timetable/assignments/<assignment_id>/lock", methods=["POST"])
@blp.arguments(LockSchema)
@blp.response(200, AssignmentSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def lock_assignment(ctx, body, assignment_id):
    """Lock a lesson: requests for it and staff edits answer 403 `locked` until unlocked."""
    return LessonEdits(ctx).lock(assignment_id, body["reason"])


@blp.route("/<school_id>/timetable/assignments/<assignment_id>/unlock", methods=["POST"])
@blp.response(200, AssignmentSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def unlock_assignment(ctx, assignment_id):
    """Unlock a lesson (self-allocations too)."""
    return LessonEdits(ctx).unlock(assignment_id)


@blp.route("/<school_id>/timetable/assignments/<assignment_id>/override", methods=["POST"])
@blp.arguments(OverrideSchema)
@blp.response(200, AssignmentSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def override_assignment(ctx, body, assignment_id):
    """Reassign at once (`admin_override`), keeping `original_staff_id`; both staff are
    notified. 409 `slot_taken` when the new staff member is booked in that slot."""
    return Assignments(ctx).override(assignment_id, body["new_staff_id"], body.get("notes"))


# self-allocations

@blp.route("/<school_id>/timetable/self-allocations", methods=["POST"])
@blp.arguments(SelfAllocationCreateSchema)
@blp.response(201, AssignmentSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def create_self_allocation(ctx, body):
    """Staff fill an empty slot of their own; it is locked at once."""
    return Assignments(ctx).self_allocate(**body)


@blp.route("/<school_id>/timetable/self-allocations/<assignment_id>", methods=["DELETE"])
@blp.response(204)
@school_route(module=MODULE, roles=STAFF_ROLES)
def delete_self_allocation(ctx, assignment_id):
    """Admins delete a self-allocation; staff get 403 `locked`."""
    Assignments(ctx).delete_self_allocation(assignment_id)


# the staff grid

@blp.route("/<school_id>/timetable/staff/<staff_id>", methods=["GET"])
@blp.arguments(DatedGridArgs, location="query")
@blp.response(200, StaffGridSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def staff_grid(ctx, args, staff_id):
    """The week grid of one staff member: every working day x every active period. Staff may
    see their own only (403 otherwise). With `?date=` (or `?from=&to=`): the dated grid."""
    return DatedTimetable(ctx).staff_grid(staff_id, **args)


# class and room grids

@blp.route("/<school_id>/timetable/classes/<path:class_id>", methods=["GET"])
@blp.arguments(GridArgs, location="query")
@blp.response(200, ClassGridSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def class_grid(ctx, args, class_id):
    """The week of one class: every working day x every active period with the lessons
    teaching it (class ids compare case and spaces aside)."""
    return TimetableGrids(ctx).class_grid(class_id, args.get("date"))


@blp.route("/<school_id>/timetable/rooms/<path:room>", methods=["GET"])
@blp.arguments(GridArgs, location="query")
@blp.response(200, RoomGridSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def room_grid(ctx, args, room):
    """The week of one room, like the class grid."""
    return TimetableGrids(ctx).room_grid(room, args.get("date"))


# two-way exchanges

@blp.route("/<school_id>/timetable/exchange-requests", methods=["POST"])
@blp.arguments(ExchangeRequestCreateSchema)
@blp.response(201, ExchangeRequestSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def create_exchange_request(ctx, body):
    """Offer your lesson for a colleague's (its holder answers). 403 `locked`,
    `department_locked`; 409 `not_your_assignment`, `request_pending`, `slot_taken` (one of
    you is busy in the other's slot)."""
    return ExchangeRequests(ctx).create(**body)


@blp.route("/<school_id>/timetable/exchange-requests", methods=["GET"])
@blp.arguments(AlterationListArgs, location="query")
@blp.response(200, page_of(ExchangeRequestSchema))
@school_route(module=MODULE, roles=STAFF_ROLES)
def list_exchange_requests(ctx, args):
    """The caller's incoming, outgoing or all exchanges; admins with box=all: the school's."""
    return ExchangeRequests(ctx).list(**args)


@blp.route("/<school_id>/timetable/exchange-requests/<request_id>", methods=["GET"])
@blp.response(200, ExchangeRequestSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
@versioned("request_id")
def get_exchange_request(ctx, request_id):
    """One exchange the caller is part of (admins: any)."""
    return ExchangeRequests(ctx).get_request(request_id)


@blp.route("/<school_id>/timetable/exchange-requests/<request_id>/accept", methods=["POST"])
@blp.arguments(AnswerSchema)
@blp.response(200, ExchangeRequestSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def accept_exchange_request(ctx, body, request_id):
    """Both lessons change hands, or neither: exactly one of parallel accepts, rejects and
    cancels wins (others 409 `not_pending`); 409 `assignment_changed`, `slot_taken` or 403
    `locked` fail the exchange with both lessons where they were."""
    return ExchangeRequests(ctx).accept(request_id, body.get("reason"))


@blp.route("/<school_id>/timetable/exchange-requests/<request_id>/reject", methods=["POST"])
@blp.arguments(AnswerSchema)
@blp.response(200, ExchangeRequestSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def reject_exchange_request(ctx, body, request_id):
    """The colleague asked declines; the requester is notified."""
    return ExchangeRequests(ctx).reject(request_id, body.get("reason"))


@blp.route("/<school_id>/timetable/exchange-requests/<request_id>/cancel", methods=["POST"])
@blp.arguments(AnswerSchema)
@blp.response(200, ExchangeRequestSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def cancel_exchange_request(ctx, body, request_id):
    """The requester withdraws a pending exchange; the colleague is notified."""
    return ExchangeRequests(ctx).cancel(request_id, body.get("reason"))


# alteration requests

@blp.route("/<school_id>/timetable/alteration-requests", methods=["POST"])
@blp.arguments(AlterationRequestCreateSchema)
@blp.response(201, AlterationRequestSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def create_alteration_request(ctx, body):
    """Ask a colleague or a department to take one of your assignments. 403
    `department_locked`, `locked` (a locked lesson or a self-allocation); 409
    `not_your_assignment`, `request_pending`, `circular_swap`, `slot_taken` (the colleague
    teaches in that slot); 422 when the department has no other active member (department
    names match case and surrounding spaces aside; the request keeps its real spelling)."""
    return AlterationRequests(ctx).create(**body)


@blp.route("/<school_id>/timetable/alteration-requests", methods=["GET"])
@blp.arguments(AlterationListArgs, location="query")
@blp.response(200, page_of(AlterationRequestSchema))
@school_route(module=MODULE, roles=STAFF_ROLES)
def list_alteration_requests(ctx, args):
    """The caller's incoming (named or to their department), outgoing or all requests;
    admins with box=all see the whole school."""
    return AlterationRequests(ctx).list(**args)


@blp.route("/<school_id>/timetable/alteration-requests/repair", methods=["POST"])
@blp.response(200, AlterationRequestListSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def repair_alteration_requests(ctx):
    """Settle accepts interrupted between their steps (requests left `accepting`)."""
    items = AlterationRequests(ctx).repair_interrupted()
    return {"items": items, "total": len(items)}


@blp.route("/<school_id>/timetable/alteration-requests/<request_id>", methods=["GET"])
@blp.response(200, AlterationRequestSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
@versioned("request_id")
def get_alteration_request(ctx, request_id):
    """One request the caller is part of (admins: any)."""
    return AlterationRequests(ctx).get_request(request_id)


@blp.route("/<school_id>/timetable/alteration-requests/<request_id>/accept", methods=["POST"])
@blp.arguments(AnswerSchema)
@blp.response(200, AlterationRequestSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def accept_alteration_request(ctx, body, request_id):
    """Take the period (`peer_swap`). Exactly one accept wins; others get 409 `not_pending`.
    409 `assignment_changed` (request failed, timetable untouched) when the assignment left
    the requester meanwhile."""
    return AlterationRequests(ctx).accept(request_id, body.get("reason"))


@blp.route("/<school_id>/timetable/alteration-requests/<request_id>/reject", methods=["POST"])
@blp.arguments(AnswerSchema)
@blp.response(200, AlterationRequestSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def reject_alteration_request(ctx, body, request_id):
    """Decline with an optional reason; the requester is notified. A member declining a
    department request closes it for themselves only (it stays `pending`, `declined_by`
    names them); it is `rejected` once every member has declined."""
    return AlterationRequests(ctx).reject(request_id, body.get("reason"))


@blp.route("/<school_id>/timetable/alteration-requests/<request_id>/cancel", methods=["POST"])
@blp.arguments(AnswerSchema)
@blp.response(200, AlterationRequestSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def cancel_alteration_request(ctx, body, request_id):
    """The requester withdraws a pending request; its target (or every member of the target
    department) is notified."""
    return AlterationRequests(ctx).cancel(request_id, body.get("reason"))


# conflicts and exports

@blp.route("/<school_id>/timetable/conflicts", methods=["GET"])
@blp.response(200, ConflictListSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def list_conflicts(ctx):
    """Double bookings of a staff member, a class or a room in one slot."""
    items = TimetableViews(ctx).conflicts()
    return {"items": items, "total": len(items)}


@blp.route("/<school_id>/timetable/export.csv", methods=["GET"])
@blp.arguments(ExportArgs, location="query")
@blp.doc(responses={"200": {"description": "One row per class of every assignment.",
                            "content": {"text/csv": {"schema": {"type": "string"}}}}})
@school_route(module=MODULE, roles=STAFF_ROLES)
def export_csv(ctx, args):
    """The week as CSV: the whole school (admins) or one staff member (`?staff_id=`)."""
    body = TimetableViews(ctx).export_csv(args.get("staff_id"))
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": 'attachment; filename="timetable.csv"'})


@blp.route("/<school_id>/timetable/staff/<staff_id>/calendar.ics", methods=["GET"])
@blp.doc(responses={"200": {"description": "RFC 5545 calendar: one weekly recurring event "
                                           "per assignment.",
                            "content": {"text/calendar": {"schema": {"type": "string"}}}}})
@school_route(module=MODULE, roles=STAFF_ROLES)
def export_calendar(ctx, staff_id):
    """The staff member's week as an iCalendar feed."""
    body = TimetableViews(ctx).export_ics(staff_id)
    return Response(body, mimetype="text/calendar", headers={
        "Content-Disposition": 'attachment; filename="timetable.ics"'})
