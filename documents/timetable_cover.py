"""The timetable by date: staff absences, the school's cover rules and the dated changes of
each (date, period).

Collections (field names as stored)
-----------------------------------
timetable_absences       a staff member away from start_date to end_date (both included),
                         whole days (`period_ids` empty) or the periods listed; `status`
                         pending (self-reported, awaiting an admin) or confirmed. Only
                         confirmed absences leave lessons uncovered; both keep the staff
                         member out of the cover suggestions.
timetable_cover_settings one per school: auto-confirming self-reported absences and the
                         limits the cover suggestions rank by.
timetable_day_slots      one per (school_id, date, period_id), unique: the aggregate of that
                         date's changes in that period. `changes` embeds one DatedChange per
                         lesson changed that day (cover, cancel, room) so that "a cover
                         teacher takes one lesson per slot" and "a room holds one lesson per
                         slot" are checked and written in ONE compare-and-set on `version`
                         (service.aggregates.change). The weekly pattern (TimetableSlot) is
                         never written for a date.
"""

from __future__ import annotations

from mongoengine import (
    BooleanField,
    DateTimeField,
    EmbeddedDocument,
    EmbeddedDocumentField,
    IntField,
    ListField,
    ObjectIdField,
    StringField,
)

from documents.base import SchoolOwned, utcnow

ABSENCE_STATUSES = ("pending", "confirmed")
COVER_ACTIONS = ("cover", "cancel", "room")


class Absence(SchoolOwned):
    meta = {"collection": "timetable_absences",
            "indexes": [["school_id", "start_date"],
                        ["school_id", "staff_id", "start_date"]]}

    staff_id = ObjectIdField(required=True)
    start_date = DateTimeField(required=True)
    end_date = DateTimeField(required=True)
    period_ids = ListField(ObjectIdField(), default=list)  # empty: whole days
    reason = StringField(required=True)
    status = StringField(choices=ABSENCE_STATUSES, default="pending")
    reported_by = ObjectIdField()
    confirmed_by = ObjectIdField()
    confirmed_at = DateTimeField()
    version = IntField(default=0)  # every conditional update counts itself here
    updated_at = DateTimeField(default=utcnow)


class CoverSettings(SchoolOwned):
    meta = {"collection": "timetable_cover_settings",
            "indexes": [{"fields": ["school_id"], "unique": True}]}

    auto_confirm_absences = BooleanField(default=False)
    max_consecutive_periods = IntField(default=3)
    daily_cover_cap = IntField(default=2)
    weekly_cover_cap = IntField(default=5)
    updated_at = DateTimeField(default=utcnow)


class DatedChange(EmbeddedDocument):
    """What happens to one weekly lesson on one date."""

    assignment_id = ObjectIdField(required=True)
    staff_id = ObjectIdField(required=True)  # who teaches it weekly
    action = StringField(choices=COVER_ACTIONS, required=True)
    cover_staff_id = ObjectIdField()
    room = StringField()
    notes = StringField()
    created_by = ObjectIdField()
    created_at = DateTimeField(default=utcnow)


class DaySlot(SchoolOwned):
    meta = {"collection": "timetable_day_slots",
            "indexes": [{"fields": ["school_id", "date", "period_id"], "unique": True}]}

    date = DateTimeField(required=True)
    period_id = ObjectIdField(required=True)
    changes = ListField(EmbeddedDocumentField(DatedChange), default=list)
    version = IntField(default=0)
