"""Daily cover: for one date, what happens to the lessons of absent teachers (and any lesson
an admin changes that day): covered by a colleague, cancelled, or moved to another room.

The weekly pattern (TimetableSlot) is never written. A date's changes of one period live in
one DaySlot document (documents/timetable_cover.py); a change is ONE compare-and-set of it
(service.aggregates.change) whose plan checks the other changes of that date and period: a
cover teacher takes one lesson per slot, a room holds one lesson per slot, a lesson has one
change per date.

The weekly slot is a second aggregate: the plan reads it (is the cover teacher teaching
then, is the room in use) but cannot hold it still. A weekly booking landing between that
read and the write is caught by re-reading the weekly slot after the write: the change is
then taken back and the request answers 409. A weekly booking made after that re-read does
not know about dates; the day's plan lists it under `conflicts` for an admin to settle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from documents.accounts import User
from documents.base import utcnow
from documents.timetable import Assignment, Period, booking_key
from documents.timetable_cover import DatedChange, DaySlot
from service import webhooks
from service.aggregates import change
from service.base import SchoolService
from service.calendar import (
    as_date,
    as_datetime,
    calendar_for_reading,
    holidays_between,
    rotation_week,
    runs_in_week,
    school_today,
)
from service.errors import Conflict, NotFound, ValidationFailed
from service.ids import object_id
from service.timetable import DAY_NAMES, settings_for_reading
from service.timetable_absences import AbsenceBook, absences_between
from service.timetable_slots import assignments_of, find_assignment, slot_from, slots

# the order of the day's plan: what still needs an admin first
STATUS_ORDER = {"uncovered": 0, "covered": 1, "room_changed": 2, "cancelled": 3}
ACTION_STATUS = {"cover": "covered", "cancel": "cancelled", "room": "room_changed"}


def day_slots():
    return DaySlot._get_collection()


def period_label(period: Period) -> str:
    """How people name a period: "Period 3, 09:40–10:25"."""
    return f"{period.period_name}, {period.start_time}\u2013{period.end_time}"


def week_marker(assignment: Assignment) -> str | None:
    return getattr(assignment, "week", None)


def changes_of(documents) -> dict[tuple[date, ObjectId], list[DatedChange]]:
    """(date, period_id) -> that slot's dated changes, from raw DaySlot documents."""
    found = {}
    for document in documents:
        day_slot = DaySlot._from_son(document)
        found[(as_date(day_slot.date), day_slot.period_id)] = list(day_slot.changes)
    return found


def dates_from(start: date | None, end: date | None) -> dict:
    """The filter on DaySlot.date for the days from `start` to `end`, both included. The
    end is "before the next day" ($lt): the embedded server misses documents equal to an
    $lte bound on a field followed by another in the index (date, then period_id)."""
    when = {}
    if start is not None:
        when["$gte"] = as_datetime(start)
    if end is not None:
        when["$lt"] = as_datetime(end + timedelta(days=1))
    return {"date": when} if when else {}


def day_changes(school_id, start: date, end: date) -> dict:
    """Every dated change from `start` to `end`, by (date, period_id) (one round trip)."""
    return changes_of(day_slots().find({"school_id": school_id, **dates_from(start, end)}))


@dataclass
class SlotUse:
    """Who and which rooms one (date, period) holds: the weekly lessons that run that day
    minus the ones cancelled, covered or moved, plus the dated changes."""

    teaching: set = field(default_factory=set)
    rooms: dict = field(default_factory=dict)  # room key -> assignment id

    @classmethod
    def of(cls, weekly: list[Assignment], changes: list[DatedChange], week: str | None,
           besides=None) -> SlotUse:
        use = cls()
        changed = {c.assignment_id: c for c in changes}
        for lesson in weekly:
            if lesson.id == besides or not runs_in_week(week_marker(lesson), week):
                continue
            moved = changed.get(lesson.id)
            if moved is None or moved.action == "room":
                use.teaching.add(lesson.staff_id)
            if moved is None or (moved.action == "cover" and not moved.room):
                use.rooms.update({booking_key(c.room_number): lesson.id
                                  for c in lesson.classes if c.room_number})
        for dated in changes:
            if dated.assignment_id == besides:
                continue
            if dated.cover_staff_id:
                use.teaching.add(dated.cover_staff_id)
            if dated.room:
                use.rooms[booking_key(dated.room)] = dated.assignment_id
        return use


class DayContext:
    """What one date looks like, read once: periods, rotation week, holiday, absences, the
    weekly lessons of that weekday and the date's changes (six round trips)."""

    def __init__(self, school_id, day: date):
        self.day = day
        settings = settings_for_reading(school_id)
        self.working = day.weekday() in settings.working_days
        self.periods = {p.id: p for p in settings.periods if p.is_active}
        self.calendar = calendar_for_reading(school_id)
        self.week = rotation_week(self.calendar, day)
        self.holiday = holidays_between(school_id, day, day).get(day)
        self.absences = AbsenceBook(absences_between(school_id, day, day))
        weekly = assignments_of(slots().find({"school_id": school_id,
                                              "day_of_week": day.weekday()}))
        self.lessons = [a for a in weekly if a.period_id in self.periods
                        and runs_in_week(week_marker(a), self.week)]
        self.changes = day_changes(school_id, day, day)

    def change_of(self, lesson: Assignment) -> DatedChange | None:
        return next((c for c in self.changes.get((self.day, lesson.period_id), [])
                     if c.assignment_id == lesson.id), None)


class Cover(SchoolService):
    """The day's cover plan and its changes (admins change, staff read)."""

    # the day's plan

    def plan(self, day: date | None = None) -> dict:
        """Every lesson of that date whose teacher is absent or that an admin changed, the
        uncovered ones first; a constant number of round trips."""
        day = day or school_today(self.school_id)
        context = DayContext(self.school_id, day)
        lessons, conflicts = [], []
        if context.working and not context.holiday:
            for lesson in context.lessons:
                entry = self._plan_entry(context, lesson)
                if entry is not None:
                    lessons.append(entry)
            conflicts = self._conflicts(context)
        names = self._names({e["staff_id"] for e in lessons}
                            | {e["cover_staff_id"] for e in lessons if e["cover_staff_id"]})
        for entry in lessons:
            entry["staff_name"] = names.get(entry["staff_id"])
            entry["cover_staff_name"] = names.get(entry["cover_staff_id"])
        lessons.sort(key=lambda e: (STATUS_ORDER[e["status"]], e["period_number"],
                                    e["staff_name"] or "", str(e["assignment_id"])))
        return {"date": day, "day_of_week": day.weekday(), "week": context.week,
                "holiday": context.holiday, "lessons": lessons, "conflicts": conflicts}

    @staticmethod
    def _plan_entry(context: DayContext, lesson: Assignment) -> dict | None:
        dated = context.change_of(lesson)
        absent = context.absences.away(lesson.staff_id, context.day, lesson.period_id)
        if dated is None and not absent:
            return None
        if dated is None or (dated.action == "room" and absent):
            status = "uncovered"
        else:
            status = ACTION_STATUS[dated.action]
        period = context.periods[lesson.period_id]
        return {"assignment_id": lesson.id, "staff_id": lesson.staff_id,
                "period_id": lesson.period_id, "period_number": period.period_number,
                "period_name": period.period_name, "start_time": period.start_time,
                "end_time": period.end_time, "classes": lesson.classes, "status": status,
                "teacher_absent": absent,
                "cover_staff_id": dated.cover_staff_id if dated else None,
                "room": dated.room if dated else None,
                "notes": dated.notes if dated else None}

    @staticmethod
    def _conflicts(context: DayContext) -> list[dict]:
        """Covers that no longer hold: the cover teacher got a weekly lesson in that slot
        (booked after the cover, see the module docstring) or is now absent."""
        found = []
        for (day, period_id), changes in context.changes.items():
            weekly = [a for a in context.lessons if a.period_id == period_id]
            for dated in changes:
                staff = dated.cover_staff_id
                if not staff:
                    continue
                use = SlotUse.of(weekly, [c for c in changes if c is not dated], context.week)
                if staff in use.teaching:
                    reason = "cover_staff_teaching"
                elif context.absences.away(staff, day, period_id):
                    reason = "cover_staff_absent"
                else:
                    continue
                found.append({"assignment_id": dated.assignment_id, "period_id": period_id,
                              "cover_staff_id": staff, "reason": reason})
        return found

    def _names(self, user_ids) -> dict:
        ids = [i for i in user_ids if i]
        if not ids:
            return {}
        return {u.id: u.name for u in User.objects.for_school(self.school_id).filter(
            id__in=ids).only("id", "name")}

    # changing a lesson for one date

    def apply(self, date: date, assignment_id, action: str, cover_staff_id=None,
              room: str | None = None, notes: str | None = None) -> dict:
        """Cover, cancel or move one lesson on one date (201). 409 `cover_staff_taken` /
        `room_taken` when the teacher or room is in use then, `already_changed` when the
        lesson has a change that day, `holiday` on a holiday."""
        self.require_admin()
        lesson = self._lesson(assignment_id)
        period, week = self._check_date(lesson, date)
        cover_staff = self._cover_staff(lesson, date, action, cover_staff_id)
        room = self._room(action, room)
        dated = DatedChange(assignment_id=lesson.id, staff_id=lesson.staff_id, action=action,
                            cover_staff_id=cover_staff.id if cover_staff else None,
                            room=room, notes=notes, created_by=self.actor.user_id)
        self._write(lesson, date, dated, week)
        entry = self._entry(lesson, date, dated)
        self.audit(f"dated_{action}", "timetable_lesson", lesson.id,
                   after={"date": date, **_change_summary(dated)})
        webhooks.emit(self.ctx, "cover.assigned", {
            "date": date, "assignment_id": lesson.id, "action": action,
            "cover_staff_id": dated.cover_staff_id, "room": room})
        self._announce(lesson, period, date, dated, cover_staff)
        return entry

    def _lesson(self, assignment_id) -> Assignment:
        lesson = find_assignment(self.school_id, object_id(assignment_id, "assignment"))
        if lesson is None:
            raise ValidationFailed("assignment_id is not a lesson of this school.",
                                   {"assignment_id": ["No such lesson."]})
        return lesson

    def _check_date(self, lesson: Assignment, day: date) -> tuple[Period, str | None]:
        """The lesson's period and the rotation week of `day`, when the lesson runs then."""
        settings = settings_for_reading(self.school_id)
        if day.weekday() != lesson.day_of_week:
            raise ValidationFailed(
                f"The lesson is on {DAY_NAMES[lesson.day_of_week]}s; {day} is a "
                f"{DAY_NAMES[day.weekday()]}.", {"date": ["Not a day of this lesson."]})
        week = rotation_week(calendar_for_reading(self.school_id), day)
        if not runs_in_week(week_marker(lesson), week):
            raise ValidationFailed(f"The lesson runs in week {week_marker(lesson)} only; "
                                   f"{day} is in week {week}.",
                                   {"date": ["Not a week of this lesson."]})
        holiday = holidays_between(self.school_id, day, day).get(day)
        if holiday:
            raise Conflict(f"{day} is a holiday ({holiday}).", code="holiday")
        period = next((p for p in settings.periods
                       if p.id == lesson.period_id and p.is_active), None)
        if period is None:
            raise ValidationFailed("The lesson's period is no longer active.",
                                   {"assignment_id": ["Its period was deleted."]})
        return period, week

    def _cover_staff(self, lesson: Assignment, day: date, action: str, cover_staff_id):
        if action != "cover":
            if cover_staff_id is not None:
                raise ValidationFailed("cover_staff_id goes with action cover only.",
                                       {"cover_staff_id": ["Only with action cover."]})
            return None
        if cover_staff_id is None:
            raise ValidationFailed("Name the cover teacher.",
                                   {"cover_staff_id": ["Required for action cover."]})
        staff = self.member(cover_staff_id, "cover_staff_id", roles={"staff"})
        if staff.id == lesson.staff_id:
            raise ValidationFailed("A teacher does not cover their own lesson.",
                                   {"cover_staff_id": ["The lesson's own teacher."]})
        book = AbsenceBook(absences_between(self.school_id, day, day))
        if book.away(staff.id, day, lesson.period_id, confirmed_only=False):
            raise Conflict(f"{staff.name} is absent then.", code="cover_staff_absent",
                           details={"cover_staff_id": str(staff.id)})
        return staff

    @staticmethod
    def _room(action: str, room: str | None) -> str | None:
        room = " ".join(room.split()) if room else None
        if action == "room" and not room:
            raise ValidationFailed("Name the room.", {"room": ["Required for action room."]})
        if action == "cancel" and room:
            raise ValidationFailed("A cancelled lesson needs no room.",
                                   {"room": ["Not with action cancel."]})
        return room

    def _write(self, lesson: Assignment, day: date, dated: DatedChange, week) -> None:
        """The compare-and-set of the DaySlot, then the re-check of the weekly slot (see the
        module docstring): a weekly booking that slipped in takes the change back."""
        def plan(document: dict) -> dict:
            changes = DaySlot._from_son(document).changes
            _check_fits(dated, changes, self._weekly(lesson), week)
            return {"$push": {"changes": dated.to_mongo()}}

        self._change_day_slot(day, lesson.period_id, plan)
        try:
            after = DaySlot._from_son(day_slots().find_one(
                {"school_id": self.school_id, "date": as_datetime(day),
                 "period_id": lesson.period_id}))
            _check_fits(dated, [c for c in after.changes
                                if c.assignment_id != dated.assignment_id],
                        self._weekly(lesson), week)
        except Conflict:
            self._take_back(day, lesson)
            raise

    def _weekly(self, lesson: Assignment) -> list[Assignment]:
        found = slots().find_one({"school_id": self.school_id,
                                  "day_of_week": lesson.day_of_week,
                                  "period_id": lesson.period_id})
        return slot_from(found).placed() if found else []

    def _change_day_slot(self, day: date, period_id, plan) -> dict:
        where = {"date": as_datetime(day), "period_id": period_id}
        try:
            return change(day_slots(), self.school_id, where, plan, what="day's slot")[1]
        except NotFound:
            try:
                day_slots().update_one({"school_id": self.school_id, **where},
                                       {"$setOnInsert": {"changes": [], "version": 0,
                                                         "created_at": utcnow()}},
                                       upsert=True)
            except DuplicateKeyError:  # a parallel request created it: what we wanted
                pass
        return change(day_slots(), self.school_id, where, plan, what="day's slot")[1]

    def _take_back(self, day: date, lesson: Assignment) -> DatedChange | None:
        """Remove the lesson's change on that date; answer it (None when it had none)."""
        removed = []

        def plan(document: dict) -> dict | None:
            changes = DaySlot._from_son(document).changes
            removed[:] = [c for c in changes if c.assignment_id == lesson.id]
            if not removed:
                return None
            return {"$set": {"changes": [c.to_mongo() for c in changes
                                         if c.assignment_id != lesson.id]}}

        try:
            change(day_slots(), self.school_id,
                   {"date": as_datetime(day), "period_id": lesson.period_id}, plan,
                   what="day's slot")
        except NotFound:
            return None
        return removed[0] if removed else None

    def undo(self, date: date, assignment_id) -> None:
        """Put the lesson back as the weekly pattern has it on that date (uncovered when its
        teacher is absent); a cover teacher is told they are no longer needed."""
        self.require_admin()
        lesson = find_assignment(self.school_id, object_id(assignment_id, "lesson"))
        if lesson is None:
            raise NotFound(f"No lesson with id {assignment_id!r}.")
        removed = self._take_back(date, lesson)
        if removed is None:
            raise NotFound(f"The lesson has no change on {date}.")
        self.audit(f"undo_dated_{removed.action}", "timetable_lesson", lesson.id,
                   before={"date": date, **_change_summary(removed)})
        if removed.cover_staff_id:
            settings = settings_for_reading(self.school_id)
            label = next((period_label(p) for p in settings.periods
                          if p.id == lesson.period_id), "a period")
            self.notify(removed.cover_staff_id, "timetable_cover",
                        f"You no longer cover {label} on {date}.",
                        {"assignment_id": str(lesson.id), "date": str(date)})

    @staticmethod
    def _entry(lesson: Assignment, day: date, dated: DatedChange) -> dict:
        return {"date": day, "assignment_id": lesson.id, "staff_id": lesson.staff_id,
                "period_id": lesson.period_id, "classes": lesson.classes,
                "action": dated.action, "status": ACTION_STATUS[dated.action],
                "cover_staff_id": dated.cover_staff_id, "room": dated.room,
                "notes": dated.notes, "created_at": dated.created_at}

    def _announce(self, lesson: Assignment, period: Period, day: date, dated: DatedChange,
                  cover_staff: User | None) -> None:
        """The lesson's teacher and the cover teacher hear of it, the period named."""
        when = f"{period_label(period)} on {DAY_NAMES[day.weekday()]} {day}"
        classes = ", ".join(c.class_id for c in lesson.classes) or "your lesson"
        data = {"assignment_id": str(lesson.id), "date": str(day),
                "period_id": str(lesson.period_id), "action": dated.action}
        if dated.action == "cover":
            self.notify(cover_staff.id, "timetable_cover",
                        f"Please cover {classes} in {when}"
                        + (f", room {dated.room}." if dated.room else "."), data)
            self.notify(lesson.staff_id, "timetable_cover",
                        f"{cover_staff.name} covers {classes} in {when}.", data)
        elif dated.action == "cancel":
            self.notify(lesson.staff_id, "timetable_cover",
                        f"{classes} in {when} is cancelled.", data)
        else:
            self.notify(lesson.staff_id, "timetable_cover",
                        f"{classes} in {when} moves to room {dated.room}.", data)


def _check_fits(dated: DatedChange, changes: list[DatedChange], weekly: list[Assignment],
                week) -> None:
    """The rules of one (date, period): one change per lesson, a cover teacher free (not
    teaching, not covering), a room free."""
    if any(c.assignment_id == dated.assignment_id for c in changes):
        raise Conflict("The lesson already has a change on that date; undo it first.",
                       code="already_changed",
                       details={"assignment_id": str(dated.assignment_id)})
    use = SlotUse.of(weekly, changes, week, besides=dated.assignment_id)
    if dated.cover_staff_id and dated.cover_staff_id in use.teaching:
        raise Conflict("The cover teacher is teaching or covering in that period then.",
                       code="cover_staff_taken",
                       details={"cover_staff_id": str(dated.cover_staff_id)})
    if dated.room and booking_key(dated.room) in use.rooms:
        raise Conflict(f"Room {dated.room!r} is in use in that period then.", code="room_taken",
                       details={"room": dated.room,
                                "assignment_id": str(use.rooms[booking_key(dated.room)])})


def _change_summary(dated: DatedChange) -> dict:
    return {"action": dated.action, "staff_id": dated.staff_id,
            "cover_staff_id": dated.cover_staff_id, "room": dated.room, "notes": dated.notes}
