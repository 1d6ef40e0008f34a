"""Tracks under a project or a sub-project: instructors, enrolled students, courses."""

from __future__ import annotations

import mongoengine as me

from documents.base import SchoolOwned, utcnow

MODULE_KINDS = ("content", "lab", "quiz")


class TrackInstructor(me.EmbeddedDocument):
    """One instructor of the track, with how students reach them."""

    user_id = me.ObjectIdField(required=True)
    zoom_link = me.StringField()
    teams_link = me.StringField()
    slack_links = me.ListField(me.StringField())
    # Balancing aims for loads proportional to weight and never above max_students.
    max_students = me.IntField(min_value=0)
    weight = me.FloatField(default=1)
    assigned_by = me.ObjectIdField()
    assigned_at = me.DateTimeField(default=utcnow)


class TrackEnrolment(me.EmbeddedDocument):
    """One student of the track, assigned to one of its instructors. Kept small (about 150
    bytes): a track of 10,000 students stays near 1.5 MB, far below the 16 MB of a document."""

    student_id = me.ObjectIdField(required=True)
    instructor_id = me.ObjectIdField(required=True)
    enrolled_at = me.DateTimeField(default=utcnow)
    assigned_by = me.ObjectIdField()
    last_reassigned_at = me.DateTimeField()
    # Balancing and instructor removal never move a pinned student.
    pinned = me.BooleanField(default=False)


class Track(SchoolOwned):
    """A track under exactly one of `project_id` or `sub_project_id`.

    `root_project_id` is always the top-level project (the track's own project, or the
    parent of its sub-project), so deleting or listing a project reaches every track with one
    query.

    The track is the aggregate of its instructors and enrolments: both are embedded, so who
    teaches, who is enrolled and with whom change together in one conditional update
    (compare-and-set on `version`), and the instructors' loads are always counted from the
    enrolments, never stored beside them. Enrolments are kept in enrolment order.
    """

    meta = {"collection": "tracks",
            "indexes": [["school_id", "root_project_id", "name"],
                        ["school_id", "sub_project_id"],
                        ["school_id", "enrolments.student_id"]]}

    name = me.StringField(required=True)
    description = me.StringField()
    project_id = me.ObjectIdField()
    sub_project_id = me.ObjectIdField()
    root_project_id = me.ObjectIdField(required=True)
    version = me.IntField(default=0)
    archived = me.BooleanField(default=False)
    instructors = me.EmbeddedDocumentListField(TrackInstructor)
    enrolments = me.EmbeddedDocumentListField(TrackEnrolment)


class CourseModule(me.EmbeddedDocument):
    title = me.StringField(required=True)
    kind = me.StringField(required=True, choices=MODULE_KINDS)
    url = me.StringField()


class TrackCourse(SchoolOwned):
    """A course of a track for navigation; its modules are kept in order. No rule ties it to
    the track's enrolments, so it stays a document of its own."""

    meta = {"collection": "track_courses",
            "indexes": [["school_id", "track_id", "position"]]}

    track_id = me.ObjectIdField(required=True)
    title = me.StringField(required=True)
    description = me.StringField()
    position = me.IntField(default=0)
    modules = me.EmbeddedDocumentListField(CourseModule)
    version = me.IntField(default=0)  # each change is one conditional update of the course
