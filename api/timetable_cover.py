"""The timetable by date: absences, the day's cover plan, cover / cancel / room changes for
one date, ranked cover suggestions and the fairness counter."""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import fields, validate

from api.calendar import TermSchema
from api.etags import versioned
from api.schemas import BaseSchema, Date, Id, PageArgs, Timestamp, page_of
from api.security import school_route
from api.timetable import ClassSchema
from api.timetable_dated import path_date
from documents.timetable_cover import ABSENCE_STATUSES, COVER_ACTIONS
from service.context import ADMIN_ROLES, STAFF_ROLES
from service.timetable import MODULE
from service.timetable_absences import Absences
from service.timetable_cover import STATUS_ORDER, Cover
from service.timetable_cover_suggestions import CoverSuggestions

blp = Blueprint("timetable_cover", __name__, url_prefix="/schools",
                description="Timetable by date: absences, daily cover, suggestions, fairness")

CAP = validate.Range(min=0, max=100)


# absences

class AbsenceCreateSchema(BaseSchema):
    staff_id = Id(required=True, metadata={"description": "Staff report their own only."})
    start_date = Date(required=True)
    end_date = Date(required=True, metadata={"description": "Included; at most a year on."})
    period_ids = fields.List(Id(), validate=validate.Length(max=100), metadata={
        "description": "Only these periods of each day; absent or empty: whole days."})
    reason = fields.String(required=True, validate=validate.Length(min=1, max=1000))


class AbsenceSchema(BaseSchema):
    id = Id()
    staff_id = Id()
    start_date = Date()
    end_date = Date()
    period_ids = fields.List(Id())
    reason = fields.String()
    status = fields.String(validate=validate.OneOf(ABSENCE_STATUSES), metadata={
        "description": "pending: self-reported, awaiting an admin (keeps the teacher out of "
                       "cover suggestions, leaves lessons as usual); confirmed: its lessons "
                       "are uncovered until an admin acts."})
    reported_by = Id()
    confirmed_by = Id(allow_none=True)
    confirmed_at = Timestamp(allow_none=True)
    created_at = Timestamp()


class AbsenceListArgs(PageArgs):
    date = Date(metadata={"description": "Absences that include this date."})
    staff_id = Id(metadata={"description": "Admins: one staff member's (staff see their own)."})
    status = fields.String(validate=validate.OneOf(ABSENCE_STATUSES))


class CoverSettingsSchema(BaseSchema):
    auto_confirm_absences = fields.Boolean(metadata={
        "description": "Self-reported absences are confirmed at once."})
    max_consecutive_periods = fields.Integer(validate=validate.Range(min=1, max=20), metadata={
        "description": "Suggestions rank lower a cover that makes a longer run that day."})
    daily_cover_cap = fields.Integer(validate=CAP, metadata={
        "description": "Covers per staff member per day before suggestions rank them last."})
    weekly_cover_cap = fields.Integer(validate=CAP, metadata={
        "description": "Covers per staff member per week (Monday to Sunday), likewise."})
    updated_at = Timestamp(dump_only=True)


# cover

class CoverPlanArgs(BaseSchema):
    date = Date(metadata={"description": "Default: today in the school's time zone."})


class CoverLessonSchema(BaseSchema):
    assignment_id = Id()
    staff_id = Id(metadata={"description": "Who teaches it weekly."})
    staff_name = fields.String(allow_none=True)
    period_id = Id()
    period_number = fields.Integer()
    period_name = fields.String()
    start_time = fields.String()
    end_time = fields.String()
    classes = fields.List(fields.Nested(ClassSchema))
    status = fields.String(validate=validate.OneOf(list(STATUS_ORDER)))
    teacher_absent = fields.Boolean()
    cover_staff_id = Id(allow_none=True)
    cover_staff_name = fields.String(allow_none=True)
    room = fields.String(allow_none=True, metadata={"description": "The room that day, when "
                                                                   "moved."})
    notes = fields.String(allow_none=True)


class CoverConflictSchema(BaseSchema):
    assignment_id = Id()
    period_id = Id()
    cover_staff_id = Id()
    reason = fields.String(validate=validate.OneOf(("cover_staff_teaching",
                                                    "cover_staff_absent")), metadata={
        "description": "The cover teacher was given a weekly lesson in that slot after the "
                       "cover, or is now absent: choose another."})


class CoverPlanSchema(BaseSchema):
    date = Date()
    day_of_week = fields.Integer()
    week = fields.String(allow_none=True, metadata={"description": "A or B when rotating."})
    holiday = fields.String(allow_none=True)
    lessons = fields.List(fields.Nested(CoverLessonSchema), metadata={
        "description": "Lessons of absent teachers and lessons changed that day; uncovered "
                       "first, then by period."})
    conflicts = fields.List(fields.Nested(CoverConflictSchema))


class CoverCreateSchema(BaseSchema):
    date = Date(required=True)
    assignment_id = Id(required=True)
    action = fields.String(required=True, validate=validate.OneOf(COVER_ACTIONS))
    cover_staff_id = Id(metadata={"description": "Required with action cover."})
    room = fields.String(validate=validate.Length(min=1, max=50), metadata={
        "description": "Required with action room; optional with cover (covered elsewhere)."})
    notes = fields.String(validate=validate.Length(max=1000))


class CoverChangeSchema(BaseSchema):
    date = Date()
    assignment_id = Id()
    staff_id = Id()
    period_id = Id()
    classes = fields.List(fields.Nested(ClassSchema))
    action = fields.String(validate=validate.OneOf(COVER_ACTIONS))
    status = fields.String(validate=validate.OneOf(list(STATUS_ORDER)))
    cover_staff_id = Id(allow_none=True)
    room = fields.String(allow_none=True)
    notes = fields.String(allow_none=True)
    created_at = Timestamp()


class SuggestionArgs(BaseSchema):
    date = Date(required=True)
    assignment_id = Id(required=True)
    period_id = Id(metadata={"description": "Optional: must be the lesson's period."})


class SuggestionSchema(BaseSchema):
    staff_id = Id()
    name = fields.String()
    score = fields.Integer(metadata={"description": "Higher is better; orders the list."})
    reasons = fields.List(fields.String(), metadata={
        "description": "Why it ranks where it does, rule by rule: cover caps, teaches the "
                       "class, same department, covers this term, consecutive periods."})


class SuggestionListSchema(BaseSchema):
    date = Date()
    assignment_id = Id()
    period_id = Id()
    term = fields.Nested(TermSchema, allow_none=True, metadata={
        "description": "The term the fairness counts come from (none: all covers)."})
    items = fields.List(fields.Nested(SuggestionSchema))
    total = fields.Integer()


class FairnessArgs(BaseSchema):
    term_id = Id(metadata={"description": "Default: the term of today."})


class FairnessItemSchema(BaseSchema):
    staff_id = Id()
    name = fields.String()
    department = fields.String(allow_none=True)
    covers = fields.Integer()


class FairnessSchema(BaseSchema):
    term = fields.Nested(TermSchema)
    items = fields.List(fields.Nested(FairnessItemSchema), metadata={
        "description": "Every active staff member, most covers first."})
    total = fields.Integer()


@blp.route("/<school_id>/timetable/absences", methods=["POST"])
@blp.arguments(AbsenceCreateSchema)
@blp.response(201, AbsenceSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def create_absence(ctx, body):
    """Record an absence. Admins: confirmed at once. Staff report their own (403 for
    another's): pending until an admin confirms, unless the school auto-confirms."""
    return Absences(ctx).create(**body)


@blp.route("/<school_id>/timetable/absences", methods=["GET"])
@blp.arguments(AbsenceListArgs, location="query")
@blp.response(200, page_of(AbsenceSchema))
@school_route(module=MODULE, roles=STAFF_ROLES)
def list_absences(ctx, args):
    """Absences by start date (`?date=`: those that include it); staff see their own."""
    return Absences(ctx).list(**args)


@blp.route("/<school_id>/timetable/absences/<absence_id>", methods=["GET"])
@blp.response(200, AbsenceSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
@versioned("absence_id")
def get_absence(ctx, absence_id):
    """One absence (staff: their own)."""
    return Absences(ctx).get_absence(absence_id)


@blp.route("/<school_id>/timetable/absences/<absence_id>/confirm", methods=["POST"])
@blp.response(200, AbsenceSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def confirm_absence(ctx, absence_id):
    """Confirm a self-reported absence; 409 `not_pending` once confirmed."""
    return Absences(ctx).confirm(absence_id)


@blp.route("/<school_id>/timetable/absences/<absence_id>", methods=["DELETE"])
@blp.response(204)
@school_route(module=MODULE, roles=STAFF_ROLES)
@versioned("absence_id")
def delete_absence(ctx, absence_id):
    """Admins delete any absence; staff withdraw their own pending one (403
    `absence_confirmed` after)."""
    Absences(ctx).delete(absence_id)


@blp.route("/<school_id>/timetable/cover/settings", methods=["GET"])
@blp.response(200, CoverSettingsSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def get_cover_settings(ctx):
    """Auto-confirming absences and the limits cover suggestions rank by."""
    return Absences(ctx).settings()


@blp.route("/<school_id>/timetable/cover/settings", methods=["PUT"])
@blp.arguments(CoverSettingsSchema)
@blp.response(200, CoverSettingsSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def update_cover_settings(ctx, body):
    """Change the fields given."""
    return Absences(ctx).update_settings(**body)


@blp.route("/<school_id>/timetable/cover", methods=["GET"])
@blp.arguments(CoverPlanArgs, location="query")
@blp.response(200, CoverPlanSchema)
@school_route(module=MODULE, roles=STAFF_ROLES)
def cover_plan(ctx, args):
    """The day's plan: every lesson of an absent teacher (uncovered until an admin acts)
    and every lesson changed that day, uncovered first."""
    return Cover(ctx).plan(args.get("date"))


@blp.route("/<school_id>/timetable/cover", methods=["POST"])
@blp.arguments(CoverCreateSchema)
@blp.response(201, CoverChangeSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def change_lesson_for_date(ctx, body):
    """For that date only: cover the lesson, cancel it or move it to another room; the
    weekly timetable is unchanged. 409 `cover_staff_taken` / `room_taken` when the teacher
    or room is in use then, `cover_staff_absent`, `already_changed` (undo first),
    `holiday`; 422 when the date is not a day of the lesson. Both teachers are notified."""
    return Cover(ctx).apply(**body)


@blp.route("/<school_id>/timetable/cover/<date>/<assignment_id>", methods=["DELETE"])
@blp.response(204)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def undo_lesson_change(ctx, date, assignment_id):
    """Take back that date's change of the lesson (404 when it has none)."""
    Cover(ctx).undo(path_date(date), assignment_id)


@blp.route("/<school_id>/timetable/cover/suggestions", methods=["GET"])
@blp.arguments(SuggestionArgs, location="query")
@blp.response(200, SuggestionListSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def cover_suggestions(ctx, args):
    """The staff free in the lesson's slot that date (not teaching, covering or absent),
    best first, each with its reasons."""
    return CoverSuggestions(ctx).suggestions(**args)


@blp.route("/<school_id>/timetable/cover/fairness", methods=["GET"])
@blp.arguments(FairnessArgs, location="query")
@blp.response(200, FairnessSchema)
@school_route(module=MODULE, roles=ADMIN_ROLES)
def cover_fairness(ctx, args):
    """Covers per staff member in a term."""
    return CoverSuggestions(ctx).fairness(**args)
