"""Tracks (module `tracks`): instructors, balanced enrolment, reassignment, courses.

Who may: school admins manage everything and alone reassign students; staff read tracks,
students lists and loads; students read the tracks they are enrolled in (list, detail with
their own instructor, courses) and nothing else.
"""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import fields, validate

from api.schemas import BaseSchema, Id, PageArgs, Timestamp, page_of
from api.security import school_route
from documents.tracks import MODULE_KINDS
from service.context import ADMIN_ROLES, STAFF_ROLES
from service.tracks import Tracks
from service.tracks_students import TrackStudents

blp = Blueprint("tracks", __name__, url_prefix="/schools",
                description="Tracks under a project or a sub-project: instructors with their "
                            "links, balanced student assignment, reassignment and courses.")

READERS = STAFF_ROLES | {"student"}


def web_url(**kwargs):
    return fields.Url(schemes={"http", "https"}, **kwargs)


# ---- schemas ----

class TrackCreateSchema(BaseSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(validate=validate.Length(max=5000))
    project_id = Id(metadata={"description": "A top-level project; or give sub_project_id."})
    sub_project_id = Id(metadata={"description": "A sub-project; exactly one of the two."})


class TrackListArgs(PageArgs):
    project_id = Id(metadata={"description": "Tracks of this project, including those of its "
                                             "sub-projects; a sub-project's id gives its own."})
    sub_project_id = Id()


class TrackSchema(BaseSchema):
    id = Id(dump_only=True)
    name = fields.String()
    description = fields.String(allow_none=True)
    project_id = Id(allow_none=True)
    sub_project_id = Id(allow_none=True)
    root_project_id = Id(metadata={"description": "The top-level project in both cases."})
    created_at = Timestamp()


class TrackInstructorLinksSchema(BaseSchema):
    zoom_link = web_url(allow_none=True)
    teams_link = web_url(allow_none=True)
    slack_links = fields.List(web_url(), metadata={"description": "http(s) links."})


class TrackInstructorAddSchema(TrackInstructorLinksSchema):
    user_id = Id(required=True, metadata={"description": "A staff member or school admin."})


class TrackInstructorSchema(BaseSchema):
    user_id = Id()
    name = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    zoom_link = fields.String(allow_none=True)
    teams_link = fields.String(allow_none=True)
    slack_links = fields.List(fields.String())
    students = fields.Integer(metadata={"description": "Students assigned to this instructor."})
    assigned_at = Timestamp()


class TrackCourseModuleSchema(BaseSchema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    kind = fields.String(required=True, validate=validate.OneOf(MODULE_KINDS))
    url = web_url(allow_none=True)


class TrackCourseCreateSchema(BaseSchema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(validate=validate.Length(max=5000))
    position = fields.Integer(validate=validate.Range(min=0), metadata={
        "description": "Order among the track's courses; defaults to after the last."})
    modules = fields.List(fields.Nested(TrackCourseModuleSchema), load_default=list,
                          metadata={"description": "Kept in the order given."})


class TrackCourseSchema(TrackCourseCreateSchema):
    id = Id(dump_only=True)
    track_id = Id(dump_only=True)
    created_at = Timestamp(dump_only=True)


class TrackDetailSchema(TrackSchema):
    instructors = fields.List(fields.Nested(TrackInstructorSchema))
    students_count = fields.Integer()
    courses = fields.List(fields.Nested(TrackCourseSchema))
    my_instructor_id = Id(allow_none=True, metadata={
        "description": "For a student caller: the instructor they are assigned to."})


class EnrolSchema(BaseSchema):
    student_ids = fields.List(Id(), required=True,
                              validate=validate.Length(min=1, max=20000))
    instructor_id = Id(metadata={"description": "Must teach the track (else 422). Ignored when "
                                                "the project auto-balances."})


class EnrolmentSchema(BaseSchema):
    student_id = Id()
    instructor_id = Id()


class EnrolResultSchema(BaseSchema):
    enrolled = fields.List(fields.Nested(EnrolmentSchema))
    skipped = fields.List(Id(), metadata={"description": "Already enrolled: left as they were."})
    students_count = fields.Integer(metadata={"description": "Students in the track now."})


class StudentListArgs(PageArgs):
    instructor_id = Id()


class TrackStudentSchema(BaseSchema):
    student_id = Id()
    name = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    instructor_id = Id()
    instructor_name = fields.String(allow_none=True)
    enrolled_at = Timestamp()
    last_reassigned_at = Timestamp(allow_none=True)


class ReassignSchema(BaseSchema):
    instructor_id = Id(required=True)


class LoadStatsSchema(BaseSchema):
    spread = fields.Integer(metadata={"description": "Most loaded minus least loaded."})
    stddev = fields.Float(metadata={"description": "Population standard deviation."})
    mean = fields.Float()


class ReassignResultSchema(LoadStatsSchema):
    track_id = Id()
    student_id = Id()
    instructor_id = Id()
    previous_instructor_id = Id()
    warning = fields.String(allow_none=True, metadata={
        "description": "\"imbalance\" when the busiest instructor has more than 20% above "
                       "the mean load, else null."})


class InstructorLoadSchema(BaseSchema):
    instructor_id = Id()
    name = fields.String(allow_none=True)
    students = fields.Integer()


class InstructorLoadsSchema(LoadStatsSchema):
    items = fields.List(fields.Nested(InstructorLoadSchema))
    total = fields.Integer()
    students = fields.Integer()


class BalanceResultSchema(InstructorLoadsSchema):
    students_moved = fields.Integer()


# ---- tracks ----

@blp.route("/<school_id>/tracks", methods=["POST"])
@blp.arguments(TrackCreateSchema)
@blp.response(201, TrackSchema)
@school_route(module="tracks", roles=ADMIN_ROLES)
def create_track(ctx, body):
    """Create a track under exactly one of project_id or sub_project_id (both or neither →
    422; an id that is not a project, resp. sub-project, of this school → 422)."""
    return Tracks(ctx).create(**body)


@blp.route("/<school_id>/tracks", methods=["GET"])
@blp.arguments(TrackListArgs, location="query")
@blp.response(200, page_of(TrackSchema))
@school_route(module="tracks", roles=READERS)
def list_tracks(ctx, args):
    """Tracks by name. Students get only the tracks they are enrolled in."""
    return Tracks(ctx).list(**args)


@blp.route("/<school_id>/tracks/<track_id>", methods=["GET"])
@blp.response(200, TrackDetailSchema)
@school_route(module="tracks", roles=READERS)
def get_track(ctx, track_id):
    """The track with its instructors (links and loads), student count and courses.
    Students: only a track they are enrolled in (else 403 `not_enrolled`)."""
    return Tracks(ctx).detail(track_id)


# ---- instructors ----

@blp.route("/<school_id>/tracks/<track_id>/instructors", methods=["POST"])
@blp.arguments(TrackInstructorAddSchema)
@blp.response(201, TrackInstructorSchema)
@school_route(module="tracks", roles=ADMIN_ROLES)
def add_instructor(ctx, body, track_id):
    """Add an instructor: a staff member or school admin of this school (else 422), with
    http(s) links (else 422). Already teaching → 409 `already_instructor`."""
    return Tracks(ctx).add_instructor(track_id, **body)


@blp.route("/<school_id>/tracks/<track_id>/instructors/<user_id>", methods=["PUT"])
@blp.arguments(TrackInstructorLinksSchema)
@blp.response(200, TrackInstructorSchema)
@school_route(module="tracks", roles=ADMIN_ROLES)
def update_instructor(ctx, body, track_id, user_id):
    """Change an instructor's links (fields left out stay)."""
    return Tracks(ctx).update_instructor(track_id, user_id, **body)


@blp.route("/<school_id>/tracks/<track_id>/instructors/<user_id>", methods=["DELETE"])
@blp.response(204)
@school_route(module="tracks", roles=ADMIN_ROLES)
def remove_instructor(ctx, track_id, user_id):
    """Remove an instructor; their students move to the least-loaded remaining instructors.
    The last instructor of a track with students cannot go: 409 `last_instructor`."""
    Tracks(ctx).remove_instructor(track_id, user_id)


# ---- students ----

@blp.route("/<school_id>/tracks/<track_id>/students", methods=["POST"])
@blp.arguments(EnrolSchema)
@blp.response(200, EnrolResultSchema)
@school_route(module="tracks", roles=ADMIN_ROLES)
def enrol_students(ctx, body, track_id):
    """Enrol students (admins). Every id must be a student of this school (422 lists the bad
    ones). Students already enrolled are skipped and listed in `skipped`. When the project
    auto-balances, or no instructor_id is given, each newcomer goes to the least-loaded
    instructor (ties: the smaller instructor id). No instructor on the track → 409
    `no_instructors`."""
    return TrackStudents(ctx).enrol(track_id, **body)


@blp.route("/<school_id>/tracks/<track_id>/students", methods=["GET"])
@blp.arguments(StudentListArgs, location="query")
@blp.response(200, page_of(TrackStudentSchema))
@school_route(module="tracks", roles=STAFF_ROLES)
def list_students(ctx, args, track_id):
    """Enrolled students in enrolment order, optionally of one instructor (staff, admins)."""
    return TrackStudents(ctx).list_students(track_id, **args)


@blp.route("/<school_id>/tracks/<track_id>/students/<student_id>", methods=["DELETE"])
@blp.response(204)
@school_route(module="tracks", roles=ADMIN_ROLES)
def unenrol_student(ctx, track_id, student_id):
    """Take a student out of the track (admins)."""
    TrackStudents(ctx).unenrol(track_id, student_id)


@blp.route("/<school_id>/tracks/<track_id>/students/<student_id>/reassign", methods=["PUT"])
@blp.arguments(ReassignSchema)
@blp.response(200, ReassignResultSchema)
@school_route(module="tracks", roles=ADMIN_ROLES)
def reassign_student(ctx, body, track_id, student_id):
    """Move a student to another instructor of the track (school admins only). Audited with
    from/to; both instructors are notified. `warning: "imbalance"` when afterwards the busiest
    instructor has more than 20% above the mean load. A student already with that instructor
    (also when a parallel identical request moved them first): 200 with
    `previous_instructor_id` equal to `instructor_id`, and nothing written, audited or
    notified."""
    return TrackStudents(ctx).reassign(track_id, student_id, **body)


@blp.route("/<school_id>/tracks/<track_id>/balance-students", methods=["POST"])
@blp.response(200, BalanceResultSchema)
@school_route(module="tracks", roles=ADMIN_ROLES)
def balance_students(ctx, track_id):
    """Rebalance (admins): afterwards the most and the least loaded instructor differ by at
    most one student, and no more students moved than that needs (the newest enrolments of
    the busiest instructors). Each moved student gets a `balance` audit event."""
    return TrackStudents(ctx).balance(track_id)


@blp.route("/<school_id>/tracks/<track_id>/instructor-loads", methods=["GET"])
@blp.response(200, InstructorLoadsSchema)
@school_route(module="tracks", roles=STAFF_ROLES)
def instructor_loads(ctx, track_id):
    """Students per instructor, with spread (max - min) and population standard deviation."""
    return Tracks(ctx).instructor_loads(track_id)


# ---- courses ----

@blp.route("/<school_id>/tracks/<track_id>/courses", methods=["POST"])
@blp.arguments(TrackCourseCreateSchema)
@blp.response(201, TrackCourseSchema)
@school_route(module="tracks", roles=ADMIN_ROLES)
def add_course(ctx, body, track_id):
    """Add a course with ordered modules (content, lab or quiz) for navigation (admins)."""
    return Tracks(ctx).add_course(track_id, **body)


@blp.route("/<school_id>/tracks/<track_id>/courses", methods=["GET"])
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_of(TrackCourseSchema))
@school_route(module="tracks", roles=READERS)
def list_courses(ctx, args, track_id):
    """The track's courses in order (staff; students enrolled in the track)."""
    return Tracks(ctx).list_courses(track_id, **args)
