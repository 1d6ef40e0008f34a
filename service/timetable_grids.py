"""The week grid of a class or of a room: every working day x every active period, with the
lessons that teach that class (or use that room) in each slot.

Classes and rooms are matched as the booking rules match them (`booking_key`: case and
spaces aside), which the database cannot compare, so a grid reads the school's slots in one
query (only the fields a grid shows) and keeps the lessons that book the key: two round
trips (settings, slots) plus one for the staff names, at any data size.
"""

from __future__ import annotations

from datetime import date as Date
from datetime import timedelta

from documents.accounts import User
from documents.timetable import Assignment, Period, booking_key, booking_keys
from service.base import SchoolService
from service.errors import ValidationFailed
from service.timetable import settings_for_reading
from service.timetable_slots import assignments_of, slots

BATCH = 10000


def week_dates(day: Date) -> dict[int, Date]:
    """day_of_week -> the date of that weekday in the week (Monday first) holding `day`."""
    monday = day - timedelta(days=day.weekday())
    return {offset: monday + timedelta(days=offset) for offset in range(7)}


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
        lessons = [a for a in self._lessons() if (kind, key) in booking_keys(a.classes)]
        names = self._staff_names({a.staff_id for a in lessons})
        by_slot = {}
        for lesson in lessons:
            lesson.staff_name = names.get(lesson.staff_id)
            by_slot.setdefault((lesson.day_of_week, lesson.period_id), []).append(lesson)
        dates = week_dates(date) if date else {}
        days = [{"day_of_week": day, "date": dates.get(day),
                 "slots": [self._slot(period, by_slot.get((day, period.id), []))
                           for period in periods]}
                for day in settings.working_days]
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
