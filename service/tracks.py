"""Tracks: instructors with their links, balanced student assignment, reassignment, courses.

How balance survives parallel requests without locks: each track has an assignment ledger
(`TrackLedger`): who teaches it, students per instructor and in total. A change of the ledger
is committed by inserting the next entry (`seq + 1`) under a unique index, so of several
parallel writers exactly one wins and the others plan again from the new state. Plans are
made from the ledger, so parallel single enrolments each go to the least-loaded instructor,
and of two parallel removals of the last two instructors of a track with students exactly one
succeeds. Enrolment documents are written after the commit. Reads count the enrolment
documents themselves; whenever documents and ledger may differ (an instructor left while
students were being enrolled, a balance) the ledger's loads are re-derived from the documents.
"""

from __future__ import annotations

import heapq
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from statistics import mean, pstdev

from bson import ObjectId
from mongoengine.errors import NotUniqueError

from documents.accounts import User
from documents.audit import Notification
from documents.base import utcnow
from documents.connection import insert_unique
from documents.projects import Project
from documents.tracks import (
    Track,
    TrackCourse,
    TrackEnrolment,
    TrackInstructor,
    TrackLedger,
    TrackMove,
)
from service import audit, notifications
from service.base import SchoolService
from service.context import ADMIN_ROLES, STAFF_ROLES
from service.errors import Conflict, Forbidden, NotFound, ValidationFailed
from service.ids import field_object_id, object_id, unique_ids
from service.pagination import Page, paginate

INSTRUCTOR_ROLES = frozenset({"staff", "school_admin"})
IMBALANCE_RATIO = 1.2
COMMIT_ATTEMPTS = 60
# Large reads stay one round trip: the first batch holds them all (up to 16 MB).
BIG_BATCH = 100_000


# ---- the balancing rules, as pure functions (property-tested) -------------------------------

def least_loaded_assignment(loads: dict[str, int], count: int) -> list[str]:
    """The instructor for each of `count` newcomers, in order: always the least loaded at that
    moment, ties broken by the smaller instructor id so the result is deterministic."""
    heap = [(load, instructor) for instructor, load in loads.items()]
    heapq.heapify(heap)
    chosen = []
    for _ in range(count):
        load, instructor = heapq.heappop(heap)
        chosen.append(instructor)
        heapq.heappush(heap, (load + 1, instructor))
    return chosen


def balanced_targets(loads: dict[str, int]) -> dict[str, int]:
    """Final loads with a spread of at most one. The `total % n` instructors that keep one
    extra student are the most loaded ones already, which is what makes the moves minimal."""
    if not loads:
        return {}
    base, extra = divmod(sum(loads.values()), len(loads))
    busiest_first = sorted(loads, key=lambda instructor: (-loads[instructor], instructor))
    return {instructor: base + (1 if rank < extra else 0)
            for rank, instructor in enumerate(busiest_first)}


def balance_moves(loads: dict[str, int]) -> list[tuple[str, str, int]]:
    """`(from, to, how_many)` moves reaching `balanced_targets`: only surplus students move,
    so the number moved is the minimum possible."""
    targets = balanced_targets(loads)
    donors = [[i, loads[i] - targets[i]] for i in sorted(loads) if loads[i] > targets[i]]
    receivers = [[i, targets[i] - loads[i]] for i in sorted(loads) if loads[i] < targets[i]]
    moves = []
    while donors and receivers:
        donor, receiver = donors[0], receivers[0]
        amount = min(donor[1], receiver[1])
        moves.append((donor[0], receiver[0], amount))
        donor[1] -= amount
        receiver[1] -= amount
        if donor[1] == 0:
            donors.pop(0)
        if receiver[1] == 0:
            receivers.pop(0)
    return moves


def load_stats(counts: list[int]) -> dict:
    """Spread (max - min), population standard deviation and mean of instructor loads."""
    if not counts:
        return {"spread": 0, "stddev": 0.0, "mean": 0.0}
    return {"spread": max(counts) - min(counts), "stddev": round(pstdev(counts), 4),
            "mean": round(mean(counts), 4)}


def is_imbalanced(counts: list[int]) -> bool:
    """The busiest instructor has more than 20% above the mean load."""
    return bool(counts) and mean(counts) > 0 and max(counts) > IMBALANCE_RATIO * mean(counts)


# ---- the manager -----------------------------------------------------------------------------

@dataclass
class Enrolled:
    enrolled: list[dict]
    skipped: list[str]
    students_count: int


@dataclass(frozen=True)
class LedgerState:
    """The current assignment ledger of a track (see `TrackLedger`)."""

    seq: int = 0
    loads: dict = field(default_factory=dict)
    instructors_count: int = 0
    students_count: int = 0

    def changed(self, loads: dict | None = None, instructors: int = 0,
                students: int = 0) -> LedgerState:
        return replace(self, loads=dict(self.loads if loads is None else loads),
                       instructors_count=self.instructors_count + instructors,
                       students_count=self.students_count + students)

    def with_added(self, increments: Counter) -> dict:
        loads = dict(self.loads)
        for instructor, amount in increments.items():
            if instructor in loads:
                loads[instructor] = max(0, loads[instructor] + amount)
        return loads


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
        track = Track(school_id=self.school_id, name=name, description=description)
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
        tracks = Track.objects.for_school(self.school_id)
        if project_id:
            pid = object_id(project_id, "project")
            tracks = tracks.filter(__raw__={"$or": [{"root_project_id": pid},
                                                    {"sub_project_id": pid}]})
        if sub_project_id:
            tracks = tracks.filter(sub_project_id=object_id(sub_project_id, "sub-project"))
        if self.actor.role == "student":
            mine = TrackEnrolment.objects.for_school(self.school_id).filter(
                student_id=self.actor.user_id).scalar("track_id")
            tracks = tracks.filter(id__in=list(mine))
        return paginate(tracks.order_by("name", "id"), page, page_size)

    def detail(self, track_id) -> dict:
        """The track with instructors (links, names, loads), student count and courses, in a
        constant number of round trips."""
        track, own = self._readable(track_id)
        instructors = self._instructor_views(track)
        courses = list(TrackCourse.objects.for_school(self.school_id)
                       .filter(track_id=track.id).order_by("position", "id"))
        own_fields = ("id", "name", "description", "project_id", "sub_project_id",
                      "root_project_id", "created_at")
        return {**{name: getattr(track, name) for name in own_fields},
                "instructors": instructors, "courses": courses,
                "students_count": sum(item["students"] for item in instructors),
                "my_instructor_id": own.instructor_id if own else None}

    def _readable(self, track_id) -> tuple[Track, TrackEnrolment | None]:
        track = self._track(track_id)
        if self.actor.role != "student":
            return track, None
        own = TrackEnrolment.objects.for_school(self.school_id).filter(
            track_id=track.id, student_id=self.actor.user_id).first()
        if own is None:
            raise Forbidden("You are not enrolled in this track.", code="not_enrolled")
        return track, own

    def _track(self, track_id) -> Track:
        return self.get(Track, track_id, "track")

    # -- instructors --

    def add_instructor(self, track_id, user_id, zoom_link=None, teams_link=None,
                       slack_links=None) -> dict:
        self.require_admin()
        track = self._track(track_id)
        user = self.member(user_id, "user_id", roles=INSTRUCTOR_ROLES)
        instructor = TrackInstructor(school_id=self.school_id, track_id=track.id, user_id=user.id,
                                     zoom_link=zoom_link, teams_link=teams_link,
                                     slack_links=slack_links or [], assigned_by=self.actor.user_id)
        try:
            instructor.save(force_insert=True)
        except NotUniqueError:
            raise Conflict(f"{user.name} already teaches this track.",
                           code="already_instructor") from None
        # Into the ledger only once the document exists: until then the count stays low,
        # which only makes removals more careful.
        key = str(user.id)
        self._commit(track.id, "add_instructor", lambda state: state.changed(
            loads={**state.loads, key: state.loads.get(key, 0)},
            instructors=0 if key in state.loads else 1))
        self.audit("add_instructor", "track", track.id, after=_links_summary(instructor))
        self.notify(user.id, "track_instructor_added",
                    f"You now teach the track {track.name}.", {"track_id": str(track.id)})
        return _instructor_view(instructor, user, 0)

    def update_instructor(self, track_id, user_id, **links) -> dict:
        self.require_admin()
        track = self._track(track_id)
        instructor = self._instructor(track, user_id)
        before = _links_summary(instructor)
        for name, value in links.items():
            setattr(instructor, name, value)
        instructor.save()
        self.audit("update_instructor", "track", track.id, before=before,
                   after=_links_summary(instructor))
        user = self._users_by_id([instructor.user_id]).get(instructor.user_id)
        students = TrackEnrolment.objects.for_school(self.school_id).filter(
            track_id=track.id, instructor_id=instructor.user_id).count()
        return _instructor_view(instructor, user, students)

    def _instructor(self, track: Track, user_id) -> TrackInstructor:
        instructor = TrackInstructor.objects.for_school(self.school_id).filter(
            track_id=track.id, user_id=object_id(user_id, "instructor")).first()
        if instructor is None:
            raise NotFound(f"No instructor {user_id!r} on this track.")
        return instructor

    def remove_instructor(self, track_id, user_id) -> None:
        """Their students move to the least-loaded remaining instructors. The last instructor
        of a track with students stays (409 `last_instructor`), even under parallel removals:
        the removal is a ledger commit, decided on the state it replaces."""
        self.require_admin()
        track = self._track(track_id)
        instructor = self._instructor(track, user_id)
        key = str(instructor.user_id)

        def without_instructor(state: LedgerState) -> LedgerState:
            if key not in state.loads:
                return state.changed()
            if state.instructors_count <= 1 and state.students_count > 0:
                raise Conflict("A track with students keeps at least one instructor.",
                               code="last_instructor")
            loads = {k: v for k, v in state.loads.items() if k != key}
            return state.changed(loads=loads, instructors=-1)

        self._commit(track.id, "remove_instructor", without_instructor)
        TrackInstructor.objects.for_school(self.school_id).filter(id=instructor.id).delete()
        moved = self._rehome_orphans(track.id)
        self.audit("remove_instructor", "track", track.id,
                   before=_links_summary(instructor), after={"students_moved": moved})
        self.notify(instructor.user_id, "track_instructor_removed",
                    f"You no longer teach the track {track.name}.", {"track_id": str(track.id)})

    def _instructor_views(self, track: Track) -> list[dict]:
        instructors = list(TrackInstructor.objects.for_school(self.school_id)
                           .filter(track_id=track.id))
        users = self._users_by_id([i.user_id for i in instructors])
        counts = self._doc_loads(track.id)
        views = [_instructor_view(i, users.get(i.user_id), counts.get(i.user_id, 0))
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
        already = set(TrackEnrolment.objects.for_school(self.school_id).filter(
            track_id=track.id, student_id__in=wanted).batch_size(BIG_BATCH).scalar("student_id"))
        newcomers = [s for s in wanted if s not in already]
        explicit = None
        if instructor_id is not None:
            explicit = str(field_object_id(instructor_id, "instructor_id"))
            if self._auto_balances(track):
                explicit = None
        skipped = [str(s) for s in wanted if s in already]
        if not newcomers:
            state = self._explicit_allowed(self._ledger(track.id), explicit)
            return Enrolled(enrolled=[], skipped=skipped, students_count=state.students_count)
        state, plan = self._commit_enrolment(track, newcomers, explicit)
        enrolled = self._insert_enrolments(track, plan)
        self._after_enrolment(track, enrolled)
        return Enrolled(enrolled=enrolled, skipped=skipped,
                        students_count=state.students_count - (len(plan) - len(enrolled)))

    def _require_students(self, wanted: list[ObjectId]) -> None:
        found = set(User.objects.for_school(self.school_id).filter(
            id__in=wanted, role="student", is_active=True).batch_size(BIG_BATCH).scalar("id"))
        missing = [str(s) for s in wanted if s not in found]
        if missing:
            raise ValidationFailed("Some ids are not students of this school.",
                                   {"student_ids": [f"Not a student of this school: {sid}"
                                                    for sid in missing[:50]]})

    def _auto_balances(self, track: Track) -> bool:
        owner = Project.objects.for_school(self.school_id).filter(
            id=track.sub_project_id or track.project_id).only("auto_balance_students").first()
        return bool(owner and owner.auto_balance_students)

    @staticmethod
    def _explicit_allowed(state: LedgerState, explicit: str | None) -> LedgerState:
        if explicit is not None and explicit not in state.loads:
            raise ValidationFailed("instructor_id does not teach this track.",
                                   {"instructor_id": ["Not an instructor of this track."]})
        return state

    def _commit_enrolment(self, track: Track, newcomers: list, explicit: str | None):
        plan = []

        def with_newcomers(state: LedgerState) -> LedgerState:
            self._explicit_allowed(state, explicit)
            if state.instructors_count < 1 or not state.loads:
                raise Conflict("This track has no instructor yet; add one first.",
                               code="no_instructors")
            chosen = ([explicit] * len(newcomers) if explicit
                      else least_loaded_assignment(state.loads, len(newcomers)))
            plan[:] = zip(newcomers, chosen, strict=True)
            return state.changed(loads=state.with_added(Counter(chosen)),
                                 students=len(newcomers))

        state = self._commit(track.id, "enrol", with_newcomers)
        return state, plan

    def _insert_enrolments(self, track: Track, plan: list) -> list[dict]:
        now = utcnow()
        rows = [{"school_id": self.school_id, "created_at": now, "track_id": track.id,
                 "student_id": student, "instructor_id": ObjectId(instructor),
                 "assigned_by": self.actor.user_id} for student, instructor in plan]
        failed = insert_unique(TrackEnrolment._get_collection(), rows)
        if not failed:
            return rows
        # A parallel request enrolled some of them first: give their places back.
        lost = Counter(str(rows[i]["instructor_id"]) for i in failed)
        self._commit(track.id, "enrol_lost_race", lambda state: state.changed(
            loads=state.with_added(Counter({k: -n for k, n in lost.items()})),
            students=-len(failed)))
        return [row for index, row in enumerate(rows) if index not in failed]

    def _after_enrolment(self, track: Track, enrolled: list[dict]) -> None:
        chosen = {str(row["instructor_id"]) for row in enrolled}
        if not chosen <= set(self._ledger(track.id).loads):
            self._rehome_orphans(track.id)  # an instructor left while we were enrolling
        audit.record_many([audit.audit_event(
            self.actor, self.school_id, "enrol", "track_enrolment", row["student_id"],
            after={"track_id": track.id, "instructor_id": row["instructor_id"]})
            for row in enrolled])
        per_instructor = Counter(row["instructor_id"] for row in enrolled)
        notifications.notify_many([Notification(
            user_id=instructor, school_id=self.school_id, kind="track_students_added",
            message=f"{n} new student(s) in the track {track.name}.",
            data={"track_id": str(track.id), "students": n})
            for instructor, n in per_instructor.items()])

    def unenrol(self, track_id, student_id) -> None:
        self.require_admin()
        track = self._track(track_id)
        enrolment = TrackEnrolment.objects.for_school(self.school_id).filter(
            track_id=track.id, student_id=object_id(student_id, "student")).first()
        if enrolment is None:
            raise NotFound(f"Student {student_id!r} is not enrolled in this track.")
        if not TrackEnrolment.objects.for_school(self.school_id).filter(
                id=enrolment.id).delete():
            raise NotFound(f"Student {student_id!r} is not enrolled in this track.")
        key = str(enrolment.instructor_id)
        self._commit(track.id, "unenrol", lambda state: state.changed(
            loads=state.with_added(Counter({key: -1})), students=-1))
        self.audit("unenrol", "track_enrolment", enrolment.student_id,
                   before={"track_id": track.id, "instructor_id": enrolment.instructor_id})

    def list_students(self, track_id, instructor_id=None, page: int = 1,
                      page_size: int = 50) -> Page:
        self.require_role(STAFF_ROLES)
        track = self._track(track_id)
        enrolments = TrackEnrolment.objects.for_school(self.school_id).filter(track_id=track.id)
        if instructor_id:
            enrolments = enrolments.filter(instructor_id=object_id(instructor_id, "instructor"))
        result = paginate(enrolments.order_by("created_at", "id"), page, page_size)
        users = self._users_by_id([e.student_id for e in result.items] +
                                  [e.instructor_id for e in result.items])
        result.items = [_enrolment_view(e, users) for e in result.items]
        return result

    # -- reassign and balance --

    def reassign(self, track_id, student_id, instructor_id) -> dict:
        """School admins only. Audited with from/to; both instructors notified; `warning` is
        "imbalance" when the busiest instructor carries more than 20% above the mean."""
        if self.actor.role not in ADMIN_ROLES and self.actor.role != "system":
            raise Forbidden("Only school admins reassign students.")
        track = self._track(track_id)
        target = field_object_id(instructor_id, "instructor_id")
        self._explicit_allowed(self._ledger(track.id), str(target))
        before = TrackEnrolment.objects.for_school(self.school_id).filter(
            track_id=track.id, student_id=object_id(student_id, "student")).modify(
            set__instructor_id=target, set__last_reassigned_at=utcnow())
        if before is None:
            raise NotFound(f"Student {student_id!r} is not enrolled in this track.")
        source = before.instructor_id
        state = self._ledger(track.id)
        if source != target:
            state = self._commit(track.id, "reassign", lambda current: current.changed(
                loads=current.with_added(Counter({str(source): -1, str(target): 1}))))
            self._record_reassignment(track, before.student_id, source, target)
        counts = self._doc_loads(track.id)
        loads = [counts.get(ObjectId(key), 0) for key in state.loads]
        return {"track_id": track.id, "student_id": before.student_id, "instructor_id": target,
                "previous_instructor_id": source,
                "warning": "imbalance" if is_imbalanced(loads) else None, **load_stats(loads)}

    def _record_reassignment(self, track, student, source, target) -> None:
        self.audit("reassign", "track_enrolment", student,
                   before={"track_id": track.id, "instructor_id": source},
                   after={"track_id": track.id, "instructor_id": target})
        names = self._users_by_id([student])
        who = names[student].name if student in names else str(student)
        notifications.notify_many([
            Notification(user_id=source, school_id=self.school_id, kind="track_student_moved_out",
                         message=f"{who} moved to another instructor in {track.name}.",
                         data={"track_id": str(track.id), "student_id": str(student)}),
            Notification(user_id=target, school_id=self.school_id, kind="track_student_moved_in",
                         message=f"{who} is now your student in {track.name}.",
                         data={"track_id": str(track.id), "student_id": str(student)})])

    def balance(self, track_id) -> dict:
        """Moves the fewest students so that the spread between the most and the least loaded
        instructor is at most one; the newest enrolments of the busiest instructors move."""
        self.require_admin()
        track = self._track(track_id)
        self._finish_interrupted_moves(track.id)
        self._rehome_orphans(track.id)
        state = self._ledger(track.id)
        if not state.loads:
            raise Conflict("This track has no instructor yet; add one first.",
                           code="no_instructors")
        counts = self._doc_loads(track.id)
        loads = {key: counts.get(ObjectId(key), 0) for key in state.loads}
        moves = balance_moves(loads)
        moved = self._apply_moves(track.id, moves)
        self._rederive_ledger(track.id, "balance")
        self.audit("balance", "track", track.id, before={"loads": loads},
                   after={"students_moved": moved,
                          "moves": [{"from": source, "to": target, "students": amount}
                                    for source, target, amount in moves]})
        return {"students_moved": moved, **self.instructor_loads(track.id)}

    def _apply_moves(self, track_id, moves: list) -> int:
        if not moves:
            return 0
        donors = {ObjectId(source) for source, _, _ in moves}
        candidates = defaultdict(list)
        for row in (TrackEnrolment.objects.for_school(self.school_id)
                    .filter(track_id=track_id, instructor_id__in=list(donors))
                    .order_by("-created_at", "-id").batch_size(BIG_BATCH).as_pymongo()):
            candidates[str(row["instructor_id"])].append(row)
        new_instructor = {}
        for source, target, amount in moves:
            chosen, candidates[source] = candidates[source][:amount], candidates[source][amount:]
            new_instructor.update({row["_id"]: (row, ObjectId(target)) for row in chosen})
        return self._move_enrolments(track_id, list(new_instructor.values()))

    def _move_enrolments(self, track_id, changes: list) -> int:
        """`changes`: (enrolment row, new instructor id). Four round trips for any number:
        journal, delete, insert, journal done (see `TrackMove`)."""
        now = utcnow()
        rows = [{**row, "instructor_id": target, "last_reassigned_at": now}
                for row, target in changes]
        journal = TrackMove(school_id=self.school_id, track_id=track_id, rows=rows)
        journal.save(force_insert=True)
        collection = TrackEnrolment._get_collection()
        collection.delete_many({"school_id": self.school_id,
                                "_id": {"$in": [row["_id"] for row in rows]}})
        moved = len(rows) - len(insert_unique(collection, rows))
        journal.delete()
        return moved

    def _finish_interrupted_moves(self, track_id) -> None:
        for journal in TrackMove.objects.for_school(self.school_id).filter(track_id=track_id):
            insert_unique(TrackEnrolment._get_collection(), journal.rows)
            journal.delete()

    def instructor_loads(self, track_id) -> dict:
        self.require_role(STAFF_ROLES)
        track = self._track(track_id)
        items = [{"instructor_id": view["user_id"], "name": view["name"],
                  "students": view["students"]} for view in self._instructor_views(track)]
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
                track_id=track.id).order_by("-position").only("position").first()
            position = last.position + 1 if last else 1
        course = TrackCourse(school_id=self.school_id, track_id=track.id, title=title,
                             description=description, position=position, modules=modules)
        course.save(force_insert=True)
        self.audit("add_course", "track", track.id,
                   after={"course_id": course.id, "title": title, "modules": len(modules)})
        return course

    def list_courses(self, track_id, page: int = 1, page_size: int = 50) -> Page:
        track, _ = self._readable(track_id)
        courses = TrackCourse.objects.for_school(self.school_id).filter(track_id=track.id)
        return paginate(courses.order_by("position", "id"), page, page_size)

    # -- the ledger --

    def _users_by_id(self, ids: list) -> dict:
        return {user.id: user for user in User.objects.for_school(self.school_id)
                .filter(id__in=list(set(ids))).only("id", "name", "email").batch_size(BIG_BATCH)}

    def _ledger(self, track_id) -> LedgerState:
        entry = TrackLedger.objects.for_school(self.school_id).filter(
            track_id=track_id).order_by("-seq").first()
        if entry is None:
            return LedgerState()
        return LedgerState(entry.seq, dict(entry.loads), entry.instructors_count,
                           entry.students_count)

    def _commit(self, track_id, action: str, change) -> LedgerState:
        """Insert the next ledger entry, `change(current)`; when a parallel request committed
        that entry first, read again and retry. `change` may raise to refuse."""
        for attempt in range(COMMIT_ATTEMPTS):
            current = self._ledger(track_id)
            new = change(current)
            entry = TrackLedger(school_id=self.school_id, track_id=track_id, seq=current.seq + 1,
                                loads=new.loads, instructors_count=new.instructors_count,
                                students_count=new.students_count, action=action,
                                actor_id=self.actor.user_id)
            try:
                entry.save(force_insert=True)
                return replace(new, seq=entry.seq)
            except NotUniqueError:
                _back_off(attempt)
        raise Conflict("The track is changing under many parallel requests; try again.",
                       code="track_busy")

    def _doc_loads(self, track_id) -> dict:
        """Enrolled students per instructor, counted from the enrolments: one aggregation."""
        rows = TrackEnrolment.objects.for_school(self.school_id).filter(
            track_id=track_id).aggregate([
                {"$group": {"_id": "$instructor_id", "students": {"$sum": 1}}}])
        return {row["_id"]: row["students"] for row in rows}

    def _rehome_orphans(self, track_id) -> int:
        """Students whose instructor left the track go to the least-loaded instructors, and the
        ledger's loads are re-derived from the enrolments. Returns how many moved."""
        teaching = [ObjectId(key) for key in self._ledger(track_id).loads]
        orphans = list(TrackEnrolment.objects.for_school(self.school_id).filter(
            track_id=track_id, instructor_id__nin=teaching).order_by("created_at", "id")
            .batch_size(BIG_BATCH).as_pymongo())
        if not orphans or not teaching:
            return 0
        counts = self._doc_loads(track_id)
        loads = {str(i): counts.get(i, 0) for i in teaching}
        targets = least_loaded_assignment(loads, len(orphans))
        self._move_enrolments(track_id, [(row, ObjectId(target))
                                         for row, target in zip(orphans, targets, strict=True)])
        self._rederive_ledger(track_id, "rehome")
        return len(orphans)

    def _rederive_ledger(self, track_id, action: str) -> None:
        counts = self._doc_loads(track_id)
        self._commit(track_id, action, lambda state: state.changed(
            loads={key: counts.get(ObjectId(key), 0) for key in state.loads}))


def _back_off(attempt: int) -> None:
    time.sleep(random.uniform(0, 0.002 * (attempt + 1)))


def _links_summary(instructor: TrackInstructor) -> dict:
    return {"user_id": instructor.user_id, "zoom_link": instructor.zoom_link,
            "teams_link": instructor.teams_link, "slack_links": list(instructor.slack_links)}


def _instructor_view(instructor: TrackInstructor, user: User | None, students: int) -> dict:
    return {**_links_summary(instructor), "name": user.name if user else None,
            "email": user.email if user else None, "students": students,
            "assigned_at": instructor.created_at}


def _enrolment_view(enrolment: TrackEnrolment, users: dict) -> dict:
    student, instructor = users.get(enrolment.student_id), users.get(enrolment.instructor_id)
    return {"student_id": enrolment.student_id, "name": student.name if student else None,
            "email": student.email if student else None,
            "instructor_id": enrolment.instructor_id,
            "instructor_name": instructor.name if instructor else None,
            "enrolled_at": enrolment.created_at,
            "last_reassigned_at": enrolment.last_reassigned_at}
