"""The timetable by date in a staff member's iCalendar feed (RFC 5545).

The weekly series stay as they are (service/calendar_ical.py: one per lesson and term); a
date's changes are added beside them, so a calendar app shows the day as it really is:
- the staff member's own lesson cancelled, or given to a cover teacher: an override of that
  occurrence (the UID of the series holding the date, RECURRENCE-ID) with STATUS:CANCELLED;
- their own lesson moved to another room: an override with the new LOCATION;
- a lesson they cover: a single event of its own.
With the A/B rotation a lesson of one week recurs every second week from its first week.
Changes from LOOKBACK_DAYS ago on are listed (older ones matter to no calendar).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from icalendar import Event

from documents.timetable import Assignment, Period
from documents.timetable_cover import DatedChange
from service.calendar import as_datetime, rotation_week
from service.timetable_cover import changes_of, day_slots, period_label, week_marker
from service.timetable_slots import assignments_of, slots

LOOKBACK_DAYS = 35


def first_lesson_day(assignment: Assignment, school_calendar) -> tuple[date, int]:
    """The date of the lesson's first occurrence and its weekly interval (2 for an A/B
    lesson while the school rotates)."""
    created = assignment.created_at.date()
    first = created + timedelta(days=(assignment.day_of_week - created.weekday()) % 7)
    marker = week_marker(assignment)
    week = rotation_week(school_calendar, first)
    if marker is None or week is None:
        return first, 1
    return (first if week == marker else first + timedelta(days=7)), 2


def add_dated_events(calendar, school_id, staff_id, own: list[Assignment], periods: dict,
                     times, stamp: datetime) -> None:
    """Add the overrides and cover events of the staff member (two round trips). `times`
    (service.calendar_ical.LessonTimes) places a date in the school's zone and in a series."""
    since = as_datetime(stamp.date() - timedelta(days=LOOKBACK_DAYS))
    changes = changes_of(day_slots().find({
        "school_id": school_id, "date": {"$gte": since},
        "$or": [{"changes.staff_id": staff_id}, {"changes.cover_staff_id": staff_id}]}))
    lessons = {a.id: a for a in own}
    covered = _covered_lessons(school_id, changes, staff_id)
    for (day, period_id), found in sorted(changes.items(), key=lambda item: item[0][0]):
        period = periods.get(period_id)
        if period is None:
            continue
        for dated in found:
            if dated.cover_staff_id == staff_id and dated.assignment_id in covered:
                calendar.add_component(_cover_event(covered[dated.assignment_id], dated, day,
                                                    period, times, stamp))
            elif dated.assignment_id in lessons:
                lesson = lessons[dated.assignment_id]
                series = times.series_on(lesson, day)
                if series is not None:  # else the lesson does not recur that day
                    calendar.add_component(_override(lesson, series.uid, dated, day, period,
                                                     times, stamp))


def _covered_lessons(school_id, changes: dict, staff_id) -> dict:
    ids = sorted({c.assignment_id for found in changes.values() for c in found
                  if c.cover_staff_id == staff_id})
    if not ids:
        return {}
    found = slots().find({"school_id": school_id, "assignments.id": {"$in": ids}})
    return {a.id: a for a in assignments_of(found) if a.id in set(ids)}


def _summary(lesson: Assignment, period: Period) -> str:
    classes = [f"{c.subject} ({c.class_id})" for c in lesson.classes]
    return lesson.activity_name or ", ".join(classes) or period.period_name


def _timed(event: Event, day: date, period: Period, times, stamp: datetime) -> Event:
    start = times.at(day, period)
    event.add("dtstamp", stamp.replace(tzinfo=UTC))
    event.add("dtstart", start)
    event.add("dtend", start + timedelta(minutes=period.duration_minutes))
    return event


def _override(lesson: Assignment, uid: str, dated: DatedChange, day: date, period: Period,
              times, stamp: datetime) -> Event:
    event = Event()
    event.add("uid", uid)
    event.add("sequence", lesson.version or 0)
    event.add("recurrence-id", times.at(day, period))
    _timed(event, day, period, times, stamp)
    rooms = sorted({c.room_number for c in lesson.classes if c.room_number})
    if dated.action == "room":
        event.add("summary", _summary(lesson, period))
        event.add("location", dated.room)
        event.add("description", f"{period_label(period)}: moved to room {dated.room} "
                                 f"on {day}.")
    else:
        what = "Cancelled" if dated.action == "cancel" else "Covered by a colleague"
        event.add("status", "CANCELLED")
        event.add("summary", f"{what}: {_summary(lesson, period)}")
        if rooms:
            event.add("location", ", ".join(rooms))
    return event


def _cover_event(lesson: Assignment, dated: DatedChange, day: date, period: Period,
                 times, stamp: datetime) -> Event:
    event = Event()
    event.add("uid", f"cover-{lesson.id}-{day.isoformat()}@rota")
    _timed(event, day, period, times, stamp)
    event.add("summary", f"Cover: {_summary(lesson, period)}")
    rooms = [dated.room] if dated.room else sorted(
        {c.room_number for c in lesson.classes if c.room_number})
    if rooms:
        event.add("location", ", ".join(rooms))
    lines = [f"{period_label(period)}: covering on {day}."]
    if dated.notes:
        lines.append(dated.notes)
    event.add("description", "\n".join(lines))
    return event
