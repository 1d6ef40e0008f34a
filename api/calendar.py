"""The school calendar: terms, holidays and the A/B week rotation (no module: every school
has a calendar; everyone reads it, admins change it)."""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import fields, validate

from api.etags import versioned
from api.schemas import BaseSchema, Date, Id, PageArgs, Timestamp, page_of
from api.security import school_route
from service.calendar import SETTINGS_KIND, SchoolCalendars
from service.context import ADMIN_ROLES

blp = Blueprint("calendar", __name__, url_prefix="/schools",
                description="School calendar: terms, holidays, A/B week rotation")

NAME = validate.Length(min=1, max=200)


class CalendarSettingsSchema(BaseSchema):
    week_rotation = fields.Boolean(metadata={
        "description": "On: the timetable alternates week A and week B; assignments marked "
                       "`week: A|B` run in their week only."})
    week_a_starts = Date(allow_none=True, metadata={
        "description": "The Monday of some week A; the weeks alternate from there on."})
    updated_at = Timestamp(dump_only=True)


class CalendarSettingsUpdateSchema(BaseSchema):
    week_rotation = fields.Boolean()
    week_a_starts = Date(allow_none=True)


class TermCreateSchema(BaseSchema):
    name = fields.String(required=True, validate=NAME, metadata={"example": "Autumn term"})
    start_date = Date(required=True)
    end_date = Date(required=True, metadata={"description": "Included; not before start_date."})


class TermUpdateSchema(BaseSchema):
    name = fields.String(validate=NAME)
    start_date = Date()
    end_date = Date()


class TermSchema(BaseSchema):
    id = Id()
    name = fields.String()
    start_date = Date()
    end_date = Date()
    created_at = Timestamp()


class HolidayCreateSchema(BaseSchema):
    date = Date(required=True)
    name = fields.String(required=True, validate=NAME, metadata={"example": "Bank holiday"})


class HolidaySchema(BaseSchema):
    id = Id()
    date = Date()
    name = fields.String()
    created_at = Timestamp()


class HolidayListArgs(PageArgs):
    start = Date(data_key="from", metadata={"description": "Holidays on or after this date."})
    end = Date(data_key="to", metadata={"description": "Holidays on or before this date."})


@blp.route("/<school_id>/calendar/settings", methods=["GET"])
@blp.response(200, CalendarSettingsSchema)
@school_route()
@versioned("school_id", kind=SETTINGS_KIND)
def get_calendar_settings(ctx):
    """The A/B week rotation of the school."""
    return SchoolCalendars(ctx).settings()


@blp.route("/<school_id>/calendar/settings", methods=["PUT"])
@blp.arguments(CalendarSettingsUpdateSchema)
@blp.response(200, CalendarSettingsSchema)
@school_route(roles=ADMIN_ROLES)
@versioned("school_id", kind=SETTINGS_KIND)
def update_calendar_settings(ctx, body):
    """Switch the A/B rotation on or off; `week_a_starts` (a Monday) is needed to turn it
    on (422 otherwise)."""
    return SchoolCalendars(ctx).update_settings(**body)


@blp.route("/<school_id>/terms", methods=["POST"])
@blp.arguments(TermCreateSchema)
@blp.response(201, TermSchema)
@school_route(roles=ADMIN_ROLES)
def create_term(ctx, body):
    """Add a term; 422 when end_date is before start_date, 409 `term_overlap` when it
    overlaps another term."""
    return SchoolCalendars(ctx).create_term(**body)


@blp.route("/<school_id>/terms", methods=["GET"])
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_of(TermSchema))
@school_route()
def list_terms(ctx, args):
    """The school's terms by start date."""
    return SchoolCalendars(ctx).list_terms(**args)


@blp.route("/<school_id>/terms/<term_id>", methods=["GET"])
@blp.response(200, TermSchema)
@school_route()
@versioned("term_id")
def get_term(ctx, term_id):
    """One term."""
    return SchoolCalendars(ctx).get_term(term_id)


@blp.route("/<school_id>/terms/<term_id>", methods=["PATCH"])
@blp.arguments(TermUpdateSchema)
@blp.response(200, TermSchema)
@school_route(roles=ADMIN_ROLES)
@versioned("term_id")
def update_term(ctx, body, term_id):
    """Rename a term or move its dates; the same rules as creating one."""
    return SchoolCalendars(ctx).update_term(term_id, **body)


@blp.route("/<school_id>/terms/<term_id>", methods=["DELETE"])
@blp.response(204)
@school_route(roles=ADMIN_ROLES)
@versioned("term_id")
def delete_term(ctx, term_id):
    """Remove a term (the covers given in it stay; fairness counts follow the terms)."""
    SchoolCalendars(ctx).delete_term(term_id)


@blp.route("/<school_id>/holidays", methods=["POST"])
@blp.arguments(HolidayCreateSchema)
@blp.response(201, HolidaySchema)
@school_route(roles=ADMIN_ROLES)
def create_holiday(ctx, body):
    """Mark a day without lessons; 409 `duplicate` when it is one already."""
    return SchoolCalendars(ctx).create_holiday(**body)


@blp.route("/<school_id>/holidays", methods=["GET"])
@blp.arguments(HolidayListArgs, location="query")
@blp.response(200, page_of(HolidaySchema))
@school_route()
def list_holidays(ctx, args):
    """Holidays by date, optionally `?from=&to=`."""
    return SchoolCalendars(ctx).list_holidays(**args)


@blp.route("/<school_id>/holidays/<holiday_id>", methods=["DELETE"])
@blp.response(204)
@school_route(roles=ADMIN_ROLES)
def delete_holiday(ctx, holiday_id):
    """Remove a holiday."""
    SchoolCalendars(ctx).delete_holiday(holiday_id)
