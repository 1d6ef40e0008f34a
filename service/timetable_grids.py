"""The week grid of a class or of a room: every working day x every active period, with the
lessons that teach that class (or use that room) in each slot.

Classes and rooms are matched as the booking rules match them (`booking_key`: case and
spaces aside), which the database cannot compare, so a grid reads the school's slots in one
query and keeps the lessons that book the key: settings, slots and staff names, three round
trips at any data size.

With `?date=` the grid is that date's week (service/timetable_dated.py does the same for a
staff member): each day gets its date, rotation week and holiday; lessons of the other A/B
week leave; each lesson shows its dated change (cover, cancelled, room move), and a room's
grid gains the lessons moved into it that day and loses those moved out. Three more round
trips (calendar, holidays, the week's changes).
"""

from __future__ import annotations

from datetime import date as Date
from datetime import timedelta

from documents.accounts import User
from documents.timetable import Assignment, Period, booking_key, booking_keys
from service.base import SchoolService
from service.calendar import (
    calendar_for_reading,
    holidays_between,
    monday_of,
    rotation_week,
    runs_in_week,
)
from service.errors import ValidationFailed
from service.timetable import settings_for_reading
from service.timetable_cover import day_changes, week_marker
from service.timetable_slots import assignments_of, slots

BATCH = 10000


class TimetableGrids(SchoolService):
    """Class and room grids."""

    def class_grid(self, class_id: str, date: Date | None = None) -> dict:
        return {"class_id": class_id, **self._grid("class", class_id, date)}

    def room_grid(self, room: str, date: Date | None = None) -> dict:
        return {"room": room, **self._grid("room", room, date)}

    def _grid(self, kind: str, value: str, date: Date | None) -> dict:
        key = booking_key(value)
        if not key:
            raise ValidationFailed(f"A {kind} key must not be blank.", {kind: ["Blank."]})
        settings = settings_for_reading(self.school_id)
        periods = sorted((p for p in settings.periods if p.is_active),
                         key=lambda p: p.period_number)
        every = self._lessons()
        week = _DatedWeek(self.school_id, date, kind, key, every) if date else None
        lessons = [a for a in every if (kind, key) in booking_keys(a.classes)
                   or (week and week.moved_in(a))]
        names = self._staff_names({a.staff_id for a in lessons})
        by_slot = {}
        for lesson in lessons:
            lesson.staff_name = names.get(lesson.staff_id)
            by_slot.setdefault((lesson.day_of_week, lesson.period_id), []).append(lesson)
        days = []
        for day in settings.working_days:
            row = {"day_of_week": day, "slots": [
                self._slot(period, by_slot.get((day, period.id), [])) for period in periods]}
            days.append(week.dated(row) if week else row)
        return {"key": key, "date": date, "periods": periods, "days": days}

    def _lessons(self) -> list[Assignment]:
        return assignments_of(slots().find(
            {"school_id": self.school_id, "assignments": {"$ne": []}}).batch_size(BATCH))

    def _staff_names(self, staff_ids) -> dict:
        if not staff_ids:
            return {}
        return {u.id: u.name for u in User.objects.for_school(self.school_id).filter(
            id__in=list(staff_ids)).only("id", "name")}

    @staticmethod
    def _slot(period: Period, lessons: list[Assignment]) -> dict:
        lessons = sorted(lessons, key=lambda a: str(a.id))
        return {"period_id": period.id, "period_number": period.period_number,
                "period_name": period.period_name, "start_time": period.start_time,
                "end_time": period.end_time,
                "status": "assigned" if lessons else "empty",
                "locked": any(a.is_locked for a in lessons),
                "assignment": lessons[0] if lessons else None,
                "assignments": lessons}


class _DatedWeek:
    """The week holding a date, read once: rotation, holidays and every dated change."""

    def __init__(self, school_id, day: Date, kind: str, key: str, lessons):
        self.monday = monday_of(day)
        sunday = self.monday + timedelta(days=6)
        self.kind, self.key = kind, key
        self.calendar = calendar_for_reading(school_id)
        self.holidays = holidays_between(school_id, self.monday, sunday)
        self.changes = {(when, period_id, change.assignment_id): change
                        for (when, period_id), found in day_changes(
                            school_id, self.monday, sunday).items() for change in found}
        self.lessons = {a.id: a for a in lessons}

    def date_of(self, day_of_week: int) -> Date:
        return self.monday + timedelta(days=day_of_week)

    def change_of(self, lesson: Assignment):
        return self.changes.get((self.date_of(lesson.day_of_week), lesson.period_id, lesson.id))

    def moved_in(self, lesson: Assignment) -> bool:
        """A lesson moved into this room for its date of the week."""
        change = self.change_of(lesson)
        return self.kind == "room" and change is not None and bool(change.room) \
            and booking_key(change.room) == self.key

    def moved_out(self, lesson: Assignment) -> bool:
        change = self.change_of(lesson)
        return self.kind == "room" and change is not None and bool(change.room) \
            and booking_key(change.room) != self.key

    def dated(self, row: dict) -> dict:
        when = self.date_of(row["day_of_week"])
        week = rotation_week(self.calendar, when)
        holiday = self.holidays.get(when)
        return {**row, "date": when, "week": week, "holiday": holiday,
                "slots": [self._slot(slot, week, holiday) for slot in row["slots"]]}

    def _slot(self, slot: dict, week, holiday) -> dict:
        kept = [] if holiday else [
            a for a in slot["assignments"]
            if runs_in_week(week_marker(a), week) and not self.moved_out(a)]
        changes = [self._change(a, self.change_of(a)) for a in kept if self.change_of(a)]
        return {**slot, "status": "holiday" if holiday else
                ("assigned" if kept else "empty"),
                "locked": any(a.is_locked for a in kept),
                "assignment": kept[0] if kept else None, "assignments": kept,
                "changes": changes}

    @staticmethod
    def _change(lesson: Assignment, change) -> dict:
        return {"assignment_id": lesson.id, "action": change.action,
                "cover_staff_id": change.cover_staff_id, "room": change.room,
                "notes": change.notes}
