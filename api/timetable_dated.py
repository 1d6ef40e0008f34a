"""Schemas of the timetable by date that the weekly grid route shares (api/timetable.py
imports them; no blueprint here)."""

from __future__ import annotations

from datetime import date

from marshmallow import fields, validate

from api.schemas import BaseSchema, Date, Id
from service.errors import NotFound

DATED_STATUSES = ("as_usual", "absent", "covered", "cancelled", "room_changed", "covering",
                  "holiday")


def path_date(text: str) -> date:
    """A date in a URL: one that cannot exist is 404, like an unknown id."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise NotFound(f"No date {text!r}; dates are YYYY-MM-DD.") from None


class DatedGridArgs(BaseSchema):
    date = Date(metadata={"description": "The dated grid of this date's week (Monday to "
                                         "Sunday): the weekly pattern with that week's "
                                         "rotation, holidays, absences and changes."})
    start = Date(data_key="from", metadata={"description": "With `to`: the dated grid of "
                                                           "these days (at most 62)."})
    end = Date(data_key="to")


class DatedClassSchema(BaseSchema):
    class_id = fields.String()
    subject = fields.String()
    room_number = fields.String(allow_none=True)
    student_count = fields.Integer(allow_none=True)


class DatedChangeSchema(BaseSchema):
    action = fields.String(validate=validate.OneOf(("cover", "cancel", "room")))
    assignment_id = Id(metadata={"description": "The weekly lesson changed on this date."})
    staff_id = Id(metadata={"description": "Who teaches it weekly."})
    cover_staff_id = Id(allow_none=True)
    room = fields.String(allow_none=True)
    notes = fields.String(allow_none=True)
    classes = fields.List(fields.Nested(DatedClassSchema), allow_none=True, metadata={
        "description": "The classes of a lesson the staff member covers (null for their own "
                       "lesson: see `assignment`)."})
