"""The timetable module: settings, periods, department permissions, assignments with many
classes, overrides, self-allocations, alteration requests, the staff grid, the conflicts
report and the CSV / iCalendar exports."""

from __future__ import annotations

from flask import Response
from flask_smorest import Blueprint
from marshmallow import ValidationError, fields, validate

from api.auth import UserSchema
from api.schemas import BaseSchema, Id, PageArgs, TimeOfDay, Timestamp, page_of
from api.security import school_route
from documents.timetable import ASSIGNMENT_TYPES, REQUEST_STATUSES
from service.context import ADMIN_ROLES, STAFF_ROLES
from service.timetable import MODULE, TimetableSetup
from service.timetable_alterations import AlterationRequests
from service.timetable_assignments import Assignments
from service.timetable_exports import TimetableViews

blp = Blueprint("timetable", __name__, url_prefix="/schools",
                description="Timetable: periods, assignments, swaps, overrides and exports")

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


class AssignmentSchema(BaseSchema):
    id = Id()
    staff_id = Id()
    period_id = Id()
    day_of_week = fields.Integer()
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
    assignment = fields.Nested(AssignmentSchema, allow_none=True)


class DaySchema(BaseSchema):
    day_of_week = fields.Integer()
    slots = fields.List(fields.Nested(SlotSchema))


class StaffGridSchema(BaseSchema):
    staff = fields.Nested(StaffSummarySchema)
    periods = fields.List(fields.Nested(PeriodSchema))
    days = fields.List(fields.Nested(DaySchema))


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
    responded_by = Id(allow_none=True)
    responded_at = Timestamp(allow_none=True)
    response_reason = fields.String(allow_none=True)
    failure_code = fields.String(allow_none=True, metadata={
        "description": "Why a request failed: assignment_changed, slot_taken or interrupted."})
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
def get_settings(ctx):
    """The school's timetable settings."""
    return TimetableSetup(ctx).settings()


@blp.route("/<school_id>/timetable/settings", methods=["PUT"])
@blp.arguments(SettingsUpdateSchema)
@blp.response(200, SettingsSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
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
@blp.response(204)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def delete_period(ctx, period_id):
    """Soft delete: the period leaves every grid; its assignments are kept."""
    TimetableSetup(ctx).delete_period(period_id)


# department permissions

@blp.route("/<school_id>/timetable/department-permissions", methods=["GET"])
@blp.response(200, DepartmentPermissionListSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def list_department_permissions(ctx):
    """Every department with whether it may send and receive alteration requests."""
    items = TimetableSetup(ctx).department_permissions()
    return {"items": items, "total": len(items)}


@blp.route("/<school_id>/timetable/department-permissions/<department>", methods=["PUT"])
@blp.arguments(DepartmentPermissionUpdateSchema)
@blp.response(200, DepartmentPermissionSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def set_department_permission(ctx, body, department):
    """Lock or open a department for sending (`allow_alterations`) and receiving
    (`allow_inbound`) alteration requests."""
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
def get_assignment(ctx, assignment_id):
    """One assignment (staff: their own)."""
    return Assignments(ctx).get_assignment(assignment_id)


@blp.route("/<school_id>/timetable/assignments/<assignment_id>", methods=["DELETE"])
@blp.response(204)
@school_route(module=MODULE, roles=ADMIN_ROLES)
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


@blp.route("/<school_id>/timetable/assignments/<assignment_id>/classes/<class_id>",
           methods=["DELETE"])
@blp.response(200, AssignmentSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def remove_class(ctx, assignment_id, class_id):
    """Remove one class from an assignment; answers the assignment as it is now."""
    return Assignments(ctx).remove_class(assignment_id, class_id)


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
@blp.response(200, StaffGridSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def staff_grid(ctx, staff_id):
    """The week grid of one staff member: every working day x every active period. Staff may
    see their own only (403 otherwise)."""
    return TimetableViews(ctx).staff_grid(staff_id)


# alteration requests

@blp.route("/<school_id>/timetable/alteration-requests", methods=["POST"])
@blp.arguments(AlterationRequestCreateSchema)
@blp.response(201, AlterationRequestSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def create_alteration_request(ctx, body):
    """Ask a colleague or a department to take one of your assignments. 403
    `department_locked`; 409 `not_your_assignment`, `request_pending`, `circular_swap`."""
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
    """Decline with an optional reason; the requester is notified."""
    return AlterationRequests(ctx).reject(request_id, body.get("reason"))


@blp.route("/<school_id>/timetable/alteration-requests/<request_id>/cancel", methods=["POST"])
@blp.arguments(AnswerSchema)
@blp.response(200, AlterationRequestSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def cancel_alteration_request(ctx, body, request_id):
    """The requester withdraws a pending request."""
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
