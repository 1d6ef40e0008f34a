"""Tracks under a project or a sub-project: instructors, enrolled students, courses."""

from __future__ import annotations

import mongoengine as me

from documents.base import SchoolOwned

MODULE_KINDS = ("content", "lab", "quiz")


class Track(SchoolOwned):
    """A track under exactly one of `project_id` or `sub_project_id`.

    `root_project_id` is always the top-level project (the track's own project, or the
    parent of its sub-project), so deleting or listing a project reaches every track with one
    query.
    """

    meta = {"collection": "tracks",
            "indexes": [["school_id", "root_project_id", "name"],
                        ["school_id", "sub_project_id"]]}

    name = me.StringField(required=True)
    description = me.StringField()
    project_id = me.ObjectIdField()
    sub_project_id = me.ObjectIdField()
    root_project_id = me.ObjectIdField(required=True)


class TrackLedger(SchoolOwned):
    """One committed state of a track's assignment ledger: who teaches it, how many students
    each instructor has (`loads`, keys are user ids as hex) and in total.

    The current state is the entry with the highest `seq`. A change is committed by inserting
    entry `seq + 1`: the unique index lets exactly one of several parallel writers win, the
    others read again and retry. (Conditional updates of one document are not atomic on
    FerretDB v1 with SQLite under parallel writers; unique inserts are.) Older entries are
    the track's assignment journal.
    """

    meta = {"collection": "track_ledgers",
            "indexes": [{"fields": ["track_id", "seq"], "unique": True}]}

    track_id = me.ObjectIdField(required=True)
    seq = me.IntField(required=True)
    loads = me.DictField(default=dict)
    instructors_count = me.IntField(default=0)
    students_count = me.IntField(default=0)
    action = me.StringField()
    actor_id = me.ObjectIdField()


class TrackInstructor(SchoolOwned):
    """One instructor of one track, with how students reach them."""

    meta = {"collection": "track_instructors",
            "indexes": [{"fields": ["track_id", "user_id"], "unique": True},
                        ["school_id", "user_id"]]}

    track_id = me.ObjectIdField(required=True)
    user_id = me.ObjectIdField(required=True)
    zoom_link = me.StringField()
    teams_link = me.StringField()
    slack_links = me.ListField(me.StringField())
    assigned_by = me.ObjectIdField()


class TrackEnrolment(SchoolOwned):
    """One student in one track, assigned to one of its instructors."""

    meta = {"collection": "track_enrolments",
            "indexes": [{"fields": ["track_id", "student_id"], "unique": True},
                        ["track_id", "instructor_id"],
                        ["school_id", "student_id"]]}

    track_id = me.ObjectIdField(required=True)
    student_id = me.ObjectIdField(required=True)
    instructor_id = me.ObjectIdField(required=True)
    assigned_by = me.ObjectIdField()
    last_reassigned_at = me.DateTimeField()


class CourseModule(me.EmbeddedDocument):
    title = me.StringField(required=True)
    kind = me.StringField(required=True, choices=MODULE_KINDS)
    url = me.StringField()


class TrackCourse(SchoolOwned):
    """A course of a track for navigation; its modules are kept in order."""

    meta = {"collection": "track_courses",
            "indexes": [["track_id", "position"]]}

    track_id = me.ObjectIdField(required=True)
    title = me.StringField(required=True)
    description = me.StringField()
    position = me.IntField(default=0)
    modules = me.EmbeddedDocumentListField(CourseModule)


class TrackMove(SchoolOwned):
    """Enrolments being moved to other instructors, kept until the move is complete.

    Rows move by delete + insert, as FerretDB v1 rewrites documents one by one on update
    (seconds per thousand) but deletes and inserts in bulk; a crash in between leaves this
    record, from which the next balance puts the rows back.
    """

    meta = {"collection": "track_moves", "indexes": [["school_id", "track_id"]]}

    track_id = me.ObjectIdField(required=True)
    rows = me.ListField(me.DictField())
