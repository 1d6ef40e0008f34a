"""The school calendar: terms, holidays, the A/B week rotation and the school's own day.

Terms live inside the school's calendar document, so "terms never overlap" is one
compare-and-set of it (service.aggregates.change); a holiday is one document per date (a
unique index says "one per day"). The readers at the bottom (`calendar_for_reading`,
`rotation_week`, `term_of`, `school_today`) are what the timetable-by-date code asks.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bson import ObjectId
from mongoengine.errors import NotUniqueError
from pymongo.errors import DuplicateKeyError

from documents.accounts import School
from documents.base import utcnow
from documents.calendar import Holiday, SchoolCalendar, Term
from service import preconditions
from service.aggregates import change
from service.base import SchoolService
from service.errors import Conflict, NotFound, ValidationFailed
from service.ids import object_id
from service.pagination import Page, paginate, paginate_list

WEEKS = ("A", "B")
SETTINGS_KIND = "calendar-settings"  # its ETag: api/etags.py `versioned(kind=...)`


def as_datetime(day: date) -> datetime:
    """How a date is stored: midnight of it."""
    return datetime(day.year, day.month, day.day)


def as_date(value) -> date:
    return value.date() if isinstance(value, datetime) else value


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def calendar_for_reading(school_id) -> SchoolCalendar:
    """The school's calendar (one round trip); the default, unsaved, when it has none."""
    return (SchoolCalendar.objects.for_school(school_id).first()
            or SchoolCalendar(school_id=school_id))


def rotation_week(calendar: SchoolCalendar, day: date) -> str | None:
    """"A" or "B" for the week of `day` when the school rotates weeks, else None. Weeks
    alternate from `week_a_starts` on, holidays included (a fortnightly timetable does not
    pause for a holiday)."""
    if not calendar.week_rotation or calendar.week_a_starts is None:
        return None
    weeks = (monday_of(day) - monday_of(as_date(calendar.week_a_starts))).days // 7
    return WEEKS[weeks % 2]


def runs_in_week(week_marker: str | None, week: str | None) -> bool:
    """An assignment marked for week A (or B) runs only then; unmarked ones every week."""
    return week_marker is None or week is None or week_marker == week


def term_of(calendar: SchoolCalendar, day: date) -> Term | None:
    moment = as_datetime(day)
    return next((t for t in calendar.terms if t.start_date <= moment <= t.end_date), None)


def school_timezone(school_id) -> ZoneInfo:
    school = School.objects(id=school_id).only("timezone").first()
    return zone(getattr(school, "timezone", None) or "UTC")


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def school_today(school_id) -> date:
    """Today where the school is: what `?date=` means when it is left out."""
    return datetime.now(school_timezone(school_id)).date()


def check_range(start: date, end: date, start_field: str = "start_date",
                end_field: str = "end_date") -> None:
    if end < start:
        raise ValidationFailed(f"{end_field} is before {start_field}.",
                               {end_field: [f"Must not be before {start_field}."]})


def term_summary(term: Term) -> dict:
    return {"id": term.id, "name": term.name, "start_date": as_date(term.start_date),
            "end_date": as_date(term.end_date)}


class SchoolCalendars(SchoolService):
    """Terms, holidays and the rotation setting: everyone reads them, admins change them."""

    # the rotation

    def settings(self) -> SchoolCalendar:
        return calendar_for_reading(self.school_id)

    def update_settings(self, **changes) -> SchoolCalendar:
        self.require_admin()
        before = {}

        def apply(calendar):
            # If-Match on the calendar (its version counts term edits too): 412, on a lost
            # race as well (service/preconditions.py)
            preconditions.check(preconditions.resource_id(SETTINGS_KIND, self.school_id),
                                calendar.version)
            before.update(week_rotation=calendar.week_rotation,
                          week_a_starts=calendar.week_a_starts)
            rotating = changes.get("week_rotation", calendar.week_rotation)
            starts = changes.get("week_a_starts", calendar.week_a_starts)
            if rotating and starts is None:
                raise ValidationFailed("A rotation needs week_a_starts.",
                                       {"week_a_starts": ["Required when week_rotation is on."]})
            if starts is not None and as_date(starts).weekday() != 0:
                raise ValidationFailed("week_a_starts must be a Monday.",
                                       {"week_a_starts": ["Must be a Monday."]})
            return {name: as_datetime(value) if isinstance(value, date) else value
                    for name, value in changes.items()}, None

        write_calendar(self.school_id, apply)
        after = calendar_for_reading(self.school_id)
        self.audit("update_calendar", "school_calendar", after.id, before=before,
                   after=changes)
        return after

    # terms

    def list_terms(self, page: int = 1, page_size: int = 50) -> Page:
        terms = sorted(self.settings().terms, key=lambda t: t.start_date)
        return paginate_list(terms, page, page_size)

    def create_term(self, name: str, start_date: date, end_date: date) -> Term:
        self.require_admin()
        check_range(start_date, end_date)
        term = Term(id=ObjectId(), name=name, start_date=as_datetime(start_date),
                    end_date=as_datetime(end_date))

        def add(calendar):
            self._check_no_overlap(term, calendar.terms)
            return {"terms": calendar.terms + [term]}, term

        write_calendar(self.school_id, add)
        self.audit("create", "term", term.id, after=term_summary(term))
        return term

    def update_term(self, term_id, **changes) -> Term:
        self.require_admin()
        wanted = object_id(term_id, "term")
        before = {}

        def edit(calendar):
            current = self._term(calendar, wanted, term_id)
            preconditions.check(wanted, current.version)  # If-Match: the term's own version
            before.update(term_summary(current))
            start = changes.get("start_date", as_date(current.start_date))
            end = changes.get("end_date", as_date(current.end_date))
            check_range(start, end)
            updated = Term(id=current.id, created_at=current.created_at,
                           version=(current.version or 0) + 1,
                           name=changes.get("name", current.name),
                           start_date=as_datetime(start), end_date=as_datetime(end))
            self._check_no_overlap(updated, calendar.terms)
            return {"terms": [updated if t.id == wanted else t for t in calendar.terms]}, \
                updated

        term = write_calendar(self.school_id, edit)
        self.audit("update", "term", term.id, before=before, after=term_summary(term))
        return term

    def delete_term(self, term_id) -> None:
        self.require_admin()
        wanted = object_id(term_id, "term")
        gone = []

        def remove(calendar):
            gone[:] = [self._term(calendar, wanted, term_id)]
            preconditions.check(wanted, gone[0].version)  # If-Match
            return {"terms": [t for t in calendar.terms if t.id != wanted]}, None

        write_calendar(self.school_id, remove)
        self.audit("delete", "term", wanted, before=term_summary(gone[0]))

    def get_term(self, term_id) -> Term:
        return self._term(self.settings(), object_id(term_id, "term"), term_id)

    @staticmethod
    def _term(calendar, wanted, term_id) -> Term:
        found = next((t for t in calendar.terms if t.id == wanted), None)
        if found is None:
            raise NotFound(f"No term with id {term_id!r}.")
        return found

    @staticmethod
    def _check_no_overlap(term: Term, terms: list[Term]) -> None:
        for other in terms:
            if other.id != term.id and term.start_date <= other.end_date \
                    and other.start_date <= term.end_date:
                raise Conflict(f"The dates overlap term {other.name!r} "
                               f"({as_date(other.start_date)} to {as_date(other.end_date)}).",
                               code="term_overlap", details={"term_id": str(other.id)})

    # holidays

    def list_holidays(self, start: date | None = None, end: date | None = None,
                      page: int = 1, page_size: int = 50) -> Page:
        holidays = Holiday.objects.for_school(self.school_id)
        if start is not None:
            holidays = holidays.filter(date__gte=as_datetime(start))
        if end is not None:
            holidays = holidays.filter(date__lte=as_datetime(end))
        return paginate(holidays.order_by("date"), page, page_size)

    def create_holiday(self, date: date, name: str) -> Holiday:
        self.require_admin()
        try:
            holiday = Holiday(school_id=self.school_id, date=as_datetime(date),
                              name=name).save()
        except NotUniqueError:
            raise Conflict(f"{date} is already a holiday.", code="duplicate",
                           details={"date": str(date)}) from None
        self.audit("create", "holiday", holiday.id, after={"date": date, "name": name})
        return holiday

    def delete_holiday(self, holiday_id) -> None:
        self.require_admin()
        holiday = self.get(Holiday, holiday_id, "holiday")
        Holiday.objects.for_school(self.school_id).filter(id=holiday.id).delete()
        self.audit("delete", "holiday", holiday.id,
                   before={"date": as_date(holiday.date), "name": holiday.name})


def holidays_between(school_id, start: date, end: date) -> dict[date, str]:
    """date -> holiday name, for the days from `start` to `end` (one round trip)."""
    found = Holiday.objects.for_school(school_id).filter(
        date__gte=as_datetime(start), date__lte=as_datetime(end)).only("date", "name")
    return {as_date(h.date): h.name for h in found}


def write_calendar(school_id, apply):
    """Apply `apply(calendar) -> (fields to set, result)` as one compare-and-set of the
    school's calendar (created on first use) and answer the result."""
    outcome = []

    def plan(document: dict) -> dict | None:
        fields, result = apply(SchoolCalendar._from_son(document))
        outcome[:] = [result]
        if not fields:
            return None
        stored = {name: SchoolCalendar._fields[name].to_mongo(value)
                  for name, value in fields.items()}
        return {"$set": {**stored, "updated_at": utcnow()}}

    collection = SchoolCalendar._get_collection()
    try:
        change(collection, school_id, {}, plan, what="school calendar")
    except NotFound as missing:
        if _create_calendar(school_id) is False:
            raise missing
        change(collection, school_id, {}, plan, what="school calendar")
    return outcome[0]


def _create_calendar(school_id) -> bool:
    """Insert the default calendar unless it exists; False when it already did (then the
    NotFound came from `apply`, not from a missing document)."""
    if SchoolCalendar.objects.for_school(school_id).count():
        return False
    defaults = SchoolCalendar(school_id=school_id).to_mongo().to_dict()
    defaults.pop("_id", None)
    defaults.pop("school_id")
    try:
        SchoolCalendar._get_collection().update_one(
            {"school_id": school_id}, {"$setOnInsert": defaults}, upsert=True)
    except DuplicateKeyError:  # a parallel request created it meanwhile
        pass
    return True
