"""Weekly groups: programs, their students and groups, and each week's snapshot of them.

Everything about one week of one program lives in `WeekEntry` documents of that week: one per
group (its name, instructor and size that week) and one per placed student (the membership),
so one query reads a whole week and nothing written for one week touches another.

Invariants rest on unique indexes over scalar keys, the one write FerretDB v1 makes atomic
under parallel requests (its conditional updates are not: several callers can all "win"):
- `WeekEntry.slot` ("group:<id>" or "student:<id>") is unique per program and week: a student
  is in at most one group per week;
- `SeatClaim.seat` (1..max_size) is unique per group and week: a group never holds more
  members than seats, whatever runs in parallel.
"""

from __future__ import annotations

from mongoengine import (
    DateTimeField,
    EmbeddedDocument,
    EmbeddedDocumentField,
    IntField,
    ObjectIdField,
    StringField,
)

from documents.base import SchoolOwned, utcnow


class Program(SchoolOwned):
    meta = {"collection": "weekly_programs",
            "indexes": [{"fields": ["school_id", "name"], "unique": True}]}

    name = StringField(required=True)
    description = StringField()
    max_weeks = IntField(required=True, default=6)
    current_week = IntField(required=True, default=1)
    start_date = DateTimeField()
    end_date = DateTimeField()


class ProgramStudent(SchoolOwned):
    """A participant of one program (not a user). `customer_key` is the unique natural key:
    "c:<customer_id>" when the student has one, else "s:<own id>", so the unique index never
    sees two documents without a value (FerretDB has no sparse or partial indexes)."""

    meta = {"collection": "weekly_program_students",
            "indexes": [{"fields": ["school_id", "customer_key"], "unique": True},
                        ["school_id", "program_id", "name"],
                        ["school_id", "email"]]}

    program_id = ObjectIdField(required=True)
    name = StringField(required=True)
    ability_level = StringField()
    birth_date = DateTimeField()
    customer_id = StringField()
    customer_key = StringField(required=True)
    email = StringField()


class Group(SchoolOwned):
    """A group of a program across weeks; what changes per week lives in its week entries."""

    meta = {"collection": "weekly_groups",
            "indexes": [{"fields": ["school_id", "program_id", "base_name"], "unique": True}]}

    program_id = ObjectIdField(required=True)
    base_name = StringField(required=True)
    ability_level = StringField()
    max_size = IntField(required=True, default=8)


class Instructor(EmbeddedDocument):
    """Who taught the group that week, as they were named then."""

    user_id = ObjectIdField(required=True)
    name = StringField()
    email = StringField()


class WeekEntry(SchoolOwned):
    """One fact of one program week. `kind` "group": a group's snapshot (`group_id`,
    `base_name`, `ability_level`, `name` (None: the base name), `max_size`, `instructor`).
    `kind` "member": a student's membership (`student_id`, `group_id`, `joined_at`, and the
    `move_id` of the request that wrote it)."""

    meta = {"collection": "weekly_week_entries",
            "indexes": [{"fields": ["school_id", "program_id", "week_number", "slot"],
                         "unique": True},
                        ["school_id", "student_id"],
                        ["school_id", "group_id", "week_number"]]}

    program_id = ObjectIdField(required=True)
    week_number = IntField(required=True)
    kind = StringField(required=True, choices=("group", "member"))
    slot = StringField(required=True)
    group_id = ObjectIdField(required=True)
    student_id = ObjectIdField()
    base_name = StringField()
    ability_level = StringField()
    name = StringField()
    max_size = IntField()
    instructor = EmbeddedDocumentField(Instructor)
    joined_at = DateTimeField()
    move_id = ObjectIdField()
    updated_at = DateTimeField(default=utcnow)


class SeatClaim(SchoolOwned):
    """One taken seat of a group in a week. Taken before the membership is written and given
    back after it is removed, so claims are never fewer than members; a claim with no member
    (a request that died midway) is released by `WeeklyGroups.repair`."""

    meta = {"collection": "weekly_seat_claims",
            "indexes": [{"fields": ["school_id", "group_id", "week_number", "seat"],
                         "unique": True},
                        ["school_id", "program_id", "week_number"],
                        ["school_id", "student_id"]]}

    program_id = ObjectIdField(required=True)
    group_id = ObjectIdField(required=True)
    week_number = IntField(required=True)
    seat = IntField(required=True)
    student_id = ObjectIdField(required=True)
    move_id = ObjectIdField(required=True)


class StudentMove(SchoolOwned):
    """One change of a student's group for one week: by a move, a generation, a copy or an
    import. `from_group_id` is None when the student was unassigned."""

    meta = {"collection": "weekly_student_moves",
            "indexes": [["school_id", "student_id", "created_at"],
                        ["school_id", "program_id", "week_number"]]}

    program_id = ObjectIdField(required=True)
    student_id = ObjectIdField(required=True)
    week_number = IntField(required=True)
    from_group_id = ObjectIdField()
    to_group_id = ObjectIdField()
    reason = StringField(required=True)  # move, generate, copy, import
    actor_id = ObjectIdField()
