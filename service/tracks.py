"""Tracks: placement under a project, editing and deleting them, and reads.

A track is one aggregate: its instructors and its enrolments are embedded in the track
document (see `documents.tracks.Track`). Every change of them (enrol, unenrol, reassign,
pin, balance, add, update or remove an instructor, rename) is one compare-and-set of the
track on its `version` (`service.aggregates.change`): the plan is made from the document as
read and applied only if nobody changed it since, else it is made again from the fresh
document. So parallel enrolments each go to the least-loaded instructor, a balance never
overwrites a reassignment that committed first, of two parallel removals of the last two
instructors exactly one succeeds, and loads, counted from the enrolments, never drift. The
plan also refuses a track whose project was archived (`archived` is on the track itself).
Audit events and notifications are written after the change, only for what really changed.

The students' side is `service.tracks_students.TrackStudents`, the instructors'
`service.tracks_instructors.TrackInstructors`, courses `service.tracks_courses.TrackCourses`.
"""

from __future__ import annotations

from bson import ObjectId

from documents.accounts import User
from documents.base import utcnow
from documents.projects import Project
from documents.tracks import Track, TrackCourse
from service import audit, preconditions
from service.aggregates import change
from service.base import SchoolService
from service.context import STAFF_ROLES
from service.errors import Conflict, Forbidden, NotFound, ValidationFailed
from service.ids import field_object_id, object_id
from service.pagination import Page, paginate
from service.tracks_balancing import (
    caps_of,
    load_flag,
    load_stats,
    weighted_targets,
    weights_of,
)

INSTRUCTOR_ROLES = frozenset({"staff", "school_admin"})
# Large reads stay one round trip: the first batch holds them all (up to 16 MB).
BIG_BATCH = 100_000
# What reads of a track fetch: never the enrolments, which may be thousands.
TRACK_FIELDS = ("school_id", "created_at", "name", "description", "project_id",
                "sub_project_id", "root_project_id", "version", "archived", "instructors")
OWN_FIELDS = ("id", "name", "description", "project_id", "sub_project_id", "root_project_id",
              "archived", "created_at", "version")  # version: the ETag (api/etags.py)
INSTRUCTOR_SETTINGS = ("zoom_link", "teams_link", "slack_links", "max_students", "weight")


def project_archived() -> Conflict:
    return Conflict("The project is archived: it and its tracks are read-only.",
                    code="project_archived")


class TrackService(SchoolService):
    """What the track managers share: reading and changing one track of this school."""

    def _track(self, track_id, **extra_fields) -> dict:
        """The stored track without its enrolments (404 for unknown or foreign ids)."""
        track = Track._get_collection().find_one(
            {"_id": object_id(track_id, "track"), "school_id": self.school_id},
            {**dict.fromkeys(TRACK_FIELDS, 1), **extra_fields})
        if track is None:
            raise NotFound(f"No track with id {track_id!r}.")
        return track

    def _change(self, track_id, plan) -> tuple[dict, dict]:
        """One compare-and-set of the track: (before, after), `after is before` when the plan
        had nothing to do. An archived track refuses every change (409 `project_archived`)."""
        def unless_archived(current: dict) -> dict | None:
            if current.get("archived"):
                raise project_archived()
            return plan(current)

        return change(Track._get_collection(), self.school_id,
                      {"_id": object_id(track_id, "track")}, unless_archived, what="track")

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

    def _track_and_loads(self, track_id, readable: bool = False):
        """The track without its enrolments, its enrolled and pinned students per instructor
        and, with `readable` for a student, their own instructor (403 `not_enrolled` when they
        are not in the track): one aggregation (404 for unknown or foreign ids)."""
        me = self.actor.user_id if readable and self.actor.role == "student" else None
        facets = {"track": [{"$project": dict.fromkeys(TRACK_FIELDS, 1)}],
                  "loads": [{"$unwind": "$enrolments"},
                            {"$group": {"_id": "$enrolments.instructor_id",
                                        "students": {"$sum": 1},
                                        "pinned": {"$sum": {"$cond": [
                                            {"$eq": ["$enrolments.pinned", True]}, 1, 0]}}}}]}
        if me is not None:
            facets["mine"] = [{"$unwind": "$enrolments"},
                              {"$match": {"enrolments.student_id": me}},
                              {"$project": {"instructor_id": "$enrolments.instructor_id"}}]
        found = list(Track._get_collection().aggregate([
            {"$match": {"_id": object_id(track_id, "track"), "school_id": self.school_id}},
            {"$facet": facets}]))
        if not found or not found[0]["track"]:
            raise NotFound(f"No track with id {track_id!r}.")
        result = found[0]
        mine = None
        if me is not None:
            if not result["mine"]:
                raise Forbidden("You are not enrolled in this track.", code="not_enrolled")
            mine = result["mine"][0]["instructor_id"]
        rows = result["loads"]
        return (result["track"][0], {row["_id"]: row["students"] for row in rows},
                {row["_id"]: row["pinned"] for row in rows}, mine)

    def _auto_balances(self, track: dict) -> bool:
        """The track's own project or sub-project balances automatically (a project's switch
        is copied to its sub-projects: see `service.projects`)."""
        owner = track.get("sub_project_id") or track.get("project_id")
        return Project.objects.for_school(self.school_id).filter(
            id=owner, auto_balance_students=True).count() > 0

    def _instructor_views(self, track: dict, loads: dict) -> list[dict]:
        instructors = track.get("instructors") or []
        users = self._users_by_id([i["user_id"] for i in instructors])
        views = [instructor_view(i, users.get(i["user_id"]), loads.get(i["user_id"], 0))
                 for i in instructors]
        return sorted(views, key=lambda view: (view["name"] or "", str(view["user_id"])))

    def _loads_reply(self, track: dict, loads: dict, pinned: dict) -> dict:
        """Loads with each instructor's weighted target (what balancing would reach, pinned
        students staying) and a flag past 20% of it."""
        loads = {i["user_id"]: loads.get(i["user_id"], 0) for i in track.get("instructors") or []}
        targets = (weighted_targets(loads, weights_of(track), caps_of(track), pinned)
                   or {i: cap if cap is not None else loads[i]
                       for i, cap in caps_of(track).items()})
        items = [{"instructor_id": view["user_id"], "name": view["name"],
                  "students": view["students"], "pinned": pinned.get(view["user_id"], 0),
                  "weight": view["weight"], "max_students": view["max_students"],
                  "target": targets[view["user_id"]],
                  "flag": load_flag(view["students"], targets[view["user_id"]])}
                 for view in self._instructor_views(track, loads)]
        counts = [item["students"] for item in items]
        return {"items": items, "total": len(items), "students": sum(counts),
                **load_stats(counts)}

    def _users_by_id(self, ids: list) -> dict:
        return {user.id: user for user in User.objects.for_school(self.school_id)
                .filter(id__in=list(set(ids))).only("id", "name", "email", "role")
                .batch_size(BIG_BATCH)}

    def instructor_users(self, entries: list[dict]) -> dict:
        """The active users named by instructor entries, by id: one read."""
        ids = [field_object_id(entry["user_id"], "user_id") for entry in entries]
        return {u.id: u for u in User.objects.for_school(self.school_id).filter(
            id__in=ids, is_active=True).only("id", "role")}

    def instructor_problems(self, entries: list[dict], prefix: str,
                            users: dict | None = None) -> dict:
        """422 details for instructors of a request body that are not staff or school admins
        of this school, or named twice (keys like `instructors.1.user_id`): one read, none
        with `users` read already (`instructor_users`)."""
        ids = [field_object_id(entry["user_id"], f"{prefix}.{n}.user_id")
               for n, entry in enumerate(entries)]
        users = self.instructor_users(entries) if users is None else users
        problems, seen = {}, set()
        for n, user_id in enumerate(ids):
            user = users.get(user_id)
            if user is None or user.role not in INSTRUCTOR_ROLES:
                problems[f"{prefix}.{n}.user_id"] = ["Not a staff member or school admin of "
                                                     "this school."]
            elif user_id in seen:
                problems[f"{prefix}.{n}.user_id"] = ["Named twice."]
            seen.add(user_id)
        return problems

    def _record_moves(self, before: dict, after: dict, action: str) -> int:
        """One audit event per student whose instructor changed between the two versions
        (with the track's version, which orders them among reassignments); answers how many."""
        version = after.get("version", 0)
        moved = [(old["student_id"], old["instructor_id"], new["instructor_id"])
                 for old, new in zip(before.get("enrolments") or [],
                                     after.get("enrolments") or [], strict=True)
                 if old["instructor_id"] != new["instructor_id"]]
        audit.record_many([audit.audit_event(
            self.actor, self.school_id, action, "track_enrolment", student,
            before={"track_id": after["_id"], "instructor_id": source},
            after={"track_id": after["_id"], "instructor_id": target, "track_version": version})
            for student, source, target in moved])
        return len(moved)


class Tracks(TrackService):
    """Tracks of one school. Admins manage; staff read; students read their own tracks."""

    def create(self, name: str, instructors: list[dict], project_id=None, sub_project_id=None,
               description: str | None = None) -> Track:
        """A track starts with at least one instructor. Under an archived project: 409
        `project_archived`, also when the project is archived while the track is written
        (the track is checked again after it is written, and removed)."""
        self.require_admin()
        if (project_id is None) == (sub_project_id is None):
            raise ValidationFailed("Give exactly one of project_id and sub_project_id.",
                                   {"project_id": ["Exactly one of project_id, sub_project_id."],
                                    "sub_project_id": ["Exactly one of project_id, "
                                                       "sub_project_id."]})
        if not instructors:
            raise ValidationFailed("A track starts with at least one instructor.",
                                   {"instructors": ["At least one instructor."]})
        problems = self.instructor_problems(instructors, "instructors")
        if problems:
            raise ValidationFailed("Some instructors cannot teach here.", problems)
        track = self._new_track(name, description, instructors, project_id, sub_project_id)
        self._refuse_if_archived(track)
        track.save(force_insert=True)
        if self._owners_archived(track):
            Track.objects.for_school(self.school_id).filter(id=track.id).delete()
            raise project_archived()
        self._after_create(track)
        return track

    def _new_track(self, name, description, instructors, project_id=None,
                  sub_project_id=None) -> Track:
        """The unsaved track with its instructors (checked by the caller) under its owner."""
        now = utcnow()
        track = Track(school_id=self.school_id, name=name, description=description, version=0,
                      instructors=[instructor_entry(entry, self.actor.user_id, now)
                                   for entry in instructors], enrolments=[])
        if project_id is not None:
            project = self._owner(project_id, "project_id", want_sub=False)
            track.project_id = track.root_project_id = project.id
        else:
            sub = self._owner(sub_project_id, "sub_project_id", want_sub=True)
            track.sub_project_id, track.root_project_id = sub.id, sub.parent_id
        return track

    def _after_create(self, track: Track) -> None:
        self.audit("create", "track", track.id, after={
            "name": track.name, "project_id": track.project_id,
            "sub_project_id": track.sub_project_id,
            "instructors": [i.user_id for i in track.instructors]})
        for instructor in track.instructors:
            self.notify(instructor.user_id, "track_instructor_added",
                        f"You now teach the track {track.name}.", {"track_id": str(track.id)})

    def _owner(self, owner_id, field_name: str, want_sub: bool) -> Project:
        owner = Project.objects.for_school(self.school_id).filter(
            id=field_object_id(owner_id, field_name)).first()
        if owner is None or (owner.parent_id is not None) != want_sub:
            what = "a sub-project" if want_sub else "a top-level project"
            raise ValidationFailed(f"{field_name} is not {what} of this school.",
                                   {field_name: [f"Not {what} of this school."]})
        return owner

    def _owners_archived(self, track: Track) -> bool:
        owners = {track.root_project_id, track.sub_project_id} - {None}
        return Project.objects.for_school(self.school_id).filter(
            id__in=list(owners), status="archived").count() > 0

    def _refuse_if_archived(self, track: Track) -> None:
        if self._owners_archived(track):
            raise project_archived()

    def update(self, track_id, **changes) -> dict:
        """Renames or redescribes the track (admins)."""
        self.require_admin()

        def plan(current: dict) -> dict | None:
            changed = {k: v for k, v in changes.items() if current.get(k) != v}
            return {"$set": changed} if changed else None

        before, after = self._change(track_id, plan)
        if after is not before:
            self.audit("update", "track", after["_id"],
                       before={k: before.get(k) for k in changes},
                       after={k: after.get(k) for k in changes})
        return own_view(after)

    def delete(self, track_id, force: bool = False) -> dict:
        """Removes the track and its courses. A track with students needs `force`: its
        students are unenrolled (each audited as `unenrol`). One conditional delete of the
        track, then its courses: a crash in between leaves only courses nobody can reach."""
        self.require_admin()
        track_oid = object_id(track_id, "track")
        where = {"_id": track_oid, "school_id": self.school_id, "archived": {"$ne": True},
                 **preconditions.guard(track_oid)}  # If-Match
        if not force:
            where["enrolments.0"] = {"$exists": False}
        gone = Track._get_collection().find_one_and_delete(where)
        if gone is None:
            self._explain_refused_delete(track_oid)
        enrolments = gone.get("enrolments") or []
        courses = TrackCourse.objects.for_school(self.school_id).filter(
            track_id=track_oid).delete()
        audit.record_many([*[audit.audit_event(
            self.actor, self.school_id, "unenrol", "track_enrolment", e["student_id"],
            before={"track_id": track_oid, "instructor_id": e["instructor_id"]},
            after={"reason": "track_deleted"}) for e in enrolments],
            audit.audit_event(self.actor, self.school_id, "delete", "track", track_oid,
                              before={"name": gone["name"]},
                              after={"students_unenrolled": len(enrolments),
                                     "courses": courses})])
        return {"students_unenrolled": len(enrolments), "courses": courses}

    def _explain_refused_delete(self, track_oid) -> None:
        track = self._track(track_oid, enrolments={"$slice": 1})
        preconditions.check(track_oid, track.get("version"))  # If-Match: 412
        if track.get("archived"):
            raise project_archived()
        raise Conflict("The track has students; delete with force=true to unenrol them.",
                       code="track_has_students")

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
        track, loads, _, mine = self._track_and_loads(track_id, readable=True)
        instructors = self._instructor_views(track, loads)
        courses = list(TrackCourse.objects.for_school(self.school_id)
                       .filter(track_id=track["_id"]).order_by("position", "id"))
        return {**own_view(track), "instructors": instructors, "courses": courses,
                "students_count": sum(item["students"] for item in instructors),
                "my_instructor_id": mine}

    def instructor_loads(self, track_id) -> dict:
        self.require_role(STAFF_ROLES)
        track, loads, pinned, _ = self._track_and_loads(track_id)
        return self._loads_reply(track, loads, pinned)

    def delete_many(self, track_ids: list) -> dict:
        """Removes tracks with their instructors, enrolments and courses (for deleting a
        project); answers how many of each went. Courses go first: a crash in between leaves
        the tracks, and their project, for the next delete."""
        counted = list(Track._get_collection().aggregate([
            {"$match": {"_id": {"$in": track_ids}, "school_id": self.school_id}},
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


def instructor_entry(body: dict, by, now) -> dict:
    """An instructor as stored, from a request body (weight 1 unless given)."""
    weight = body.get("weight")
    return {"user_id": field_object_id(body["user_id"], "user_id"),
            "zoom_link": body.get("zoom_link"), "teams_link": body.get("teams_link"),
            "slack_links": list(body.get("slack_links") or []),
            "max_students": body.get("max_students"),
            "weight": 1 if weight is None else weight, "assigned_by": by, "assigned_at": now}


def settings_summary(instructor: dict) -> dict:
    return {"user_id": instructor["user_id"],
            **{name: instructor.get(name) for name in INSTRUCTOR_SETTINGS},
            "slack_links": list(instructor.get("slack_links") or []),
            "weight": instructor.get("weight") or 1}


def instructor_view(instructor: dict, user: User | None, students: int) -> dict:
    return {**settings_summary(instructor), "name": user.name if user else None,
            "email": user.email if user else None, "students": students,
            "assigned_by": instructor.get("assigned_by"),
            "assigned_at": instructor.get("assigned_at")}


def own_view(track: dict) -> dict:
    return {name: track.get("_id" if name == "id" else name) for name in OWN_FIELDS}
