"""Editing a lesson after it is booked: its subject and room, one of its classes, its slot,
and the admin's lock.

Changes inside one slot are one compare-and-set of that slot (service/timetable_slots.py),
checked against every other lesson of the slot as a new booking is.

A move to another slot touches two slots, written in this order:
  1. slot B gets a copy of the lesson (same id) naming this move (`move_id`), checked there
     as a new booking is (409 `slot_taken`, `class_taken`, `room_taken`);
  2. slot A loses the original, only if it is still as the move read it (same version);
     when it is not (changed, moved or deleted meanwhile), the copy in B is taken back
     (its filter names the move) and the move answers 409 `assignment_changed`.
Of parallel moves of one lesson, one removes the original and the others take their copies
back; a move does not start while the lesson is in two slots (another move is between its
writes, and what was read may be a copy that move still takes back).
A crash between 1 and 2 leaves the lesson in both slots: `settle_interrupted_moves`
(run by `rota repair`) keeps the copy of the newest move when the original is unchanged
since (the move had been decided), else drops the copy.
"""

from __future__ import annotations

from datetime import timedelta

from bson import ObjectId

from documents.base import utcnow
from documents.timetable import Assignment, ClassInfo
from service import preconditions
from service.base import SchoolService
from service.errors import Conflict, NotFound, PreconditionFailed
from service.timetable import settings_for_reading
from service.timetable_assignments import (
    Assignments,
    assignment_summary,
    check_period_kept,
    check_staff_may_edit,
)
from service.timetable_slots import (
    assignment_in,
    change_slot,
    change_slot_of,
    check_classes_free,
    replaced,
    set_assignments,
    slot_from,
    slots,
    staff_booked,
)

# Older than any request can run: a copy this old whose original is still there was left
# by a crash between the two steps of its move.
MOVE_GRACE_SECONDS = 120
UNSET = object()


def edited_classes(classes, subject=UNSET, room_number=UNSET, student_count=UNSET
                   ) -> list[ClassInfo]:
    """Copies of the classes with the fields given changed."""
    changes = {name: value for name, value in (("subject", subject),
                                               ("room_number", room_number),
                                               ("student_count", student_count))
               if value is not UNSET}
    return [ClassInfo(**{**c.to_mongo().to_dict(), **changes}) for c in classes]


class LessonEdits(SchoolService):
    """PATCH of a lesson or of one of its classes, moves between slots, lock and unlock."""

    def edit(self, assignment_id, period_id=None, day_of_week: int | None = None,
             subject=UNSET, room_number=UNSET) -> Assignment:
        """Change the subject or the room of every class of the lesson, or move it to
        another slot (or both). Admins any lesson; staff a lesson they made, unlocked."""
        lessons = Assignments(self.ctx)
        current = lessons.get_assignment(assignment_id)
        check_staff_may_edit(self.actor, current)
        # If-Match: held against this read (a request that changes nothing, a move); the
        # slot writes check it again on what they read (service/timetable_slots.py).
        preconditions.check(current.id, current.version)
        if period_id is None and day_of_week is None and subject is UNSET \
                and room_number is UNSET:
            return current
        settings = settings_for_reading(self.school_id)
        day = current.day_of_week if day_of_week is None else \
            lessons._working_day(settings, day_of_week)
        period = current.period_id if period_id is None else \
            lessons._bookable_period(settings, period_id).id
        overlapping = settings.allow_overlapping_assignments

        def classes_of(lesson):
            return edited_classes(lesson.classes, subject=subject, room_number=room_number)

        if (day, period) == (current.day_of_week, current.period_id):
            edited = self._change_in_slot(current.id, classes_of, overlapping)
        else:
            edited = self._move(current, day, period, classes_of(current), overlapping)
        self.audit("update", "timetable_assignment", current.id,
                   before=assignment_summary(current), after=assignment_summary(edited))
        return edited

    def edit_class(self, assignment_id, class_id: str, **changes) -> Assignment:
        """Change one class of the lesson (subject, room, student count)."""
        current = Assignments(self.ctx).get_assignment(assignment_id)
        check_staff_may_edit(self.actor, current)
        wanted = ClassInfo(class_id=class_id, subject="-")
        key = _class_key(wanted)
        if not any(_class_key(c) == key for c in current.classes):
            raise NotFound(f"Class {class_id!r} is not in this assignment.")

        def classes_of(lesson):
            if not any(_class_key(c) == key for c in lesson.classes):
                raise NotFound(f"Class {class_id!r} is no longer in this assignment.")
            return [edited_classes([c], **changes)[0] if _class_key(c) == key else c
                    for c in lesson.classes]

        overlapping = settings_for_reading(self.school_id).allow_overlapping_assignments
        edited = self._change_in_slot(current.id, classes_of, overlapping)
        self.audit("update_class", "timetable_assignment", current.id,
                   before=assignment_summary(current), after=assignment_summary(edited))
        return edited

    def _change_in_slot(self, assignment_id, classes_of, overlapping: bool) -> Assignment:
        def edit(slot, lesson):
            check_staff_may_edit(self.actor, lesson)
            classes = classes_of(lesson)
            if not overlapping:
                check_classes_free(slot, classes, besides=lesson.id, week=lesson.week)
            return replaced(slot, lesson, by=self.actor.user_id, classes=classes)

        return assignment_in(change_slot_of(self.school_id, assignment_id, edit), assignment_id)

    # moving between slots

    def _move(self, current: Assignment, day: int, period, classes, overlapping: bool
              ) -> Assignment:
        if slots().count_documents({"school_id": self.school_id,
                                    "assignments.id": current.id}) > 1:
            # another move of this lesson is between its writes: what was read may be its
            # copy, which that move can still take back
            raise self._changed()
        copy = Assignment(**{**current.to_mongo().to_dict(), "classes": classes})
        copy.id, copy.move_id = current.id, ObjectId()
        copy.version, copy.updated_at, copy.updated_by = \
            (current.version or 0) + 1, utcnow(), self.actor.user_id

        def add(slot):
            if assignment_in(slot, copy.id) is not None:
                raise self._changed()  # a parallel move of this lesson got there first
            if not overlapping:
                check_classes_free(slot, copy.classes, week=copy.week)
            if staff_booked(slot, copy.staff_id, week=copy.week):
                raise Conflict("This staff member already has an assignment in that slot.",
                               code="slot_taken", details={"staff_id": str(copy.staff_id),
                                                           "day_of_week": day,
                                                           "period_id": str(period)})
            return {"$push": {"assignments": copy.to_mongo()}}

        def remove_original(slot):
            original = assignment_in(slot, copy.id)
            if original is not None:
                preconditions.check(copy.id, original.version)  # If-Match: 412
            if original is None or original.version != current.version:
                raise self._changed()
            return set_assignments([a for a in slot.assignments if a.id != copy.id])

        moved = assignment_in(change_slot(self.school_id, day, period, add), copy.id)
        check_period_kept(self.school_id, day, period,
                          lambda slot: remove_copy_plan(slot, copy.id, copy.move_id))
        try:
            change_slot(self.school_id, current.day_of_week, current.period_id,
                        remove_original)
        except (Conflict, PreconditionFailed):
            take_back_copy(self.school_id, day, period, copy.id, copy.move_id)
            raise
        return moved

    @staticmethod
    def _changed() -> Conflict:
        return Conflict("The lesson changed meanwhile; reload and try again.",
                        code="assignment_changed")

    # locking

    def lock(self, assignment_id, reason: str) -> Assignment:
        """Admins lock a lesson: staff can then neither hand it on nor edit it."""
        return self._set_lock(assignment_id, "lock", is_locked=True, locked_reason=reason,
                              locked_by=self.actor.user_id, locked_at=utcnow())

    def unlock(self, assignment_id) -> Assignment:
        return self._set_lock(assignment_id, "unlock", is_locked=False, locked_reason=None,
                              locked_by=None, locked_at=None)

    def _set_lock(self, assignment_id, action: str, **fields) -> Assignment:
        self.require_admin()
        wanted = Assignments(self.ctx).get_assignment(assignment_id).id
        before = []

        def set_lock(slot, lesson):
            before[:] = [{"is_locked": lesson.is_locked, "locked_reason": lesson.locked_reason}]
            return replaced(slot, lesson, by=self.actor.user_id, **fields)

        locked = assignment_in(change_slot_of(self.school_id, wanted, set_lock), wanted)
        self.audit(action, "timetable_assignment", wanted, before=before[0],
                   after={"is_locked": locked.is_locked, "locked_reason": locked.locked_reason})
        return locked

    # settling moves a crash interrupted

    def settle_interrupted_moves(self) -> list[str]:
        """Lessons found in two slots after a crash between the steps of a move: keep the
        newest move's copy when the original is unchanged since, else drop that copy."""
        self.require_admin()
        doubled = slots().aggregate([
            {"$match": {"school_id": self.school_id}},
            {"$unwind": "$assignments"},
            {"$group": {"_id": "$assignments.id", "n": {"$sum": 1}}},
            {"$match": {"n": {"$gt": 1}}},
        ])
        settled = []
        for row in doubled:
            found = [slot_from(d) for d in slots().find(
                {"school_id": self.school_id, "assignments.id": row["_id"]})]
            copies = sorted(((assignment_in(s, row["_id"]), s) for s in found),
                            key=lambda pair: pair[0].move_id or ObjectId("0" * 24))
            settled += self._settle_copies(row["_id"], copies)
        return settled

    def _settle_copies(self, assignment_id, copies) -> list[str]:
        (original, home), *_, (newest, target) = copies
        if newest.move_id is None or newest.move_id.generation_time.replace(tzinfo=None) > \
                utcnow() - timedelta(seconds=MOVE_GRACE_SECONDS):
            return []  # a move may still be running
        if (original.version or 0) + 1 == newest.version:
            remove_copy(self.school_id, home, assignment_id, original.move_id)
            outcome = "moved"
        else:
            remove_copy(self.school_id, target, assignment_id, newest.move_id)
            outcome = "left where it was"
        self.audit("repair_move", "timetable_assignment", assignment_id,
                   after={"outcome": outcome})
        return [f"lesson {assignment_id} found in two slots: {outcome}"]


def take_back_copy(school_id, day: int, period, assignment_id, move_id) -> None:
    def remove(slot):
        return remove_copy_plan(slot, assignment_id, move_id)

    change_slot(school_id, day, period, remove)


def remove_copy(school_id, slot, assignment_id, move_id) -> None:
    take_back_copy(school_id, slot.day_of_week, slot.period_id, assignment_id, move_id)


def remove_copy_plan(slot, assignment_id, move_id) -> dict | None:
    """The update removing the copy of a lesson that names `move_id` (None: already gone)."""
    kept = [a for a in slot.assignments if not (a.id == assignment_id and a.move_id == move_id)]
    return set_assignments(kept) if len(kept) != len(slot.assignments) else None


def _class_key(entry: ClassInfo) -> str:
    return " ".join(entry.class_id.split()).casefold()

