"""A staff member's timetable as an iCalendar (RFC 5545) calendar in the school's time zone.

One builder for the authenticated export (`GET S/timetable/staff/{id}/calendar.ics`) and the
secret feed URL (`service/calendar_feeds.py`):
- the calendar carries a VTIMEZONE of the school's zone, and every time is local to it with
  TZID (a school on UTC gets RFC 5545's UTC form, `...Z`, which is not floating either);
- a lesson is one weekly series per term it runs in, UID `<lesson id>-<term id>@rota`: from
  its first occurrence in the term, RRULE UNTIL the end of the term's last day, an EXDATE for
  each holiday it falls on. Terms that ended more than LOOKBACK_DAYS ago are left out. A
  school without terms gets one series per lesson, UID `<lesson id>@rota`, until 31 December
  of next year: a bounded horizon that moves once a year (add terms for real end dates);
- SEQUENCE is the lesson's version, which every edit raises, so calendar apps take the edit;
- a date's changes (covers, cancellations, room moves) are RECURRENCE-ID overrides of the
  series holding that date, or events of their own (`service/timetable_dated_ical.py`).
A constant number of round trips whatever the size: the periods, the school calendar, the
holidays, the lessons, the dated changes and the lessons covered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, Timezone

from documents.timetable import Assignment, Period
from service.calendar import as_date, calendar_for_reading, holidays_between
from service.timetable import minutes_of, settings_for_reading
from service.timetable_dated_ical import LOOKBACK_DAYS, add_dated_events, first_lesson_day
from service.timetable_slots import SLOT_FIELDS, assignments_of, slots

ICAL_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
BATCH = 10000  # one round trip for any realistic timetable
DAY_END = time(23, 59, 59)


def lessons_of(school_id, staff_id) -> list[Assignment]:
    """The staff member's own lessons (a slot may hold two of them: weeks A and B), without
    the other staff's lessons of those slots: one round trip, filtered in the database."""
    mine = {"$eq": ["$$a.staff_id", staff_id]}
    return assignments_of(slots().aggregate([
        {"$match": {"school_id": school_id, "assignments.staff_id": staff_id}},
        {"$project": {**SLOT_FIELDS, "assignments": {
            "$filter": {"input": "$assignments", "as": "a", "cond": mine}}}},
    ], batchSize=BATCH))


def new_calendar(title: str) -> Calendar:
    calendar = Calendar()
    calendar.add("prodid", "-//Rota//Timetable//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", title)
    return calendar


@dataclass(frozen=True)
class Span:
    """Where lessons may recur: a term, or the horizon of a school without terms."""

    uid_suffix: str
    start: date
    end: date  # included


@dataclass(frozen=True)
class Series:
    """One weekly series of a lesson: every `interval` weeks from `first` to `last`."""

    uid: str
    first: date
    last: date
    interval: int

    def holds(self, day: date) -> bool:
        return self.first <= day <= self.last \
            and (day - self.first).days % (7 * self.interval) == 0


class LessonTimes:
    """Each lesson's weekly series, and local times in the school's zone."""

    def __init__(self, zone: ZoneInfo, school_calendar, today: date):
        self.zone = zone
        self.school_calendar = school_calendar
        self.spans = self._spans(school_calendar, today)
        self._series: dict = {}

    @staticmethod
    def _spans(school_calendar, today: date) -> list[Span]:
        if not school_calendar.terms:
            return [Span("", date.min, date(today.year + 1, 12, 31))]
        recent = today - timedelta(days=LOOKBACK_DAYS)
        return [Span(f"-{t.id}", as_date(t.start_date), as_date(t.end_date))
                for t in sorted(school_calendar.terms, key=lambda t: t.start_date)
                if as_date(t.end_date) >= recent]

    def series_of(self, lesson: Assignment) -> list[Series]:
        if lesson.id not in self._series:
            first, interval = first_lesson_day(lesson, self.school_calendar)
            found = []
            for span in self.spans:
                start = first_on_or_after(first, interval, span.start)
                if start <= span.end:
                    found.append(Series(f"{lesson.id}{span.uid_suffix}@rota", start, span.end,
                                        interval))
            self._series[lesson.id] = found
        return self._series[lesson.id]

    def series_on(self, lesson: Assignment, day: date) -> Series | None:
        """The series whose occurrence `day` is (None: the lesson does not recur then)."""
        return next((s for s in self.series_of(lesson) if s.holds(day)), None)

    def at(self, day: date, period: Period) -> datetime:
        return datetime.combine(day, time(), tzinfo=self.zone) + timedelta(
            minutes=minutes_of(period.start_time))

    def until(self, series: Series) -> datetime:
        """RFC 5545: with a TZID start, UNTIL is in UTC. The end of the series' last day."""
        return datetime.combine(series.last, DAY_END, tzinfo=self.zone).astimezone(UTC)

    def holiday_range(self, today: date) -> tuple[date, date]:
        """The days whose holidays may be an EXDATE: those of the terms shown, or without
        terms from LOOKBACK_DAYS ago on (older ones matter to no calendar app)."""
        if not self.spans:
            return today, today
        start = self.spans[0].start
        if start == date.min:
            start = today - timedelta(days=LOOKBACK_DAYS)
        return start, max(span.end for span in self.spans)


def first_on_or_after(first: date, interval: int, start: date) -> date:
    """The lesson's first occurrence on or after `start` (same weekday, same A/B week)."""
    if start <= first:
        return first
    step = 7 * interval
    return first + timedelta(days=-(-(start - first).days // step) * step)


def timezone_component(zone: ZoneInfo, first: date, last: date) -> Timezone:
    return Timezone.from_tzinfo(zone, tzid=zone.key, first_date=date(first.year, 1, 1),
                                last_date=date(last.year + 1, 1, 1))


def timetable_calendar(school_id, staff_id, title: str, zone: ZoneInfo,
                       stamp: datetime) -> Calendar:
    """The staff member's lessons, as weekly series per term, and their dated changes."""
    calendar = new_calendar(title)
    today = datetime.now(zone).date()
    periods = {p.id: p for p in settings_for_reading(school_id).periods if p.is_active}
    times = LessonTimes(zone, calendar_for_reading(school_id), today)
    holidays = sorted(holidays_between(school_id, *times.holiday_range(today)))
    own = lessons_of(school_id, staff_id)
    first = today - timedelta(days=LOOKBACK_DAYS)  # the dated changes shown
    for lesson in own:
        period = periods.get(lesson.period_id)
        if period is None:  # a deleted period's lessons are off the timetable
            continue
        for series in times.series_of(lesson):
            calendar.add_component(series_event(lesson, period, series, times, holidays, stamp))
            first = min(first, series.first)
    add_dated_events(calendar, school_id, staff_id, own, periods, times, stamp)
    last = max([today] + [span.end for span in times.spans])
    calendar.subcomponents.insert(0, timezone_component(zone, first, last))
    return calendar


def empty_calendar(title: str, zone: ZoneInfo) -> Calendar:
    """A valid calendar with nothing timed in it (its zone still there for the apps)."""
    calendar = new_calendar(title)
    today = datetime.now(zone).date()
    calendar.add_component(timezone_component(zone, today, today))
    return calendar


def series_event(lesson: Assignment, period: Period, series: Series, times: LessonTimes,
                 holidays: list[date], stamp: datetime) -> Event:
    start = times.at(series.first, period)
    event = Event()
    event.add("uid", series.uid)
    event.add("sequence", lesson.version or 0)
    event.add("dtstamp", stamp.replace(tzinfo=UTC))
    if lesson.updated_at is not None:
        event.add("last-modified", lesson.updated_at.replace(tzinfo=UTC))
    event.add("dtstart", start)
    event.add("dtend", start + timedelta(minutes=period.duration_minutes))
    event.add("rrule", {"freq": "weekly", "byday": [ICAL_DAYS[lesson.day_of_week]],
                        "until": times.until(series),
                        **({"interval": series.interval} if series.interval > 1 else {})})
    skipped = [times.at(day, period) for day in holidays if series.holds(day)]
    if skipped:
        event.add("exdate", skipped)
    describe(event, lesson, period)
    return event


def describe(event: Event, lesson: Assignment, period: Period) -> None:
    classes = [f"{c.subject} ({c.class_id})" for c in lesson.classes]
    event.add("summary", lesson.activity_name or ", ".join(classes) or period.period_name)
    rooms = sorted({c.room_number for c in lesson.classes if c.room_number})
    if rooms:
        event.add("location", ", ".join(rooms))
    lines = [f"{period.period_name}: {period.start_time}-{period.end_time}"]
    lines += [f"{c.class_id}: {c.subject}" + (f", room {c.room_number}" if c.room_number
                                               else "") for c in lesson.classes]
    if lesson.description:
        lines.append(lesson.description)
    event.add("description", "\n".join(lines))
