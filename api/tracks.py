"""Tracks (module `tracks`): instructors, weighted enrolment, pinning, reassignment, courses.

Who may: school admins manage everything and alone reassign students; staff read tracks,
students lists and loads; students read the tracks they are enrolled in (list, detail with
their own instructor, courses) and nothing else. A track under an archived project is
read-only: every write answers 409 `project_archived`.
"""

from __future__ import annotations

from flask_smorest import Blueprint
from marshmallow import fields, validate

from api.etags import versioned
from api.schemas import BaseSchema, Id, PageArgs, Timestamp, page_of
from api.security import school_route
from documents.tracks import MODULE_KINDS
from service.context import ADMIN_ROLES, STAFF_ROLES
from service.tracks import Tracks
from service.tracks_courses import TrackCourses
from service.tracks_instructors import TrackInstructors
from service.tracks_students import TrackStudents

blp = Blueprint("tracks", __name__, url_prefix="/schools",
                description="Tracks under a project or a sub-project: instructors with their "
                            "links, balanced student assignment, reassignment and courses.")

READERS = STAFF_ROLES | {"student"}


def web_url(**kwargs):
    return fields.Url(schemes={"http", "https"}, **kwargs)


# ---- schemas ----

class TrackInstructorLinksSchema(BaseSchema):
    zoom_link = web_url(allow_none=True)
    teams_link = web_url(allow_none=True)
    slack_links = fields.List(web_url(), metadata={"description": "http(s) links."})
    max_students = fields.Integer(allow_none=True, validate=validate.Range(min=0), metadata={
        "description": "A cap: enrolment and balancing never give this instructor more "
                       "students. null: no cap."})
    weight = fields.Float(validate=validate.Range(min=0, min_inclusive=False, max=1000),
                          metadata={"description": "Loads aim to be proportional to weight "
                                                   "(default 1)."})


class TrackInstructorAddSchema(TrackInstructorLinksSchema):
    user_id = Id(required=True, metadata={"description": "A staff member or school admin."})


class TrackCreateSchema(BaseSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(validate=validate.Length(max=5000))
    project_id = Id(metadata={"description": "A top-level project; or give sub_project_id."})
    sub_project_id = Id(metadata={"description": "A sub-project; exactly one of the two."})
    instructors = fields.List(fields.Nested(TrackInstructorAddSchema), required=True,
                              validate=validate.Length(min=1, max=200), metadata={
                                  "description": "A track starts with at least one instructor "
                                                 "and keeps at least one."})


class TrackUpdateSchema(BaseSchema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    description = fields.String(allow_none=True, validate=validate.Length(max=5000))


class TrackDeleteArgs(BaseSchema):
    force = fields.Boolean(load_default=False, metadata={
        "description": "Needed for a track with students: they are unenrolled (audited)."})


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
    archived = fields.Boolean(metadata={"description": "Its project is archived: read-only."})
    created_at = Timestamp()


class TrackInstructorSchema(BaseSchema):
    user_id = Id()
    name = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    zoom_link = fields.String(allow_none=True)
    teams_link = fields.String(allow_none=True)
    slack_links = fields.List(fields.String())
    max_students = fields.Integer(allow_none=True)
    weight = fields.Float()
    students = fields.Integer(metadata={"description": "Students assigned to this instructor."})
    assigned_by = Id(allow_none=True, metadata={"description": "Who added the instructor."})
    assigned_at = Timestamp()


class InstructorRemoveArgs(BaseSchema):
    unpin = fields.Boolean(load_default=False, metadata={
        "description": "Unpin the instructor's pinned students and place them like the others."})
    move_pinned_to = Id(metadata={"description": "Another instructor of the track: the pinned "
                                                 "students go there and stay pinned."})


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


class TrackCourseUpdateSchema(BaseSchema):
    title = fields.String(validate=validate.Length(min=1, max=200))
    description = fields.String(allow_none=True, validate=validate.Length(max=5000))
    position = fields.Integer(validate=validate.Range(min=0))
    modules = fields.List(fields.Nested(TrackCourseModuleSchema),
                          metadata={"description": "Replaces the modules, in this order."})


class TrackCourseSchema(TrackCourseCreateSchema):
    description = fields.String(allow_none=True)
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
    instructor_id = Id(metadata={"description": "\"Assign to Specific\": every newcomer goes "
                                                "to this instructor (must teach the track, else "
                                                "422), also on an auto-balancing project."})
    pinned = fields.Boolean(metadata={"description": "Pin the newcomers (balancing never moves "
                                                     "them). Default: true with instructor_id, "
                                                     "else false."})


class EnrolmentSchema(BaseSchema):
    student_id = Id()
    instructor_id = Id()
    pinned = fields.Boolean()


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
    assigned_by = Id(allow_none=True, metadata={"description": "Who placed the student last."})
    pinned = fields.Boolean(metadata={"description": "Balancing never moves a pinned student."})


class ReassignSchema(BaseSchema):
    instructor_id = Id(required=True)
    pinned = fields.Boolean(load_default=True, metadata={
        "description": "Pin the student to the new instructor (default: an admin's explicit "
                       "choice is kept by balancing)."})


class PinSchema(BaseSchema):
    pinned = fields.Boolean(required=True)


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
    pinned = fields.Integer(metadata={"description": "Of them, pinned."})
    weight = fields.Float()
    max_students = fields.Integer(allow_none=True)
    target = fields.Integer(metadata={
        "description": "The load balancing aims for: proportional to weight, never above "
                       "max_students, pinned students staying."})
    flag = fields.String(allow_none=True, validate=validate.OneOf(["over", "under"]), metadata={
        "description": "\"over\" or \"under\" when students is more than 20% above or below "
                       "target, else null."})


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
    422; an id that is not a project, resp. sub-project, of this school → 422) with at least
    one instructor (staff or school admins of this school, else 422 naming
    `instructors.N.user_id`). Under an archived project → 409 `project_archived`."""
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
@versioned("track_id")
def get_track(ctx, track_id):
    """The track with its instructors (links and loads), student count and courses.
    Students: only a track they are enrolled in (else 403 `not_enrolled`)."""
    return Tracks(ctx).detail(track_id)


@blp.route("/<school_id>/tracks/<track_id>", methods=["PATCH"])
@blp.arguments(TrackUpdateSchema)
@blp.response(200, TrackSchema)
@school_route(module="tracks", roles=ADMIN_ROLES)
@versioned("track_id")
def update_track(ctx, body, track_id):
    """Rename or redescribe a track (admins)."""
    return Tracks(ctx).update(track_id, **body)


@blp.route("/<school_id>/tracks/<track_id>", methods=["DELETE"])
@blp.arguments(TrackDeleteArgs, location="query")
@blp.response(204)
@school_route(module="tracks", roles=ADMIN_ROLES)
@versioned("track_id")
def delete_track(ctx, args, track_id):
    """Delete a track with its courses (admins). A track with students → 409
    `track_has_students` unless `?force=true`: then its students are unenrolled, each with
    an `unenrol` audit event."""
    Tracks(ctx).delete(track_id, **args)


# ---- instructors ----

@blp.route("/<school_id>/tracks/<track_id>/instructors", methods=["POST"])
@blp.arguments(TrackInstructorAddSchema)
@blp.response(201, TrackInstructorSchema)
@school_route(module="tracks", roles=ADMIN_ROLES)
def add_instructor(ctx, body, track_id):
    """Add an instructor: a staff member or school admin of this school (else 422), with
    http(s) links (else 422), an optional cap and weight. Already teaching → 409
    `already_instructor`. On an auto-balancing project the unpinned students rebalance."""
    return TrackInstructors(ctx).add(track_id, **body)


@blp.route("/<school_id>/tracks/<track_id>/instructors/<user_id>", methods=["PUT"])
@blp.arguments(TrackInstructorLinksSchema)
@blp.response(200, TrackInstructorSchema)
@school_route(module="tracks", roles=ADMIN_ROLES)
@versioned("track_id")
def update_instructor(ctx, body, track_id, user_id):
    """Change an instructor's links, cap or weight (fields left out stay). A lowered cap
    moves nobody unless the project auto-balances. `If-Match` takes the track's ETag."""
    return TrackInstructors(ctx).update(track_id, user_id, **body)


@blp.route("/<school_id>/tracks/<track_id>/instructors/<user_id>", methods=["DELETE"])
@blp.arguments(InstructorRemoveArgs, location="query")
@blp.response(204)
@school_route(module="tracks", roles=ADMIN_ROLES)
def remove_instructor(ctx, args, track_id, user_id):
    """Remove an instructor; their students move to the least loaded by weight of those who
    stay. The last instructor stays: 409 `last_instructor`. Students pinned to them: 409
    `pinned_students` with `details.student_ids`, unless `?move_pinned_to=<instructor>`
    (they go there, still pinned) or `?unpin=true` (they are placed like the others). Not
    enough room under the caps → 409 `track_full`."""
    TrackInstructors(ctx).remove(track_id, user_id, **args)


# ---- students ----

@blp.route("/<school_id>/tracks/<track_id>/students", methods=["POST"])
@blp.arguments(EnrolSchema)
@blp.response(200, EnrolResultSchema)
@school_route(module="tracks", roles=ADMIN_ROLES)
def enrol_students(ctx, body, track_id):
    """Enrol students (admins). Every id must be a student of this school (422 lists the bad
    ones). Students already enrolled are skipped and listed in `skipped`. With
    `instructor_id` every newcomer goes there, pinned by default (an explicit choice wins,
    also on an auto-balancing project); the cap of that instructor → 409 `instructor_full`.
    Without it each goes to the least loaded instructor by weight (ties: the smaller
    instructor id), never above a cap: 409 `track_full` with `details.students`, `requested`
    and `capacity` when they do not fit. No instructor on the track → 409 `no_instructors`."""
    return TrackStudents(ctx).enrol(track_id, **body)


@blp.route("/<school_id>/tracks/<track_id>/students", methods=["GET"])
@blp.arguments(StudentListArgs, location="query")
@blp.response(200, page_of(TrackStudentSchema))
@blp.doc(operationId="listTrackStudents")
@school_route(module="tracks", roles=STAFF_ROLES)
def list_students(ctx, args, track_id):
    """Enrolled students in enrolment order, optionally of one instructor (staff, admins),
    with who placed them last (`assigned_by`) and whether they are pinned."""
    return TrackStudents(ctx).list_students(track_id, **args)


@blp.route("/<school_id>/tracks/<track_id>/students/<student_id>", methods=["DELETE"])
@blp.response(204)
@school_route(module="tracks", roles=ADMIN_ROLES)
def unenrol_student(ctx, track_id, student_id):
    """Take a student out of the track (admins). On an auto-balancing project the others
    rebalance."""
    TrackStudents(ctx).unenrol(track_id, student_id)


@blp.route("/<school_id>/tracks/<track_id>/students/<student_id>/pin", methods=["PUT"])
@blp.arguments(PinSchema)
@blp.response(200, TrackStudentSchema)
@school_route(module="tracks", roles=ADMIN_ROLES)
def pin_student(ctx, body, track_id, student_id):
    """Pin (or unpin) a student to their instructor (admins): balancing and instructor
    removal never move a pinned student. Audited as `pin` / `unpin`."""
    return TrackStudents(ctx).pin(track_id, student_id, **body)


@blp.route("/<school_id>/tracks/<track_id>/students/<student_id>/reassign", methods=["PUT"])
@blp.arguments(ReassignSchema)
@blp.response(200, ReassignResultSchema)
@school_route(module="tracks", roles=ADMIN_ROLES)
def reassign_student(ctx, body, track_id, student_id):
    """Move a student to another instructor of the track (school admins only), pinned there
    unless `pinned: false`. Audited with from/to; both instructors are notified.
    `warning: "imbalance"` when afterwards the busiest instructor has more than 20% above
    the mean load. Above the instructor's cap → 409 `instructor_full`. A student already
    with that instructor (also when a parallel identical request moved them first): 200 with
    `previous_instructor_id` equal to `instructor_id`, and nothing written, audited or
    notified."""
    return TrackStudents(ctx).reassign(track_id, student_id, **body)


@blp.route("/<school_id>/tracks/<track_id>/balance-students", methods=["POST"])
@blp.response(200, BalanceResultSchema)
@school_route(module="tracks", roles=ADMIN_ROLES)
def balance_students(ctx, track_id):
    """Rebalance (admins): afterwards every load is within one student of its weighted
    target and under its cap, pinned students stay, and no more students moved than that
    needs (the newest unpinned enrolments of the busiest instructors). Each moved student
    gets a `balance` audit event. The caps cannot hold the students → 409 `track_full`."""
    return TrackStudents(ctx).balance(track_id)


@blp.route("/<school_id>/tracks/<track_id>/instructor-loads", methods=["GET"])
@blp.response(200, InstructorLoadsSchema)
@school_route(module="tracks", roles=STAFF_ROLES)
def instructor_loads(ctx, track_id):
    """Students per instructor with their weighted `target` and a `flag` (over/under past
    20% of it), plus spread (max - min) and population standard deviation."""
    return Tracks(ctx).instructor_loads(track_id)


# ---- courses ----

@blp.route("/<school_id>/tracks/<track_id>/courses", methods=["POST"])
@blp.arguments(TrackCourseCreateSchema)
@blp.response(201, TrackCourseSchema)
@school_route(module="tracks", roles=ADMIN_ROLES)
def add_course(ctx, body, track_id):
    """Add a course with ordered modules (content, lab or quiz) for navigation (admins)."""
    return TrackCourses(ctx).add(track_id, **body)


@blp.route("/<school_id>/tracks/<track_id>/courses", methods=["GET"])
@blp.arguments(PageArgs, location="query")
@blp.response(200, page_of(TrackCourseSchema))
@school_route(module="tracks", roles=READERS)
def list_courses(ctx, args, track_id):
    """The track's courses in order (staff; students enrolled in the track)."""
    return TrackCourses(ctx).list(track_id, **args)


@blp.route("/<school_id>/tracks/<track_id>/courses/<course_id>", methods=["PATCH"])
@blp.arguments(TrackCourseUpdateSchema)
@blp.response(200, TrackCourseSchema)
@school_route(module="tracks", roles=ADMIN_ROLES)
def update_course(ctx, body, track_id, course_id):
    """Change a course's title, description, position or modules (admins)."""
    return TrackCourses(ctx).update(track_id, course_id, **body)


@blp.route("/<school_id>/tracks/<track_id>/courses/<course_id>", methods=["DELETE"])
@blp.response(204)
@school_route(module="tracks", roles=ADMIN_ROLES)
def delete_course(ctx, track_id, course_id):
    """Delete a course (admins)."""
    TrackCourses(ctx).delete(track_id, course_id)
