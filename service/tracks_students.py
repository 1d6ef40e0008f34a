"""The students of a track: enrolment to the least loaded instructor by weight (or an
explicit one), pinning, reassignment, balance.

Each is one compare-and-set of the track (see `service.tracks`), so a reassignment that
loses the race to another change plans again from the fresh track: of parallel identical
reassignments exactly one moves the student (and is audited and notified), and a balance
never undoes a reassignment that committed first. An explicit choice of an admin (an
enrolment with `instructor_id`, a reassignment) pins the student by default, and balancing
never moves a pinned student.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from bson import ObjectId

from documents.accounts import User
from documents.audit import Notification
from documents.base import utcnow
from documents.tracks import Track
from service import audit, notifications, webhooks
from service.context import ADMIN_ROLES, STAFF_ROLES
from service.errors import Conflict, Forbidden, NotFound, ValidationFailed
from service.ids import field_object_id, object_id, unique_ids
from service.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page
from service.tracks import BIG_BATCH, TrackService
from service.tracks_balancing import (
    balance_moves,
    balancing_changes,
    caps_of,
    enrolment_index,
    instructor_index,
    is_imbalanced,
    load_stats,
    loads_of,
    moved_update,
    newcomer_instructors,
    pinned_of,
    weights_of,
    with_changes,
)

# SecantusDB matches an `$in` of thousands of ids in seconds (about 12 s for 4,000): past
# this many, reading the ids of all the school's active students is much faster.
IN_LIMIT = 500


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


def instructor_full(track: dict, instructor, requested: int) -> Conflict | None:
    """409 `instructor_full` when `requested` more students would put the instructor above
    their `max_students`; None when they fit."""
    cap = track["instructors"][instructor_index(track, instructor)].get("max_students")
    load = loads_of(track)[instructor]
    if cap is None or load + requested <= cap:
        return None
    return Conflict(f"That instructor takes at most {cap} students.", code="instructor_full",
                    details={"instructor_id": str(instructor), "max_students": cap,
                             "students": load, "requested": requested})


class TrackStudents(TrackService):
    """Enrolments of one school's tracks: admins change them, staff read them."""

    def enrol(self, track_id, student_ids: list, instructor_id=None,
              pinned: bool | None = None) -> Enrolled:
        """Students already enrolled are skipped (listed in `skipped`), not an error. With an
        instructor given, the newcomers go there (also on an auto-balancing project: an
        explicit choice wins) and are pinned unless `pinned` is false; without one, each goes
        to the least loaded by weight, unpinned unless `pinned`. Never above a cap: 409
        `instructor_full` or `track_full` with the numbers. Bulk: a constant number of round
        trips for any count."""
        self.require_admin()
        track = self._track(track_id)
        wanted = unique_ids(student_ids, "student_ids")
        self._require_students(wanted)
        explicit = (field_object_id(instructor_id, "instructor_id")
                    if instructor_id is not None else None)
        pin = explicit is not None if pinned is None else pinned
        now = utcnow()

        def plan(current: dict) -> dict | None:
            if explicit is not None and instructor_index(current, explicit) is None:
                raise not_teaching()
            already = {e["student_id"] for e in current.get("enrolments") or []}
            newcomers = [student for student in wanted if student not in already]
            if not newcomers:
                return None
            if not current.get("instructors"):
                raise no_instructors()
            if explicit is not None:
                refused = instructor_full(current, explicit, len(newcomers))
                if refused:
                    raise refused
            chosen = ([explicit] * len(newcomers) if explicit is not None
                      else newcomer_instructors(current, len(newcomers)))
            return {"$push": {"enrolments": {"$each": [
                {"student_id": student, "instructor_id": instructor, "enrolled_at": now,
                 "assigned_by": self.actor.user_id, "pinned": pin}
                for student, instructor in zip(newcomers, chosen, strict=True)]}}}

        before, after = self._change(track["_id"], plan)
        enrolled = [{"student_id": e["student_id"], "instructor_id": e["instructor_id"],
                     "pinned": e.get("pinned", False)}
                    for e in after["enrolments"][len(before.get("enrolments") or []):]]
        self._after_enrolment(track, enrolled)
        new = {e["student_id"] for e in enrolled}
        return Enrolled(enrolled=enrolled, skipped=[str(s) for s in wanted if s not in new],
                        students_count=len(after.get("enrolments") or []))

    def _require_students(self, wanted: list[ObjectId]) -> None:
        students = User.objects.for_school(self.school_id).filter(role="student",
                                                                  is_active=True)
        if len(wanted) <= IN_LIMIT:
            students = students.filter(id__in=wanted)
        found = set(students.batch_size(BIG_BATCH).scalar("id"))
        missing = [str(s) for s in wanted if s not in found]
        if missing:
            raise ValidationFailed("Some ids are not students of this school.",
                                   {"student_ids": [f"Not a student of this school: {sid}"
                                                    for sid in missing[:50]]})

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
        """On an auto-balancing project the others rebalance in the same update."""
        self.require_admin()
        student = object_id(student_id, "student")
        auto = self._auto_balances(self._track(track_id))
        now = utcnow()

        def plan(current: dict) -> dict:
            index = enrolment_index(current, student)
            if index is None:
                raise NotFound(f"Student {student_id!r} is not enrolled in this track.")
            rest = [e for e in current["enrolments"] if e["student_id"] != student]
            changes = balancing_changes({**current, "enrolments": rest}) if auto else []
            if not changes:
                return {"$pull": {"enrolments": {"student_id": student}}}
            # A pull and moves by position cannot share an update: write the list once.
            rebalanced = with_changes({**current, "enrolments": rest}, changes)["enrolments"]
            for moved_index, _ in changes:
                rebalanced[moved_index] = {**rebalanced[moved_index], "last_reassigned_at": now,
                                           "assigned_by": self.actor.user_id}
            return {"$set": {"enrolments": rebalanced}}

        before, after = self._change(track_id, plan)
        enrolment = before["enrolments"][enrolment_index(before, student)]
        self.audit("unenrol", "track_enrolment", student,
                   before={"track_id": before["_id"], "instructor_id": enrolment["instructor_id"]})
        rest = {**before, "enrolments": [e for e in before["enrolments"]
                                         if e["student_id"] != student]}
        self._record_moves(rest, after, "balance")

    def pin(self, track_id, student_id, pinned: bool) -> dict:
        """Pins (or unpins) a student to their instructor: balancing and instructor removal
        never move a pinned student. Setting what is already set writes nothing."""
        self.require_admin()
        student = object_id(student_id, "student")

        def plan(current: dict) -> dict | None:
            index = enrolment_index(current, student)
            if index is None:
                raise NotFound(f"Student {student_id!r} is not enrolled in this track.")
            if bool(current["enrolments"][index].get("pinned")) == pinned:
                return None
            return {"$set": {f"enrolments.{index}.pinned": pinned}}

        before, after = self._change(track_id, plan)
        enrolment = after["enrolments"][enrolment_index(after, student)]
        if after is not before:
            self.audit("pin" if pinned else "unpin", "track_enrolment", student,
                       after={"track_id": after["_id"],
                              "instructor_id": enrolment["instructor_id"]})
        users = self._users_by_id([student, enrolment["instructor_id"]])
        return _enrolment_view(enrolment, users)

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
            {"$match": {"_id": object_id(track_id, "track"), "school_id": self.school_id}},
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

    def reassign(self, track_id, student_id, instructor_id, pinned: bool = True) -> dict:
        """School admins only. Audited with from/to; both instructors notified; `warning` is
        "imbalance" when the busiest instructor carries more than 20% above the mean. The
        student is pinned there unless `pinned` is false; never above the instructor's cap
        (409 `instructor_full`).

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
            refused = instructor_full(current, target, 1)
            if refused:
                raise refused
            return {"$set": moved_update(current, [(index, target)], now,
                                         self.actor.user_id, pinned=pinned)}

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
        webhooks.emit(self.ctx, "instructor.reassigned", {
            "track_id": track["_id"], "student_id": student, "instructor_before": source,
            "instructor_after": target})
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
        """Moves the fewest students so that every load is within one of its weighted target
        and under its cap; pinned students stay; the newest unpinned enrolments of the busiest
        instructors move. 409 `track_full` when the caps cannot hold the students. One
        compare-and-set of the whole track: a reassignment that commits first is seen by the
        next plan, never overwritten. Audited once for the track and once per moved student
        (with the track's version, which orders it among the reassignments)."""
        self.require_admin()
        now = utcnow()

        def plan(current: dict) -> dict | None:
            if not current.get("instructors"):
                raise no_instructors()
            moves = moved_update(current, balancing_changes(current), now,
                                 self.actor.user_id)
            return {"$set": moves} if moves else None

        before, after = self._change(track_id, plan)
        moved = self._record_balance(before, after)
        return {"students_moved": moved,
                **self._loads_reply(after, loads_of(after), pinned_of(after))}

    def _record_balance(self, before: dict, after: dict) -> int:
        loads = loads_of(before)
        moves = balance_moves(loads, weights_of(before), caps_of(before), pinned_of(before))
        moved = self._record_moves(before, after, "balance")
        self.audit("balance", "track", after["_id"],
                   before={"loads": {str(k): n for k, n in loads.items()}},
                   after={"students_moved": moved, "track_version": after.get("version", 0),
                          "moves": [{"from": source, "to": target, "students": amount}
                                    for source, target, amount in moves]})
        return moved


def _enrolment_view(enrolment: dict, users: dict) -> dict:
    student, instructor = users.get(enrolment["student_id"]), users.get(enrolment["instructor_id"])
    return {"student_id": enrolment["student_id"], "name": student.name if student else None,
            "email": student.email if student else None,
            "instructor_id": enrolment["instructor_id"],
            "instructor_name": instructor.name if instructor else None,
            "enrolled_at": enrolment.get("enrolled_at"),
            "last_reassigned_at": enrolment.get("last_reassigned_at"),
            "assigned_by": enrolment.get("assigned_by"),
            "pinned": bool(enrolment.get("pinned"))}
