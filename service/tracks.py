"""Tracks: instructors with their links, balanced student assignment, reassignment, courses.

A track is one aggregate: its instructors and its enrolments are embedded in the track
document (see `documents.tracks.Track`). Every change of them (enrol, unenrol, reassign,
balance, add, update or remove an instructor) is one compare-and-set of the track on its
`version` (`service.aggregates.change`): the plan is made from the document as read and
applied only if nobody changed it since, else it is made again from the fresh document. So
parallel enrolments each go to the least-loaded instructor, a balance never overwrites a
reassignment that committed first, of two parallel removals of the last two instructors of a
track with students exactly one succeeds, and loads, counted from the enrolments, never drift.
Audit events and notifications are written after the change, only for what really changed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from bson import ObjectId

from documents.accounts import User
from documents.audit import Notification
from documents.base import utcnow
from documents.projects import Project
from documents.tracks import Track, TrackCourse
from service import audit, notifications
from service.aggregates import change
from service.base import SchoolService
from service.context import ADMIN_ROLES, STAFF_ROLES
from service.errors import Conflict, Forbidden, NotFound, ValidationFailed
from service.ids import field_object_id, object_id, unique_ids
from service.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page, paginate
from service.tracks_balancing import (
    balance_moves,
    balancing_changes,
    enrolment_index,
    instructor_index,
    is_imbalanced,
    least_loaded_assignment,
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


@dataclass
class Enrolled:
    enrolled: list[dict]
    skipped: list[str]
    students_count: int


def not_teaching() -> ValidationFailed:
    return ValidationFailed("instructor_id does not teach this track.",
                            {"instructor_id": ["Not an instructor of this track."]})


def no_instructors() -> Conflict:
    return Conflict("This track has no instructor yet; add one first.", code="no_instructors")


class Tracks(SchoolService):
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
        tracks = Track.objects.for_school(self.school_id).exclude("enrolments", "instructors")
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
            moves = moved_update(current, orphan_changes(current, leaving), now)
            return {**update, "$set": moves} if moves else update

        before, _ = self._change(track_id, plan)
        removed = before["instructors"][instructor_index(before, leaving)]
        self.audit("remove_instructor", "track", before["_id"], before=_links_summary(removed),
                   after={"students_moved": loads_of(before)[leaving]})
        self.notify(leaving, "track_instructor_removed",
                    f"You no longer teach the track {before['name']}.",
                    {"track_id": str(before["_id"])})

    def _instructor_views(self, track: dict, loads: dict) -> list[dict]:
        instructors = track.get("instructors") or []
        users = self._users_by_id([i["user_id"] for i in instructors])
        views = [_instructor_view(i, users.get(i["user_id"]), loads.get(i["user_id"], 0))
                 for i in instructors]
        return sorted(views, key=lambda view: (view["name"] or "", str(view["user_id"])))

    # -- students --

    def enrol(self, track_id, student_ids: list, instructor_id=None) -> Enrolled:
        """Students already enrolled are skipped (listed in `skipped`), not an error. With the
        project's auto-balance on, or no instructor given, each newcomer goes to the
        least-loaded instructor. Bulk: a constant number of round trips for any count."""
        self.require_admin()
        track = self._track(track_id)
        wanted = unique_ids(student_ids, "student_ids")
        self._require_students(wanted)
        explicit = None
        if instructor_id is not None:
            explicit = field_object_id(instructor_id, "instructor_id")
            if self._auto_balances(track):
                explicit = None
        now = utcnow()

        def plan(current: dict) -> dict | None:
            loads = loads_of(current)
            if explicit is not None and explicit not in loads:
                raise not_teaching()
            already = {e["student_id"] for e in current.get("enrolments") or []}
            newcomers = [student for student in wanted if student not in already]
            if not newcomers:
                return None
            if not loads:
                raise no_instructors()
            chosen = ([explicit] * len(newcomers) if explicit
                      else least_loaded_assignment(loads, len(newcomers)))
            return {"$push": {"enrolments": {"$each": [
                {"student_id": student, "instructor_id": instructor, "enrolled_at": now,
                 "assigned_by": self.actor.user_id, "pinned": False}
                for student, instructor in zip(newcomers, chosen, strict=True)]}}}

        before, after = self._change(track["_id"], plan)
        enrolled = [{"student_id": e["student_id"], "instructor_id": e["instructor_id"]}
                    for e in after["enrolments"][len(before.get("enrolments") or []):]]
        self._after_enrolment(track, enrolled)
        new = {e["student_id"] for e in enrolled}
        return Enrolled(enrolled=enrolled, skipped=[str(s) for s in wanted if s not in new],
                        students_count=len(after.get("enrolments") or []))

    def _require_students(self, wanted: list[ObjectId]) -> None:
        found = set(User.objects.for_school(self.school_id).filter(
            id__in=wanted, role="student", is_active=True).batch_size(BIG_BATCH).scalar("id"))
        missing = [str(s) for s in wanted if s not in found]
        if missing:
            raise ValidationFailed("Some ids are not students of this school.",
                                   {"student_ids": [f"Not a student of this school: {sid}"
                                                    for sid in missing[:50]]})

    def _auto_balances(self, track: dict) -> bool:
        owner = Project.objects.for_school(self.school_id).filter(
            id=track.get("sub_project_id") or track.get("project_id")).only(
            "auto_balance_students").first()
        return bool(owner and owner.auto_balance_students)

    def _after_enrolment(self, track: dict, enrolled: list[dict]) -> None:
        audit.record_many([audit.audit_event(
            self.actor, self.school_id, "enrol", "track_enrolment", row["student_id"],
            after={"track_id": track["_id"], "instructor_id": row["instructor_id"]})
            for row in enrolled])
        per_instructor = Counter(row["instructor_id"] for row in enrolled)
        notifications.notify_many([Notification(
            user_id=instructor, school_id=self.school_id, kind="track_students_added",
            message=f"{n} new student(s) in the track {track['name']}.",
            data={"track_id": str(track["_id"]), "students": n})
            for instructor, n in per_instructor.items()])

    def unenrol(self, track_id, student_id) -> None:
        self.require_admin()
        student = object_id(student_id, "student")

        def plan(current: dict) -> dict:
            if enrolment_index(current, student) is None:
                raise NotFound(f"Student {student_id!r} is not enrolled in this track.")
            return {"$pull": {"enrolments": {"student_id": student}}}

        before, _ = self._change(track_id, plan)
        enrolment = before["enrolments"][enrolment_index(before, student)]
        self.audit("unenrol", "track_enrolment", student,
                   before={"track_id": before["_id"], "instructor_id": enrolment["instructor_id"]})

    def list_students(self, track_id, instructor_id=None, page: int = 1,
                      page_size: int = DEFAULT_PAGE_SIZE) -> Page:
        """One page of the enrolments, in enrolment order, cut by the server: one aggregation
        and one read of the names, whatever the size of the track."""
        self.require_role(STAFF_ROLES)
        page_size, page = max(1, min(page_size, MAX_PAGE_SIZE)), max(1, page)
        chosen = {"$ifNull": ["$enrolments", []]}
        if instructor_id:
            chosen = {"$filter": {"input": chosen, "as": "e", "cond": {
                "$eq": ["$$e.instructor_id", object_id(instructor_id, "instructor")]}}}
        found = list(Track._get_collection().aggregate([
            {"$match": {"school_id": self.school_id, "_id": object_id(track_id, "track")}},
            {"$project": {"_id": 0, "chosen": chosen}},
            {"$project": {"total": {"$size": "$chosen"},
                          "items": {"$slice": ["$chosen", (page - 1) * page_size, page_size]}}}]))
        if not found:
            raise NotFound(f"No track with id {track_id!r}.")
        items = found[0]["items"]
        users = self._users_by_id([e["student_id"] for e in items] +
                                  [e["instructor_id"] for e in items])
        return Page([_enrolment_view(e, users) for e in items], found[0]["total"], page,
                    page_size)

    # -- reassign and balance --

    def reassign(self, track_id, student_id, instructor_id) -> dict:
        """School admins only. Audited with from/to; both instructors notified; `warning` is
        "imbalance" when the busiest instructor carries more than 20% above the mean.

        A student already with that instructor (also when a parallel identical request moved
        them first) answers 200 with `previous_instructor_id` equal to `instructor_id`, and
        writes, audits and notifies nothing."""
        if self.actor.role not in ADMIN_ROLES and self.actor.role != "system":
            raise Forbidden("Only school admins reassign students.")
        student = object_id(student_id, "student")
        now = utcnow()

        def plan(current: dict) -> dict | None:
            target = field_object_id(instructor_id, "instructor_id")
            if instructor_index(current, target) is None:
                raise not_teaching()
            index = enrolment_index(current, student)
            if index is None:
                raise NotFound(f"Student {student_id!r} is not enrolled in this track.")
            if current["enrolments"][index]["instructor_id"] == target:
                return None
            return {"$set": moved_update(current, [(index, target)], now)}

        before, after = self._change(track_id, plan)
        target = field_object_id(instructor_id, "instructor_id")
        source = before["enrolments"][enrolment_index(before, student)]["instructor_id"]
        if after is not before:
            self._record_reassignment(after, student, source, target)
        loads = list(loads_of(after).values())
        return {"track_id": after["_id"], "student_id": student, "instructor_id": target,
                "previous_instructor_id": source,
                "warning": "imbalance" if is_imbalanced(loads) else None, **load_stats(loads)}

    def _record_reassignment(self, track: dict, student, source, target) -> None:
        self.audit("reassign", "track_enrolment", student,
                   before={"track_id": track["_id"], "instructor_id": source},
                   after={"track_id": track["_id"], "instructor_id": target,
                          "track_version": track["version"]})
        names = self._users_by_id([student])
        who = names[student].name if student in names else str(student)
        data = {"track_id": str(track["_id"]), "student_id": str(student)}
        notifications.notify_many([
            Notification(user_id=source, school_id=self.school_id, kind="track_student_moved_out",
                         message=f"{who} moved to another instructor in {track['name']}.",
                         data=data),
            Notification(user_id=target, school_id=self.school_id, kind="track_student_moved_in",
                         message=f"{who} is now your student in {track['name']}.", data=data)])

    def balance(self, track_id) -> dict:
        """Moves the fewest students so that the spread between the most and the least loaded
        instructor is at most one; the newest enrolments of the busiest instructors move. One
        compare-and-set of the whole track: a reassignment that commits first is seen by the
        next plan, never overwritten. Audited once for the track and once per moved student
        (with the track's version, which orders it among the reassignments)."""
        self.require_admin()
        now = utcnow()

        def plan(current: dict) -> dict | None:
            if not current.get("instructors"):
                raise no_instructors()
            moves = moved_update(current, balancing_changes(current), now)
            return {"$set": moves} if moves else None

        before, after = self._change(track_id, plan)
        moved = [(old["student_id"], old["instructor_id"], new["instructor_id"])
                 for old, new in zip(before.get("enrolments") or [],
                                     after.get("enrolments") or [], strict=True)
                 if old["instructor_id"] != new["instructor_id"]]
        self._record_balance(before, after, moved)
        return {"students_moved": len(moved), **self._loads_reply(after, loads_of(after))}

    def _record_balance(self, before: dict, after: dict, moved: list) -> None:
        loads = loads_of(before)
        track_id, version = after["_id"], after.get("version", 0)
        summary = audit.audit_event(
            self.actor, self.school_id, "balance", "track", track_id,
            before={"loads": {str(k): n for k, n in loads.items()}},
            after={"students_moved": len(moved), "track_version": version,
                   "moves": [{"from": source, "to": target, "students": amount}
                             for source, target, amount in balance_moves(loads)]})
        audit.record_many([summary, *[audit.audit_event(
            self.actor, self.school_id, "balance", "track_enrolment", student,
            before={"track_id": track_id, "instructor_id": source},
            after={"track_id": track_id, "instructor_id": target, "track_version": version})
            for student, source, target in moved]])

    def instructor_loads(self, track_id) -> dict:
        self.require_role(STAFF_ROLES)
        track = self._track(track_id)
        return self._loads_reply(track, self._counted_loads(track["_id"]))

    def _loads_reply(self, track: dict, loads: dict) -> dict:
        items = [{"instructor_id": view["user_id"], "name": view["name"],
                  "students": view["students"]} for view in self._instructor_views(track, loads)]
        counts = [item["students"] for item in items]
        return {"items": items, "total": len(items), "students": sum(counts),
                **load_stats(counts)}

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

    def _users_by_id(self, ids: list) -> dict:
        return {user.id: user for user in User.objects.for_school(self.school_id)
                .filter(id__in=list(set(ids))).only("id", "name", "email").batch_size(BIG_BATCH)}


def _links_summary(instructor: dict) -> dict:
    return {"user_id": instructor["user_id"], "zoom_link": instructor.get("zoom_link"),
            "teams_link": instructor.get("teams_link"),
            "slack_links": list(instructor.get("slack_links") or [])}


def _instructor_view(instructor: dict, user: User | None, students: int) -> dict:
    return {**_links_summary(instructor), "name": user.name if user else None,
            "email": user.email if user else None, "students": students,
            "assigned_at": instructor.get("assigned_at")}


def _enrolment_view(enrolment: dict, users: dict) -> dict:
    student, instructor = users.get(enrolment["student_id"]), users.get(enrolment["instructor_id"])
    return {"student_id": enrolment["student_id"], "name": student.name if student else None,
            "email": student.email if student else None,
            "instructor_id": enrolment["instructor_id"],
            "instructor_name": instructor.name if instructor else None,
            "enrolled_at": enrolment.get("enrolled_at"),
            "last_reassigned_at": enrolment.get("last_reassigned_at")}
