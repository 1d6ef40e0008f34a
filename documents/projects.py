"""Projects and their one level of sub-projects: shared by the tracks and team rosters modules."""

from __future__ import annotations

from mongoengine import (
    BooleanField,
    DateTimeField,
    IntField,
    ListField,
    ObjectIdField,
    StringField,
)

from documents.base import SchoolOwned, utcnow

STATUSES = ("draft", "active", "archived")


class Project(SchoolOwned):
    """A project, or a sub-project when `parent_id` is set (one level only).

    `status` goes draft -> active -> archived; archiving a project archives its sub-projects
    and their tracks (see `service.projects`). `created_by` lets staff edit their own."""

    meta = {"collection": "projects",
            "indexes": [{"fields": ["school_id", "slug"], "unique": True},
                        ["school_id", "parent_id", "name"]]}

    name = StringField(required=True)
    slug = StringField(required=True)
    description = StringField()
    parent_id = ObjectIdField()
    auto_balance_students = BooleanField(default=False)
    status = StringField(default="draft", choices=STATUSES)
    target_roles = ListField(StringField())
    objectives = StringField()
    created_by = ObjectIdField()
    version = IntField(default=0)  # each change is one conditional update of the project
    start_date = DateTimeField()
    end_date = DateTimeField()
    updated_at = DateTimeField(default=utcnow)
