"""Weekly groups: programs, their students and groups, and each week of a program.

Everything about one week of one program lives in ONE `ProgramWeek` document: the week's
groups (name, instructor and size that week) with their members embedded. It is the
aggregate of the module's two invariants, a group never holds more members than its
`max_size` and a student is in at most one group per week: every change of a week (a move,
a generation, a copy, an import batch) is one compare-and-set on its `version`
(`service.aggregates.change`) that checks both on the document it read. Nothing written for
one week touches another week's document.

`StudentMove` is the log of membership changes, written right after the week update that
made them. The week document keeps its latest change's log records (`last_change`, ids fixed
before the update) so a crash between the two writes is settled by the week's next change or
by `rota repair`, which insert them again (duplicate ids are refused).
"""

from __future__ import annotations

from mongoengine import (
    BooleanField,
    DateTimeField,
    DictField,
    EmbeddedDocument,
    EmbeddedDocumentField,
    EmbeddedDocumentListField,
    IntField,
    ListField,
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
    # advance-week copies the week's groups and members into the new week when it is empty
    carry_forward = BooleanField(default=False)
    version = IntField(default=0)


class ProgramStudent(SchoolOwned):
    """A participant of one program (not a user). `customer_key` is the unique natural key:
    "c:<customer_id>" when the student has one, else "s:<own id>", so the unique index never
    sees two documents without a value."""

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
    # the week the student joins the program (None: week 1); before it "not yet enrolled"
    first_week = IntField()


class Group(SchoolOwned):
    """A group of a program across weeks; what changes per week lives in the week document."""

    meta = {"collection": "weekly_groups",
            "indexes": [{"fields": ["school_id", "program_id", "base_name"], "unique": True}]}

    program_id = ObjectIdField(required=True)
    base_name = StringField(required=True)
    ability_level = StringField()
    max_size = IntField(required=True, default=8)
    # created by a generation: a regeneration removes it when it leaves it empty
    generated = BooleanField(default=False)


class Instructor(EmbeddedDocument):
    """Who taught the group that week, as they were named then."""

    user_id = ObjectIdField(required=True)
    name = StringField()
    email = StringField()


class Member(EmbeddedDocument):
    student_id = ObjectIdField(required=True)
    joined_at = DateTimeField(required=True)


class Waiting(EmbeddedDocument):
    """A student waiting for a seat in a group that week, first come first seated."""

    student_id = ObjectIdField(required=True)
    since = DateTimeField(required=True)


class WeekGroup(EmbeddedDocument):
    """A group as it is in one week. `name` None: the base name. The waitlist lives here,
    so a seat freed and its taking by the first waiting student are one compare-and-set."""

    group_id = ObjectIdField(required=True)
    base_name = StringField(required=True)
    ability_level = StringField()
    name = StringField()
    max_size = IntField(required=True)
    instructor = EmbeddedDocumentField(Instructor)
    members = EmbeddedDocumentListField(Member)
    waitlist = EmbeddedDocumentListField(Waiting)


class ProgramWeek(SchoolOwned):
    """One week of one program: its groups and their members (see the module docstring)."""

    meta = {"collection": "weekly_program_weeks",
            "indexes": [{"fields": ["school_id", "program_id", "week_number"], "unique": True},
                        # the weeks a student was placed in: their history
                        ["school_id", "groups.members.student_id"],
                        # the weeks an instructor teaches in: "my groups"
                        ["school_id", "groups.instructor.user_id"]]}

    program_id = ObjectIdField(required=True)
    week_number = IntField(required=True)
    groups = EmbeddedDocumentListField(WeekGroup)
    last_change = DictField()  # the log records of the latest change, in short
    closed = BooleanField(default=False)  # being dropped by a shrinking program: no changes
    version = IntField(default=0)
    updated_at = DateTimeField(default=utcnow)


class StudentMove(SchoolOwned):
    """One change of a student's group for one week: by a move, a generation, a copy or an
    import. `from_group_id` is None when the student was unassigned, `to_group_id` when they
    are now. `week_version` is the week document's version the change produced: the exact
    order of the week's changes."""

    meta = {"collection": "weekly_student_moves",
            "indexes": [["school_id", "student_id", "created_at"]]}  # a student's history

    program_id = ObjectIdField(required=True)
    student_id = ObjectIdField(required=True)
    week_number = IntField(required=True)
    week_version = IntField()
    from_group_id = ObjectIdField()
    to_group_id = ObjectIdField()
    reason = StringField(required=True)  # move, generate, copy, import, swap, undo, ...
    actor_id = ObjectIdField()
    change_id = ObjectIdField()  # the change set (`ChangeSet`) the move belongs to


class ChangeSet(SchoolOwned):
    """One change of a program's memberships as a whole (a move, a generation, a copy, a
    swap, a carry-forward, an undo), written right after its week updates, with per week
    the moves it made and the week version it produced. Undo reads it to put the students
    back."""

    meta = {"collection": "weekly_change_sets",
            "indexes": [["school_id", "program_id", "created_at"]]}

    program_id = ObjectIdField(required=True)
    reason = StringField(required=True)
    actor_id = ObjectIdField()
    # [{"week_number", "week_version", "moves": [[student, from group, to group], ...]}]
    weeks = ListField(DictField())
    undo_of = ObjectIdField()  # the change set this one undid
    undone_by = ObjectIdField()  # the change set that undid this one


class StudentNote(SchoolOwned):
    """A staff note on a program student. A private note is read by its author and the
    admins; a shared one by all staff; students never read notes."""

    meta = {"collection": "weekly_student_notes",
            "indexes": [["school_id", "student_id", "created_at"]]}

    program_id = ObjectIdField(required=True)
    student_id = ObjectIdField(required=True)
    author_id = ObjectIdField(required=True)
    author_name = StringField()
    text = StringField(required=True)
    is_private = BooleanField(default=False)
