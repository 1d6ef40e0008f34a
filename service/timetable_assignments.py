"""Assignments with many classes, admin overrides and self-allocations.

Each change is one compare-and-set of the assignment's slot (service/timetable_slots.py):
the plan checks the staff member, the classes and the rooms against every other assignment
of that slot and writes the slot's assignment list, so no parallel writer can double book.
"""

from __future__ import annotations

from bson import ObjectId

from documents.accounts import User
from documents.timetable import Assignment, ClassInfo, Period, TimetableSettings, booking_keys
from service import webhooks
from service.base import SchoolService
from service.errors import Conflict, Forbidden, NotFound, ValidationFailed
from service.ids import field_object_id, object_id
from service.pagination import MAX_PAGE_SIZE, Page
from service.timetable import settings_for_reading, slot_label
from service.timetable_slots import (
    assignment_in,
    assignments_of,
    change_slot,
    change_slot_of,
    check_classes_free,
    find_assignment,
    replaced,
    set_assignments,
    slots,
    staff_booked,
)


def assignment_summary(assignment: Assignment) -> dict:
    return {"staff_id": assignment.staff_id, "period_id": assignment.period_id,
            "day_of_week": assignment.day_of_week, "assignment_type": assignment.assignment_type,
            "classes": [c.to_mongo().to_dict() for c in assignment.classes],
            "is_locked": assignment.is_locked}


def lesson_label(school_id, assignment: Assignment) -> str:
    """"Monday, Period 3, 09:40–10:25": how notifications name a lesson's slot."""
    return slot_label(school_id, assignment.day_of_week, assignment.period_id)


def creator_of(assignment: Assignment):
    """Who made the lesson: recorded since lessons record it; before, a self-allocation was
    made by its first holder and every other lesson by an admin (None)."""
    if assignment.created_by is not None:
        return assignment.created_by
    if assignment.assignment_type == "self_allocated":
        return assignment.staff_id
    return None


def is_self_allocation(assignment: Assignment) -> bool:
    """A self-allocation stays one when an admin hands it to someone else (it keeps its
    activity name), so the admin can still delete it as a self-allocation."""
    return assignment.assignment_type == "self_allocated" or bool(assignment.activity_name)


def check_staff_may_edit(actor, assignment: Assignment) -> None:
    """Admins edit any lesson. Staff edit a lesson they hold, made themselves, and that is
    not locked: 403 `locked` first (what they would have to ask an admin about), then 403
    `not_creator`."""
    if actor.is_admin:
        return
    if assignment.staff_id != actor.user_id:
        raise Conflict("The assignment changed hands meanwhile; reload and try again.",
                       code="assignment_changed")
    if assignment.is_locked:
        raise Forbidden("This lesson is locked; ask an admin.", code="locked",
                        details={"locked_reason": assignment.locked_reason})
    if creator_of(assignment) != actor.user_id:
        raise Forbidden("Staff may change only lessons they created; ask an admin.",
                        code="not_creator")


def check_not_locked(assignment: Assignment) -> None:
    """Locked lessons (an admin's lock, or a self-allocation) cannot be handed on."""
    if assignment.is_locked:
        raise Forbidden("This lesson is locked; ask an admin.", code="locked",
                        details={"locked_reason": assignment.locked_reason})


def check_period_kept(school_id, day: int, period_id, take_back) -> None:
    """The booking's half of the handshake with deleting a period (TimetableSetup.
    delete_period): each writes first, then reads what the other writes. A booking reads the
    period after adding its lesson; when the period was deleted meanwhile it takes the lesson
    back (`take_back(slot)`, a plan for its slot) and answers 409 `period_deleted`, so no
    lesson is left in a deleted period."""
    if any(p.id == period_id and p.is_active
           for p in settings_for_reading(school_id).periods):
        return
    change_slot(school_id, day, period_id, take_back)
    raise Conflict("The period was deleted while this was being booked.",
                   code="period_deleted", details={"period_id": str(period_id)})


def check_taught_has_classes(assignment: Assignment, classes) -> None:
    """A taught lesson keeps at least one class; a self-allocated activity may have none."""
    if not classes and not is_self_allocation(assignment):
        raise Conflict("A lesson needs at least one class; delete the lesson instead.",
                       code="last_class")


class Assignments(SchoolService):
    """Assignments with many classes, overrides and self-allocations."""

    # reading

    def list(self, staff_id=None, day_of_week: int | None = None, period_id=None,
             page: int = 1, page_size: int = 50) -> Page:
        if not self.actor.is_admin:
            if staff_id is not None and str(staff_id) != str(self.actor.user_id):
                raise Forbidden("Staff may only list their own assignments.")
            staff_id = self.actor.user_id
        slot, mine = {"school_id": self.school_id}, {}
        if day_of_week is not None:
            slot["day_of_week"] = day_of_week
        if period_id is not None:
            slot["period_id"] = field_object_id(period_id, "period_id")
        if staff_id is not None:
            mine["assignments.staff_id"] = field_object_id(staff_id, "staff_id")
        return self._page({**slot, **mine}, mine, page, page_size)

    def _page(self, slot_filter: dict, assignment_filter: dict, page: int,
              page_size: int) -> Page:
        """One page of assignments ordered by day, period and staff, sliced and counted in
        the database (one round trip, whatever the school's size)."""
        page_size, page = max(1, min(page_size, MAX_PAGE_SIZE)), max(1, page)
        (found,) = slots().aggregate([
            {"$match": slot_filter},
            {"$unwind": "$assignments"},
            {"$match": assignment_filter},
            {"$sort": {"day_of_week": 1, "period_id": 1, "assignments.staff_id": 1}},
            {"$facet": {"items": [{"$skip": (page - 1) * page_size}, {"$limit": page_size}],
                        "total": [{"$count": "n"}]}},
        ])
        items = assignments_of({**row, "assignments": [row["assignments"]]}
                               for row in found["items"])
        return Page(items, found["total"][0]["n"] if found["total"] else 0, page, page_size)

    def get_assignment(self, assignment_id) -> Assignment:
        """Admins see any assignment, staff their own (404 for the others')."""
        assignment = self._find(assignment_id)
        if not self.actor.is_admin and assignment.staff_id != self.actor.user_id:
            raise NotFound(f"No assignment with id {assignment_id!r}.")
        return assignment

    def _find(self, assignment_id, what: str = "assignment") -> Assignment:
        assignment = find_assignment(self.school_id, object_id(assignment_id, what))
        if assignment is None:
            raise NotFound(f"No {what} with id {assignment_id!r}.")
        return assignment

    # creating

    def create(self, staff_id, period_id, day_of_week: int, classes: list[dict],
               week: str | None = None) -> Assignment:
        self.require_admin()
        staff = self.member(staff_id, "staff_id", roles={"staff"})
        assignment = Assignment(id=ObjectId(), staff_id=staff.id, week=week,
                                classes=self._class_list(classes), assignment_type="regular",
                                created_by=self.actor.user_id, updated_by=self.actor.user_id)
        created = self._book(assignment, period_id, day_of_week)
        self.audit("create", "timetable_assignment", created.id,
                   after=assignment_summary(created))
        return created

    def self_allocate(self, period_id, day_of_week: int, activity_name: str,
                      description: str | None = None, classes: list[dict] | None = None
                      ) -> Assignment:
        """A staff member fills an empty slot of their own; it is locked at once."""
        self.require_role({"staff"})
        assignment = Assignment(id=ObjectId(), staff_id=self.actor.user_id,
                                classes=self._class_list(classes or []),
                                assignment_type="self_allocated", is_locked=True,
                                activity_name=activity_name, description=description,
                                created_by=self.actor.user_id, updated_by=self.actor.user_id)
        created = self._book(assignment, period_id, day_of_week)
        self.audit("self_allocate", "timetable_assignment", created.id,
                   after={**assignment_summary(created), "activity_name": activity_name})
        return created

    def _book(self, assignment: Assignment, period_id, day_of_week: int) -> Assignment:
        settings = settings_for_reading(self.school_id)
        period = self._bookable_period(settings, period_id).id
        day = self._working_day(settings, day_of_week)

        def add(slot):
            if not settings.allow_overlapping_assignments:
                check_classes_free(slot, assignment.classes, week=assignment.week)
            if staff_booked(slot, assignment.staff_id, week=assignment.week):
                raise Conflict("This staff member already has an assignment in that slot.",
                               code="slot_taken",
                               details={"staff_id": str(assignment.staff_id),
                                        "day_of_week": day, "period_id": str(period)})
            return {"$push": {"assignments": assignment.to_mongo()}}

        slot = change_slot(self.school_id, day, period, add)
        check_period_kept(self.school_id, day, period, lambda slot: set_assignments(
            [a for a in slot.assignments if a.id != assignment.id]))
        return assignment_in(slot, assignment.id)

    @staticmethod
    def _bookable_period(settings: TimetableSettings, period_id) -> Period:
        wanted = field_object_id(period_id, "period_id")
        for period in settings.periods:
            if period.id == wanted and period.is_active:
                return period
        raise ValidationFailed("period_id is not an active period of this school.",
                               {"period_id": ["Not an active period of this school."]})

    @staticmethod
    def _working_day(settings: TimetableSettings, day_of_week: int) -> int:
        if day_of_week not in settings.working_days:
            raise ValidationFailed("day_of_week is not a working day of this school.",
                                   {"day_of_week": [f"Working days are {settings.working_days}."]})
        return day_of_week

    @staticmethod
    def _class_list(classes: list[dict]) -> list[ClassInfo]:
        seen = set()
        for entry in classes:
            key = _class_keys([ClassInfo(**entry)])
            if key & seen:
                raise ValidationFailed(f"Class {entry['class_id']!r} is listed twice.",
                                       {"classes": ["A class may appear once."]})
            seen |= key
        return [ClassInfo(**entry) for entry in classes]

    # changing classes

    def add_class(self, assignment_id, **entry) -> Assignment:
        wanted = self._changeable(assignment_id).id
        new_class = ClassInfo(**entry)
        overlapping = settings_for_reading(self.school_id).allow_overlapping_assignments

        def add(slot, assignment):
            check_staff_may_edit(self.actor, assignment)
            if _class_keys([new_class]) & _class_keys(assignment.classes):
                raise Conflict(f"Class {new_class.class_id!r} is already in this assignment.",
                               code="class_already_assigned")
            if not overlapping:
                check_classes_free(slot, [new_class], besides=assignment.id,
                                   week=assignment.week)
            return replaced(slot, assignment, by=self.actor.user_id,
                            classes=list(assignment.classes) + [new_class])

        slot = change_slot_of(self.school_id, wanted, add)
        self.audit("add_class", "timetable_assignment", wanted,
                   after=new_class.to_mongo().to_dict())
        return assignment_in(slot, wanted)

    def remove_class(self, assignment_id, class_id: str) -> Assignment:
        wanted = self._changeable(assignment_id).id
        key = _class_keys([ClassInfo(class_id=class_id, subject="-")])
        removed = []

        def remove(slot, assignment):
            check_staff_may_edit(self.actor, assignment)
            removed[:] = [c for c in assignment.classes if _class_keys([c]) & key]
            if not removed:
                raise NotFound(f"Class {class_id!r} is not in this assignment.")
            kept = [c for c in assignment.classes if c not in removed]
            check_taught_has_classes(assignment, kept)
            return replaced(slot, assignment, by=self.actor.user_id, classes=kept)

        slot = change_slot_of(self.school_id, wanted, remove)
        self.audit("remove_class", "timetable_assignment", wanted,
                   before=removed[0].to_mongo().to_dict())
        return assignment_in(slot, wanted)

    def _changeable(self, assignment_id) -> Assignment:
        """Admins change any assignment; staff their own unlocked ones they created."""
        assignment = self.get_assignment(assignment_id)
        check_staff_may_edit(self.actor, assignment)
        return assignment

    # deleting

    def delete(self, assignment_id) -> None:
        self.require_admin()
        self._remove(self._find(assignment_id), "delete")

    def delete_self_allocation(self, assignment_id) -> None:
        """Admins only: self-allocations are locked for staff, their own included."""
        assignment = self._find(assignment_id, "self-allocation")
        if not is_self_allocation(assignment):
            raise NotFound(f"No self-allocation with id {assignment_id!r}.")
        if not self.actor.is_admin:
            raise Forbidden("Self-allocations are locked; only an admin can delete them.",
                            code="locked")
        self._remove(assignment, "delete_self_allocation")

    def _remove(self, assignment: Assignment, action: str) -> None:
        gone = []

        def remove(slot, current):
            gone[:] = [current]
            return set_assignments([a for a in slot.assignments if a.id != current.id])

        change_slot_of(self.school_id, assignment.id, remove)
        self.audit(action, "timetable_assignment", assignment.id,
                   before=assignment_summary(gone[0]))

    # override

    def override(self, assignment_id, new_staff_id, notes: str | None = None) -> Assignment:
        """Admins hand an assignment to someone else at once; both staff are told."""
        self.require_admin()
        wanted = self._find(assignment_id).id
        new_staff = self.member(new_staff_id, "new_staff_id", roles={"staff"})
        before = []

        def hand_over(slot, assignment):
            if assignment.staff_id == new_staff.id:
                raise ValidationFailed("new_staff_id already holds this assignment.",
                                       {"new_staff_id": ["Already holds this assignment."]})
            if staff_booked(slot, new_staff.id, week=assignment.week):
                raise Conflict("The new staff member already has an assignment in that slot.",
                               code="slot_taken", details={"staff_id": str(new_staff.id)})
            before[:] = [assignment.staff_id]
            return replaced(slot, assignment, by=self.actor.user_id, staff_id=new_staff.id,
                            original_staff_id=assignment.staff_id,
                            assignment_type="admin_override", override_notes=notes,
                            swap_request_id=None)

        moved = assignment_in(change_slot_of(self.school_id, wanted, hand_over), wanted)
        self._announce_override(moved, before[0], new_staff, notes)
        return moved

    def _announce_override(self, assignment: Assignment, previous_staff_id, new_staff: User,
                           notes) -> None:
        slot = lesson_label(self.school_id, assignment)
        data = {"assignment_id": str(assignment.id), "day_of_week": assignment.day_of_week,
                "period_id": str(assignment.period_id)}
        self.notify(previous_staff_id, "timetable_override",
                    f"An admin has reassigned your lesson on {slot} to {new_staff.name}.", data)
        self.notify(new_staff.id, "timetable_override",
                    f"An admin has assigned you a lesson on {slot}.", data)
        self.audit("override", "timetable_assignment", assignment.id,
                   before={"staff_id": previous_staff_id},
                   after={"staff_id": new_staff.id, "original_staff_id": previous_staff_id,
                          "override_notes": notes})
        webhooks.emit(self.ctx, "assignment.overridden", {
            "assignment_id": assignment.id, "day_of_week": assignment.day_of_week,
            "period_id": assignment.period_id, "staff_before": previous_staff_id,
            "staff_after": new_staff.id})


def _class_keys(classes) -> set[tuple[str, str]]:
    return {key for key in booking_keys(classes) if key[0] == "class"}
