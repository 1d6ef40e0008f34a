"""The school calendar: terms, holidays and the A/B week rotation.

Collections (field names as stored)
-----------------------------------
school_calendars     one per school (unique school_id): the A/B rotation (`week_rotation`,
                     `week_a_starts`: the Monday of some week A), `terms` [embedded Term: id,
                     name, start_date, end_date, both included] and `version`. Terms live
                     inside it so that "the terms of a school never overlap" is checked and
                     written in ONE compare-and-set on `version` (service.aggregates.change).
calendar_holidays    one per (school_id, date), unique: a day without lessons.

Dates are stored as datetimes at midnight (BSON has no date type).
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


class Term(EmbeddedDocument):
    id = ObjectIdField(required=True)
    name = StringField(required=True)
    start_date = DateTimeField(required=True)
    end_date = DateTimeField(required=True)
    created_at = DateTimeField(default=utcnow)
    version = IntField(default=0)  # +1 on each edit of this term: its ETag (api/etags.py)


class SchoolCalendar(SchoolOwned):
    meta = {"collection": "school_calendars",
            "indexes": [{"fields": ["school_id"], "unique": True}]}

    week_rotation = BooleanField(default=False)
    week_a_starts = DateTimeField()
    terms = ListField(EmbeddedDocumentField(Term), default=list)
    version = IntField(default=0)
    updated_at = DateTimeField(default=utcnow)


class Holiday(SchoolOwned):
    meta = {"collection": "calendar_holidays",
            "indexes": [{"fields": ["school_id", "date"], "unique": True}]}

    date = DateTimeField(required=True)
    name = StringField(required=True)
