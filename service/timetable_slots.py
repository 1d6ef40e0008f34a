"""The slot aggregate of the timetable: one TimetableSlot per (day, period) of a school holds
every assignment in it, so "no staff member, class or room booked twice in a slot" is checked
and written in one compare-and-set of that document (service.aggregates.change).

Here live the reads of slots and assignments and the booking rules the plans share; the
managers (service/timetable_assignments.py, service/timetable_alterations.py, the importer)
write their own plans with them.
"""

from __future__ import annotations

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from documents.base import utcnow
from documents.timetable import Assignment, TimetableSlot, booking_keys
from service import preconditions
from service.aggregates import change
from service.errors import Conflict, NotFound

SLOT_FIELDS = {"school_id": 1, "day_of_week": 1, "period_id": 1, "version": 1}


def slots():
    return TimetableSlot._get_collection()


def slot_from(document: dict) -> TimetableSlot:
    return TimetableSlot._from_son(document)


def assignment_in(slot: TimetableSlot, assignment_id) -> Assignment | None:
    return next((a for a in slot.placed() if a.id == assignment_id), None)


def find_assignment_in_slot(school_id, assignment_id: ObjectId
                            ) -> tuple[Assignment | None, TimetableSlot | None]:
    """One assignment with its whole slot (who else teaches then), in one round trip."""
    found = slots().find_one({"school_id": school_id, "assignments.id": assignment_id})
    if found is None:
        return None, None
    slot = slot_from(found)
    return assignment_in(slot, assignment_id), slot


def find_assignment(school_id, assignment_id: ObjectId) -> Assignment | None:
    """One assignment with its slot's day and period, in one round trip."""
    found = slots().find_one(
        {"school_id": school_id, "assignments.id": assignment_id},
        {**SLOT_FIELDS, "assignments": {"$elemMatch": {"id": assignment_id}}})
    return assignment_in(slot_from(found), assignment_id) if found else None


def assignments_of(documents) -> list[Assignment]:
    """The assignments of raw slot documents, flattened."""
    return [assignment for document in documents for assignment in slot_from(document).placed()]


def change_slot(school_id, day_of_week: int, period_id, plan) -> TimetableSlot:
    """Compare-and-set of one slot, created empty on first use; answers the slot after.
    `plan(slot)` sees it as a document."""
    where = {"day_of_week": day_of_week, "period_id": period_id}

    def planned(document: dict):
        return plan(slot_from(document))

    try:
        return slot_from(change(slots(), school_id, where, planned, what="slot")[1])
    except NotFound:
        _create_empty(school_id, where)
    return slot_from(change(slots(), school_id, where, planned, what="slot")[1])


def _create_empty(school_id, where: dict) -> None:
    try:
        slots().update_one({"school_id": school_id, **where},
                           {"$setOnInsert": {"created_at": utcnow(), "assignments": [],
                                             "version": 0}}, upsert=True)
    except DuplicateKeyError:  # a parallel request created it: what we wanted
        pass


def change_slot_of(school_id, assignment_id: ObjectId, plan, what: str = "assignment"
                   ) -> TimetableSlot:
    """Compare-and-set of the slot holding an assignment; 404 when no slot holds it (any
    more). `plan(slot, assignment)` sees both as documents."""
    def planned(document: dict):
        slot = slot_from(document)
        assignment = assignment_in(slot, assignment_id)
        if assignment is None:
            raise NotFound(f"No {what} with id {str(assignment_id)!r}.")
        # If-Match names the assignment's own version (api/etags.py): 412, on a lost race too.
        preconditions.check(assignment.id, assignment.version)
        return plan(slot, assignment)

    return slot_from(change(slots(), school_id, {"assignments.id": assignment_id}, planned,
                            what="slot")[1])


def set_assignments(assignments: list[Assignment]) -> dict:
    """The update writing a slot's whole assignment list (one form that every backend runs
    alike; the version compare-and-set makes it safe)."""
    return {"$set": {"assignments": [a.to_mongo() for a in assignments]}}


def replaced(slot: TimetableSlot, assignment: Assignment, by=None, **fields) -> dict:
    """The update changing some fields of one assignment of the slot (its version +1), made
    by the user `by` (updated_by)."""
    for name, value in fields.items():
        setattr(assignment, name, value)
    assignment.version = (assignment.version or 0) + 1
    assignment.updated_at = utcnow()
    if by is not None:
        assignment.updated_by = by
    return set_assignments([assignment if a.id == assignment.id else a
                            for a in slot.assignments])


def weeks_meet(week, other_week) -> bool:
    """Two lessons of one slot run in a common week unless one is A-only, the other B-only."""
    return week is None or other_week is None or week == other_week


def clashes(assignments) -> bool:
    """True when two of these assignments run in a common week."""
    return any(a.id != b.id and weeks_meet(a.week, b.week)
               for a in assignments for b in assignments)


def staff_booked(slot: TimetableSlot, staff_id, besides=None, week=None) -> bool:
    """True when the staff member holds an assignment in the slot (other than `besides`)
    running in `week` (None: any week)."""
    return any(a.staff_id == staff_id and a.id != besides and weeks_meet(a.week, week)
               for a in slot.assignments)


def staff_busy(school_id, assignment: Assignment, staff_id) -> bool:
    """True when the staff member holds a lesson in the assignment's slot running in a week
    of the assignment's (one round trip; the writes check it again in their
    compare-and-set)."""
    found = slots().find_one(
        {"school_id": school_id, "day_of_week": assignment.day_of_week,
         "period_id": assignment.period_id, "assignments.staff_id": staff_id},
        {"assignments.id": 1, "assignments.staff_id": 1, "assignments.week": 1})
    return found is not None and staff_booked(slot_from(found), staff_id,
                                              week=assignment.week)


def check_classes_free(slot: TimetableSlot, classes, besides=None, week=None) -> None:
    """409 `class_taken` / `room_taken` when another assignment of the slot running in
    `week` (None: any week) books one of these classes or rooms."""
    held = {key: other for other in slot.assignments
            if other.id != besides and weeks_meet(other.week, week)
            for key in booking_keys(other.classes)}
    for kind, key in sorted(booking_keys(classes)):
        if (kind, key) in held:
            what = "Class" if kind == "class" else "Room"
            raise Conflict(f"{what} {key!r} is already taught in this slot.",
                           code=f"{kind}_taken",
                           details={"kind": kind, "key": key,
                                    "assignment_id": str(held[(kind, key)].id)})
