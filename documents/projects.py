"""Projects and their one level of sub-projects: shared by the tracks and team rosters modules."""

from __future__ import annotations

from mongoengine import BooleanField, DateTimeField, ObjectIdField, StringField

from documents.base import SchoolOwned, utcnow


class Project(SchoolOwned):
    """A project, or a sub-project when `parent_id` is set (one level only)."""

    meta = {"collection": "projects",
            "indexes": [{"fields": ["school_id", "slug"], "unique": True},
                        ["school_id", "parent_id", "name"]]}

    name = StringField(required=True)
    slug = StringField(required=True)
    description = StringField()
    parent_id = ObjectIdField()
    auto_balance_students = BooleanField(default=False)
    start_date = DateTimeField()
    end_date = DateTimeField()
    updated_at = DateTimeField(default=utcnow)
