"""Who could cover a lesson, ranked (service/timetable_cover_ranking.py), and the fairness
counter: covers per staff member in a term, counted from the dated changes in one
aggregation. Both read a constant number of times whatever the school's size."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

from documents.accounts import User
from documents.timetable import booking_key
from service.base import SchoolService
from service.calendar import (
    calendar_for_reading,
    monday_of,
    school_today,
    term_of,
)
from service.errors import NotFound, ValidationFailed
from service.ids import field_object_id, object_id
from service.timetable_absences import cover_settings_for_reading
from service.timetable_cover import DayContext, SlotUse, dates_from, day_changes, day_slots
from service.timetable_cover_ranking import Candidate, Limits, rank, run_length
from service.timetable_slots import assignments_of, find_assignment, slots


def covers_between(school_id, start: date | None, end: date | None) -> dict:
    """cover staff id -> number of covers given from `start` to `end` (one aggregation)."""
    rows = day_slots().aggregate([
        {"$match": {"school_id": school_id, **dates_from(start, end)}},
        {"$unwind": "$changes"},
        {"$match": {"changes.action": "cover"}},
        {"$group": {"_id": "$changes.cover_staff_id", "covers": {"$sum": 1}}},
    ])
    return {row["_id"]: row["covers"] for row in rows}


def active_staff(school_id) -> list[User]:
    return list(User.objects.for_school(school_id).filter(role="staff", is_active=True)
                .only("id", "name", "department").order_by("name", "id"))


class CoverSuggestions(SchoolService):
    """Ranked cover teachers for a lesson, and covers per staff member per term (admins)."""

    def suggestions(self, date: date, assignment_id, period_id=None) -> dict:
        """The staff free in the lesson's slot on that date (not teaching, not covering, not
        absent, pending absences included), best first, each with its reasons."""
        self.require_admin()
        lesson = find_assignment(self.school_id, object_id(assignment_id, "lesson"))
        if lesson is None:
            raise NotFound(f"No lesson with id {assignment_id!r}.")
        if period_id is not None and field_object_id(period_id, "period_id") != \
                lesson.period_id:
            raise ValidationFailed("period_id is not the lesson's period.",
                                   {"period_id": ["Not the period of this lesson."]})
        if date.weekday() != lesson.day_of_week:
            raise ValidationFailed("The lesson is not on that weekday.",
                                   {"date": ["Not a day of this lesson."]})
        context = DayContext(self.school_id, date)
        settings = cover_settings_for_reading(self.school_id)
        limits = Limits(settings.max_consecutive_periods, settings.daily_cover_cap,
                        settings.weekly_cover_cap)
        staff = active_staff(self.school_id)
        week = day_changes(self.school_id, monday_of(date), monday_of(date) + timedelta(6))
        term = term_of(context.calendar, date)
        term_covers = covers_between(self.school_id, *((as_date_pair(term)) if term
                                                       else (None, None)))
        busy = self._busy_positions(context)
        taken = self._taken(context, lesson)
        teachers_of_class = self._teachers_of(lesson)
        department = next((u.department for u in staff if u.id == lesson.staff_id), None)
        position = self._positions(context)[lesson.period_id]
        candidates = [
            Candidate(staff_id=u.id, name=u.name,
                      teaches_class=u.id in teachers_of_class,
                      same_department=bool(department) and u.department == department,
                      term_covers=term_covers.get(u.id, 0),
                      run_length=run_length(busy.get(u.id, set()), position),
                      covers_today=_count(week, u.id, date),
                      covers_this_week=_count(week, u.id))
            for u in staff if u.id not in taken]
        items = [vars(s) for s in rank(candidates, limits)]
        return {"date": date, "assignment_id": lesson.id, "period_id": lesson.period_id,
                "term": term, "items": items,
                "total": len(items)}

    @staticmethod
    def _positions(context: DayContext) -> dict:
        ordered = sorted(context.periods.values(), key=lambda p: p.period_number)
        return {p.id: index for index, p in enumerate(ordered)}

    def _busy_positions(self, context: DayContext) -> dict:
        """staff id -> the positions of the periods they teach or cover on that date."""
        positions, busy = self._positions(context), defaultdict(set)
        for period_id, position in positions.items():
            for staff_id in self._use(context, period_id).teaching:
                busy[staff_id].add(position)
        return busy

    @staticmethod
    def _use(context: DayContext, period_id, besides=None) -> SlotUse:
        weekly = [a for a in context.lessons if a.period_id == period_id]
        return SlotUse.of(weekly, context.changes.get((context.day, period_id), []),
                          context.week, besides=besides)

    def _taken(self, context: DayContext, lesson) -> set:
        """Who cannot cover: the lesson's teacher, whoever teaches or covers then, whoever
        is away then (confirmed or pending)."""
        return ({lesson.staff_id}
                | self._use(context, lesson.period_id, besides=lesson.id).teaching
                | context.absences.away_staff(context.day, lesson.period_id,
                                              confirmed_only=False))

    def _teachers_of(self, lesson) -> set:
        """Who teaches one of the lesson's classes in the weekly pattern (one round trip)."""
        wanted = {booking_key(c.class_id) for c in lesson.classes}
        if not wanted:
            return set()
        everything = assignments_of(slots().find(
            {"school_id": self.school_id},
            {"school_id": 1, "day_of_week": 1, "period_id": 1,
             "assignments.id": 1, "assignments.staff_id": 1,
             "assignments.classes.class_id": 1, "assignments.classes.subject": 1}))
        return {a.staff_id for a in everything
                if wanted & {booking_key(c.class_id) for c in a.classes}}

    # fairness

    def fairness(self, term_id=None) -> dict:
        """Covers per active staff member in a term (default: the term of today), most
        first."""
        self.require_admin()
        calendar = calendar_for_reading(self.school_id)
        if term_id is not None:
            wanted = field_object_id(term_id, "term_id")
            term = next((t for t in calendar.terms if t.id == wanted), None)
            if term is None:
                raise ValidationFailed("term_id is not a term of this school.",
                                       {"term_id": ["No such term."]})
        else:
            term = term_of(calendar, school_today(self.school_id))
            if term is None:
                raise ValidationFailed("Today is in no term; name one.",
                                       {"term_id": ["Required outside a term."]})
        counts = covers_between(self.school_id, *as_date_pair(term))
        items = [{"staff_id": u.id, "name": u.name, "department": u.department,
                  "covers": counts.get(u.id, 0)} for u in active_staff(self.school_id)]
        items.sort(key=lambda item: (-item["covers"], item["name"], str(item["staff_id"])))
        return {"term": term, "items": items, "total": len(items)}


def as_date_pair(term) -> tuple[date, date]:
    return term.start_date.date(), term.end_date.date()


def _count(week_changes: dict, staff_id, day: date | None = None) -> int:
    return sum(1 for (when, _), changes in week_changes.items() if day is None or when == day
               for c in changes if c.action == "cover" and c.cover_staff_id == staff_id)
