"""The dated grid of a staff member: the weekly pattern on real dates, with the rotation
week, holidays, their absences and each date's changes (covers given and taken,
cancellations, room moves) applied. The weekly grid is unchanged by dates."""

from __future__ import annotations

from datetime import date, timedelta

from service.base import SchoolService
from service.calendar import (
    calendar_for_reading,
    check_range,
    holidays_between,
    monday_of,
    rotation_week,
    runs_in_week,
)
from service.errors import ValidationFailed
from service.timetable_absences import AbsenceBook, absences_between
from service.timetable_cover import ACTION_STATUS, day_changes, week_marker
from service.timetable_exports import OWN_STATUS, TimetableViews
from service.timetable_slots import SLOT_FIELDS, assignments_of, slots

MAX_DAYS = 62


class DatedTimetable(SchoolService):
    """`GET S/timetable/staff/{id}` with `?date=` (that date's week) or `?from=&to=`."""

    def staff_grid(self, staff_id, date: date | None = None, start: date | None = None,
                   end: date | None = None) -> dict:
        weekly = TimetableViews(self.ctx).staff_grid(staff_id)
        if date is None and start is None and end is None:
            return weekly
        first, last = self._range(date, start, end)
        staff_id = weekly["staff"].id
        calendar = calendar_for_reading(self.school_id)
        holidays = holidays_between(self.school_id, first, last)
        away = AbsenceBook([a for a in absences_between(self.school_id, first, last)
                            if a.staff_id == staff_id])
        changes = day_changes(self.school_id, first, last)
        covered = self._covered_lessons(changes, staff_id)
        own = self._own_lessons(staff_id)
        by_weekday = {d["day_of_week"]: d["slots"] for d in weekly["days"]}
        days = []
        for offset in range((last - first).days + 1):
            day = first + timedelta(days=offset)
            if day.weekday() not in by_weekday:
                continue
            context = _DayOf(day, rotation_week(calendar, day), holidays.get(day), away,
                             changes, covered, own, staff_id)
            days.append({"date": day, "day_of_week": day.weekday(), "week": context.week,
                         "holiday": context.holiday,
                         "slots": [context.slot(s) for s in by_weekday[day.weekday()]]})
        return {**weekly, "from": first, "to": last, "days": days}

    @staticmethod
    def _range(day, start, end) -> tuple[date, date]:
        if day is not None:
            return monday_of(day), monday_of(day) + timedelta(days=6)
        if start is None or end is None:
            raise ValidationFailed("Give from and to together (or date).",
                                   {"from" if start is None else "to": ["Required."]})
        check_range(start, end, "from", "to")
        if (end - start).days >= MAX_DAYS:
            raise ValidationFailed(f"At most {MAX_DAYS} days at once.",
                                   {"to": [f"At most {MAX_DAYS} days after from."]})
        return start, end

    def _own_lessons(self, staff_id) -> dict:
        """(day, period_id) -> the staff member's lessons there: with the A/B rotation a
        slot may hold one for each week (one round trip)."""
        mine = {"$eq": ["$$a.staff_id", staff_id]}
        found = slots().aggregate([
            {"$match": {"school_id": self.school_id, "assignments.staff_id": staff_id}},
            {"$project": {**SLOT_FIELDS, "assignments": {
                "$filter": {"input": "$assignments", "as": "a", "cond": mine}}}}])
        lessons = {}
        for lesson in assignments_of(found):
            lessons.setdefault((lesson.day_of_week, lesson.period_id), []).append(lesson)
        return lessons

    def _covered_lessons(self, changes: dict, staff_id) -> dict:
        """The lessons the staff member covers in the range, by id (one round trip)."""
        ids = sorted({c.assignment_id for found in changes.values() for c in found
                      if c.cover_staff_id == staff_id})
        if not ids:
            return {}
        found = slots().find({"school_id": self.school_id, "assignments.id": {"$in": ids}},
                             {"school_id": 1, "day_of_week": 1, "period_id": 1,
                              "assignments": 1})
        return {a.id: a for a in assignments_of(found) if a.id in set(ids)}


class _DayOf:
    """One date of the grid: turns a weekly slot into its dated form."""

    def __init__(self, day, week, holiday, away: AbsenceBook, changes, covered, own,
                 staff_id):
        self.day, self.week, self.holiday = day, week, holiday
        self.away, self.changes, self.covered = away, changes, covered
        self.own, self.staff_id = own, staff_id

    def slot(self, weekly_slot: dict) -> dict:
        slot = dict(weekly_slot)
        lesson = slot["assignment"]
        if lesson is not None and not runs_in_week(week_marker(lesson), self.week):
            this_week = next((a for a in self.own.get((self.day.weekday(), slot["period_id"]),
                                                      [])
                              if runs_in_week(week_marker(a), self.week)), None)
            slot.update(status=OWN_STATUS[this_week.assignment_type] if this_week else "empty",
                        assignment=this_week)
            lesson = this_week
        here = self.changes.get((self.day, slot["period_id"]), [])
        mine = lesson if lesson is not None and lesson.staff_id == self.staff_id else None
        own_change = next((c for c in here if mine and c.assignment_id == mine.id), None)
        covering = next((c for c in here if c.cover_staff_id == self.staff_id), None)
        if self.holiday:
            status, shown = "holiday", None
        elif covering is not None:
            status, shown = "covering", covering
        elif own_change is not None:
            status, shown = ACTION_STATUS[own_change.action], own_change
        elif mine and self.away.away(self.staff_id, self.day, slot["period_id"]):
            status, shown = "absent", None
        else:
            status, shown = "as_usual", None
        slot["dated_status"] = status
        slot["change"] = self._change(shown)
        return slot

    def _change(self, dated) -> dict | None:
        if dated is None:
            return None
        lesson = self.covered.get(dated.assignment_id)
        return {"action": dated.action, "assignment_id": dated.assignment_id,
                "staff_id": dated.staff_id, "cover_staff_id": dated.cover_staff_id,
                "room": dated.room, "notes": dated.notes,
                "classes": lesson.classes if lesson is not None else None}
