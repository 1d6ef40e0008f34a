"""Tracks: placement under a project, instructors with their links, courses, and reads.

A track is one aggregate: its instructors and its enrolments are embedded in the track
document (see `documents.tracks.Track`). Every change of them (enrol, unenrol, reassign,
balance, add, update or remove an instructor) is one compare-and-set of the track on its
`version` (`service.aggregates.change`): the plan is made from the document as read and
applied only if nobody changed it since, else it is made again from the fresh document. So
parallel enrolments each go to the least-loaded instructor, a balance never overwrites a
reassignment that committed first, of two parallel removals of the last two instructors of a
track with students exactly one succeeds, and loads, counted from the enrolments, never drift.
Audit events and notifications are written after the change, only for what really changed.
The students' side (enrol, reassign, balance) is `service.tracks_students.TrackStudents`.
"""

from __future__ import annotations

from bson import ObjectId

from documents.accounts import User
from documents.base import utcnow
from documents.projects import Project
from documents.tracks import Track, TrackCourse
from service.aggregates import change
from service.base import SchoolService
from service.context import STAFF_ROLES
from service.errors import Conflict, Forbidden, NotFound, ValidationFailed
from service.ids import field_object_id, object_id
from service.pagination import Page, paginate
from service.tracks_balancing import (
    instructor_index,
    load_stats,
    loads_of,
    moved_update,
    orphan_changes,
)

INSTRUCTOR_ROLES = frozenset({"staff", "school_admin"})
# Large reads stay one round trip: the first batch holds them all (up to 16 MB).
BIG_BATCH = 100_000
# What reads of a track fetch: never the enrolments, which may be thousands.
TRACK_FIELDS = ("school_id", "created_at", "name", "description", "project_id",
                "sub_project_id", "root_project_id", "version", "instructors")
OWN_FIELDS = ("id", "name", "description", "project_id", "sub_project_id", "root_project_id",
              "created_at")


class TrackService(SchoolService):
    """What the track managers share: reading and changing one track of this school."""

    def _track(self, track_id, **extra_fields) -> dict:
        """The stored track without its enrolments (404 for unknown or foreign ids)."""
        track = Track._get_collection().find_one(
            {"school_id": self.school_id, "_id": object_id(track_id, "track")},
            {**dict.fromkeys(TRACK_FIELDS, 1), **extra_fields})
        if track is None:
            raise NotFound(f"No track with id {track_id!r}.")
        return track

    def _change(self, track_id, plan) -> tuple[dict, dict]:
        """One compare-and-set of the track: (before, after), `after is before` when the plan
        had nothing to do."""
        return change(Track._get_collection(), self.school_id,
                      {"_id": object_id(track_id, "track")}, plan, what="track")

    def _counted_loads(self, track_id) -> dict:
        """Enrolled students per instructor, counted by the server: one aggregation."""
        rows = Track._get_collection().aggregate([
            {"$match": {"school_id": self.school_id, "_id": track_id}},
            {"$unwind": "$enrolments"},
            {"$group": {"_id": "$enrolments.instructor_id", "students": {"$sum": 1}}}])
        return {row["_id"]: row["students"] for row in rows}

    def _instructor_views(self, track: dict, loads: dict) -> list[dict]:
        instructors = track.get("instructors") or []
        users = self._users_by_id([i["user_id"] for i in instructors])
        views = [_instructor_view(i, users.get(i["user_id"]), loads.get(i["user_id"], 0))
                 for i in instructors]
        return sorted(views, key=lambda view: (view["name"] or "", str(view["user_id"])))

    def _loads_reply(self, track: dict, loads: dict) -> dict:
        items = [{"instructor_id": view["user_id"], "name": view["name"],
                  "students": view["students"]} for view in self._instructor_views(track, loads)]
        counts = [item["students"] for item in items]
        return {"items": items, "total": len(items), "students": sum(counts),
                **load_stats(counts)}

    def _users_by_id(self, ids: list) -> dict:
        return {user.id: user for user in User.objects.for_school(self.school_id)
                .filter(id__in=list(set(ids))).only("id", "name", "email").batch_size(BIG_BATCH)}


class Tracks(TrackService):
    """Tracks of one school. Admins manage; staff read; students read their own tracks."""

    # -- tracks --

    def create(self, name: str, project_id=None, sub_project_id=None,
               description: str | None = None) -> Track:
        self.require_admin()
        if (project_id is None) == (sub_project_id is None):
            raise ValidationFailed("Give exactly one of project_id and sub_project_id.",
                                   {"project_id": ["Exactly one of project_id, sub_project_id."],
                                    "sub_project_id": ["Exactly one of project_id, "
                                                       "sub_project_id."]})
        track = Track(school_id=self.school_id, name=name, description=description, version=0,
                      instructors=[], enrolments=[])
        if project_id is not None:
            project = self._owner(project_id, "project_id", want_sub=False)
            track.project_id = track.root_project_id = project.id
        else:
            sub = self._owner(sub_project_id, "sub_project_id", want_sub=True)
            track.sub_project_id, track.root_project_id = sub.id, sub.parent_id
        track.save(force_insert=True)
        self.audit("create", "track", track.id, after={
            "name": name, "project_id": track.project_id, "sub_project_id": track.sub_project_id})
        return track

    def _owner(self, owner_id, field_name: str, want_sub: bool) -> Project:
        owner = Project.objects.for_school(self.school_id).filter(
            id=field_object_id(owner_id, field_name)).first()
        if owner is None or (owner.parent_id is not None) != want_sub:
            what = "a sub-project" if want_sub else "a top-level project"
            raise ValidationFailed(f"{field_name} is not {what} of this school.",
                                   {field_name: [f"Not {what} of this school."]})
        return owner

    def list(self, project_id=None, sub_project_id=None, page: int = 1,
             page_size: int = 50) -> Page:
        """`project_id` matches tracks directly under the project and under its sub-projects
        (or, for a sub-project's id, its own tracks). Students see only their tracks."""
        # Named fields: SecantusDB projects a big track slowly when told what to leave out.
        tracks = Track.objects.for_school(self.school_id).only(*OWN_FIELDS)
        if project_id:
            pid = object_id(project_id, "project")
            tracks = tracks.filter(__raw__={"$or": [{"root_project_id": pid},
                                                    {"sub_project_id": pid}]})
        if sub_project_id:
            tracks = tracks.filter(sub_project_id=object_id(sub_project_id, "sub-project"))
        if self.actor.role == "student":
            tracks = tracks.filter(enrolments__student_id=self.actor.user_id)
        return paginate(tracks.order_by("name", "id"), page, page_size)

    def detail(self, track_id) -> dict:
        """The track with instructors (links, names, loads), student count and courses, in a
        constant number of round trips."""
        track, mine = self._readable(track_id)
        instructors = self._instructor_views(track, self._counted_loads(track["_id"]))
        courses = list(TrackCourse.objects.for_school(self.school_id)
                       .filter(track_id=track["_id"]).order_by("position", "id"))
        return {**{name: track.get("_id" if name == "id" else name) for name in OWN_FIELDS},
                "instructors": instructors, "courses": courses,
                "students_count": sum(item["students"] for item in instructors),
                "my_instructor_id": mine}

    def _readable(self, track_id) -> tuple[dict, ObjectId | None]:
        """The track without its enrolments; for a student, also their own instructor (403
        `not_enrolled` when they are not in the track)."""
        if self.actor.role != "student":
            return self._track(track_id), None
        me = self.actor.user_id
        track = self._track(track_id, enrolments={"$elemMatch": {"student_id": me}})
        if not track.get("enrolments"):
            raise Forbidden("You are not enrolled in this track.", code="not_enrolled")
        return track, track["enrolments"][0]["instructor_id"]

    def delete_many(self, track_ids: list) -> dict:
        """Removes tracks with their instructors, enrolments and courses (for deleting a
        project); answers how many of each went. Courses go first: a crash in between leaves
        the tracks, and their project, for the next delete."""
        counted = list(Track._get_collection().aggregate([
            {"$match": {"school_id": self.school_id, "_id": {"$in": track_ids}}},
            {"$group": {"_id": None,
                        "enrolments": {"$sum": {"$size": {"$ifNull": ["$enrolments", []]}}},
                        "instructors": {"$sum": {"$size": {"$ifNull": ["$instructors", []]}}}}}]))
        counts = {"enrolments": counted[0]["enrolments"] if counted else 0,
                  "instructors": counted[0]["instructors"] if counted else 0}
        counts["courses"] = TrackCourse.objects.for_school(self.school_id).filter(
            track_id__in=track_ids).delete()
        counts["tracks"] = Track.objects.for_school(self.school_id).filter(
            id__in=track_ids).delete()
        return counts

    # -- instructors --

    def add_instructor(self, track_id, user_id, zoom_link=None, teams_link=None,
                       slack_links=None) -> dict:
        self.require_admin()
        track = self._track(track_id)
        user = self.member(user_id, "user_id", roles=INSTRUCTOR_ROLES)
        entry = {"user_id": user.id, "zoom_link": zoom_link, "teams_link": teams_link,
                 "slack_links": slack_links or [], "assigned_by": self.actor.user_id,
                 "assigned_at": utcnow()}

        def plan(current: dict) -> dict:
            if instructor_index(current, user.id) is not None:
                raise Conflict(f"{user.name} already teaches this track.",
                               code="already_instructor")
            return {"$push": {"instructors": entry}}

        self._change(track["_id"], plan)
        self.audit("add_instructor", "track", track["_id"], after=_links_summary(entry))
        self.notify(user.id, "track_instructor_added",
                    f"You now teach the track {track['name']}.", {"track_id": str(track["_id"])})
        return _instructor_view(entry, user, 0)

    def update_instructor(self, track_id, user_id, **links) -> dict:
        self.require_admin()
        instructor_id = object_id(user_id, "instructor")

        def plan(current: dict) -> dict | None:
            index = instructor_index(current, instructor_id)
            if index is None:
                raise NotFound(f"No instructor {user_id!r} on this track.")
            return {"$set": {f"instructors.{index}.{name}": value
                             for name, value in links.items()}} if links else None

        before, after = self._change(track_id, plan)
        old = before["instructors"][instructor_index(before, instructor_id)]
        new = after["instructors"][instructor_index(after, instructor_id)]
        self.audit("update_instructor", "track", after["_id"], before=_links_summary(old),
                   after=_links_summary(new))
        user = self._users_by_id([instructor_id]).get(instructor_id)
        return _instructor_view(new, user, loads_of(after)[instructor_id])

    def remove_instructor(self, track_id, user_id) -> None:
        """Their students move to the least-loaded remaining instructors, in the same update.
        The last instructor of a track with students stays (409 `last_instructor`)."""
        self.require_admin()
        leaving = object_id(user_id, "instructor")
        now = utcnow()

        def plan(current: dict) -> dict:
            if instructor_index(current, leaving) is None:
                raise NotFound(f"No instructor {user_id!r} on this track.")
            if len(current["instructors"]) == 1 and current.get("enrolments"):
                raise Conflict("A track with students keeps at least one instructor.",
                               code="last_instructor")
            update = {"$pull": {"instructors": {"user_id": leaving}}}
            moves = moved_update(current, orphan_changes(current, leaving), now,
                                 self.actor.user_id)
            return {**update, "$set": moves} if moves else update

        before, _ = self._change(track_id, plan)
        removed = before["instructors"][instructor_index(before, leaving)]
        self.audit("remove_instructor", "track", before["_id"], before=_links_summary(removed),
                   after={"students_moved": loads_of(before)[leaving]})
        self.notify(leaving, "track_instructor_removed",
                    f"You no longer teach the track {before['name']}.",
                    {"track_id": str(before["_id"])})

    def instructor_loads(self, track_id) -> dict:
        self.require_role(STAFF_ROLES)
        track = self._track(track_id)
        return self._loads_reply(track, self._counted_loads(track["_id"]))

    # -- courses --

    def add_course(self, track_id, title: str, modules: list[dict],
                   description: str | None = None, position: int | None = None) -> TrackCourse:
        self.require_admin()
        track = self._track(track_id)
        if position is None:
            last = TrackCourse.objects.for_school(self.school_id).filter(
                track_id=track["_id"]).order_by("-position").only("position").first()
            position = last.position + 1 if last else 1
        course = TrackCourse(school_id=self.school_id, track_id=track["_id"], title=title,
                             description=description, position=position, modules=modules)
        course.save(force_insert=True)
        self.audit("add_course", "track", track["_id"],
                   after={"course_id": course.id, "title": title, "modules": len(modules)})
        return course

    def list_courses(self, track_id, page: int = 1, page_size: int = 50) -> Page:
        track, _ = self._readable(track_id)
        courses = TrackCourse.objects.for_school(self.school_id).filter(track_id=track["_id"])
        return paginate(courses.order_by("position", "id"), page, page_size)


def _links_summary(instructor: dict) -> dict:
    return {"user_id": instructor["user_id"], "zoom_link": instructor.get("zoom_link"),
            "teams_link": instructor.get("teams_link"),
            "slack_links": list(instructor.get("slack_links") or [])}


def _instructor_view(instructor: dict, user: User | None, students: int) -> dict:
    return {**_links_summary(instructor), "name": user.name if user else None,
            "email": user.email if user else None, "students": students,
            "assigned_at": instructor.get("assigned_at")}


