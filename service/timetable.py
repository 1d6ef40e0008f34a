"""The timetable's setup: settings, periods and department permissions, plus the periods
importer. The settings document holds the periods, so every change of them is one
compare-and-set on its version (service.aggregates.change) that re-checks the period rules.

Assignments live in service/timetable_assignments.py (their slot aggregate in
service/timetable_slots.py), alteration requests in service/timetable_alterations.py, the
grid, exports and the conflicts report in service/timetable_exports.py.
"""

from __future__ import annotations

from bson import ObjectId
from mongoengine.errors import NotUniqueError
from pymongo.errors import DuplicateKeyError

from documents.accounts import User
from documents.base import utcnow
from documents.timetable import DepartmentPermission, Period, TimetableSettings
from service import audit, preconditions
from service.aggregates import change
from service.base import SchoolService
from service.errors import Conflict, NotFound, ValidationFailed
from service.ids import object_id
from service.imports import CREATED, REJECTED, UNCHANGED, UPDATED, Row, RowResult
from service.pagination import Page, paginate, paginate_list
from service.timetable_slots import change_slot, slots

MODULE = "timetable"
SETTINGS_KIND = "timetable-settings"  # the settings' ETag: api/etags.py `versioned(kind=...)`
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
PERIOD_FIELDS = ("period_number", "period_name", "start_time", "end_time")


def minutes_of(time_of_day: str) -> int:
    hours, mins = time_of_day.split(":")
    return int(hours) * 60 + int(mins)


def time_of(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def overlaps(a: Period, b: Period) -> bool:
    return (minutes_of(a.start_time) < minutes_of(b.end_time)
            and minutes_of(b.start_time) < minutes_of(a.end_time))


def settings_for_reading(school_id) -> TimetableSettings:
    """The school's settings (one round trip); defaults, unsaved, when it has none yet."""
    return (TimetableSettings.objects.for_school(school_id).first()
            or TimetableSettings(school_id=school_id))


def slot_label(school_id, day_of_week: int, period_id) -> str:
    """How people name a slot: "Monday, Period 3, 09:40–10:25" (one round trip)."""
    period = next((p for p in settings_for_reading(school_id).periods if p.id == period_id),
                  None)
    if period is None:
        return f"{DAY_NAMES[day_of_week]}, a removed period"
    return (f"{DAY_NAMES[day_of_week]}, Period {period.period_number}, "
            f"{period.start_time}\u2013{period.end_time}")


def bell_schedule(first_start: int, count: int, length: int, pauses: dict[int, int]
                  ) -> list[tuple[int, int]]:
    """(start, end) in minutes of `count` periods of `length` minutes from `first_start`,
    each right after the one before but for the break `pauses[n]` after period n (1 = the
    first); 422 when the last would end after midnight."""
    times, start = [], first_start
    for number in range(1, count + 1):
        times.append((start, start + length))
        start += length + pauses.get(number, 0)
    if times and times[-1][1] > 24 * 60:
        raise ValidationFailed("The schedule runs past midnight.",
                               {"count": ["Too many periods for one day."]})
    return times


def period_summary(period: Period) -> dict:
    return {"id": period.id, "period_number": period.period_number,
            "period_name": period.period_name, "start_time": period.start_time,
            "end_time": period.end_time, "is_active": period.is_active}


class PeriodRules:
    """Checks a whole period list: numbers unique and times disjoint among active periods."""

    @staticmethod
    def check_times(start_time: str, end_time: str) -> None:
        if minutes_of(end_time) <= minutes_of(start_time):
            raise ValidationFailed("end_time must be after start_time.",
                                   {"end_time": ["Must be after start_time."]})

    @staticmethod
    def check_fits(candidate: Period, periods: list[Period]) -> None:
        for other in periods:
            if other.id == candidate.id or not other.is_active:
                continue
            if other.period_number == candidate.period_number:
                raise Conflict(f"Period number {candidate.period_number} is taken.",
                               code="period_number_taken",
                               details={"period_number": candidate.period_number,
                                        "period_id": str(other.id)})
            if overlaps(candidate, other):
                raise Conflict(f"The time overlaps period {other.period_number} "
                               f"({other.start_time}-{other.end_time}).",
                               code="period_overlap", details={"period_id": str(other.id)})


class TimetableSetup(SchoolService):
    """Settings, periods and department permissions (admins change them)."""

    def settings(self) -> TimetableSettings:
        return settings_for_reading(self.school_id)

    def update_settings(self, **changes) -> TimetableSettings:
        self.require_admin()
        if "working_days" in changes:
            changes["working_days"] = sorted(set(changes["working_days"]))
        before = {}

        def apply(settings):
            # If-Match on the settings (service/preconditions.py): checked on every read of
            # the compare-and-set, so a lost race answers 412
            preconditions.check(preconditions.resource_id(SETTINGS_KIND, self.school_id),
                                settings.version)
            before.update({name: settings[name] for name in changes})
            if "working_days" in changes:
                self._check_days_unused(set(settings.working_days) - set(changes["working_days"]))
            return changes, None

        self._write_settings(apply)
        after = TimetableSettings.objects.for_school(self.school_id).get()
        self.audit("update_settings", "timetable_settings", after.id, before=before,
                   after=changes)
        return after

    def _check_days_unused(self, removed: set[int]) -> None:
        """A working day can go only once no assignment is left on it: they would vanish
        from every grid while still booking their staff, classes and rooms."""
        if not removed:
            return
        left = sum(len(slot["assignments"]) for slot in slots().find(
            {"school_id": self.school_id, "day_of_week": {"$in": sorted(removed)},
             "assignments": {"$ne": []}}, {"assignments.id": 1}))
        if left:
            names = ", ".join(DAY_NAMES[day] for day in sorted(removed))
            raise Conflict(f"{left} assignment(s) are still on {names}; move or delete them "
                           f"before removing the day.", code="day_in_use",
                           details={"days": sorted(removed), "assignments": left})

    def list_periods(self, page: int = 1, page_size: int = 50) -> Page:
        active = [p for p in self.settings().periods if p.is_active]
        return paginate_list(sorted(active, key=lambda p: p.period_number), page, page_size)

    def create_period(self, period_number: int, period_name: str, start_time: str,
                      end_time: str | None = None) -> Period:
        self.require_admin()

        def add(settings):
            end = end_time or time_of(minutes_of(start_time) + settings.default_period_duration)
            PeriodRules.check_times(start_time, end)
            period = Period(id=ObjectId(), period_number=period_number, period_name=period_name,
                            start_time=start_time, end_time=end,
                            duration_minutes=minutes_of(end) - minutes_of(start_time))
            PeriodRules.check_fits(period, settings.periods)
            return {"periods": settings.periods + [period]}, period

        period = self._write_settings(add)
        self.audit("create", "timetable_period", period.id, after=period_summary(period))
        return period

    def update_period(self, period_id, **changes) -> Period:
        self.require_admin()
        wanted = object_id(period_id, "period")
        before = {}

        def edit(settings):
            current = self._active_period(settings, wanted, period_id)
            before.update(period_summary(current))
            fields = {name: changes.get(name, current[name]) for name in PERIOD_FIELDS}
            PeriodRules.check_times(fields["start_time"], fields["end_time"])
            updated = Period(id=current.id, created_at=current.created_at, **fields,
                             duration_minutes=(minutes_of(fields["end_time"])
                                               - minutes_of(fields["start_time"])))
            PeriodRules.check_fits(updated, settings.periods)
            return {"periods": [updated if p.id == wanted else p for p in settings.periods]}, \
                updated

        period = self._write_settings(edit)
        self.audit("update", "timetable_period", period.id, before=before,
                   after=period_summary(period))
        return period

    def delete_period(self, period_id, cascade: bool = False) -> None:
        """Soft delete, never leaving lessons behind in a period no grid shows: 409
        `period_in_use` while it has lessons, or with `cascade` those lessons end (each
        audited). The period and its slots are two aggregates: the period goes first, then
        its lessons are read again; a booking adds its lesson first, then reads the period
        (timetable_assignments.check_period_kept). So one of two racing writers always sees
        the other: a lesson booked in between puts the period back (409) or, with cascade,
        ends too; a booking that sees the period gone takes its lesson back."""
        self.require_admin()
        wanted = object_id(period_id, "period")
        if not cascade:
            self._check_period_unused(wanted)
        period = self._set_period_active(wanted, period_id, False)
        try:
            ended = end_lessons_of_period(self, wanted) if cascade else \
                self._check_period_unused(wanted)
        except Conflict:
            self._set_period_active(wanted, period_id, True)
            raise
        self.audit("delete", "timetable_period", period.id, before=period_summary(period),
                   after={"lessons_ended": ended or 0})

    def _set_period_active(self, wanted, period_id, active: bool) -> Period:
        def switch(settings):
            current = next((p for p in settings.periods
                            if p.id == wanted and p.is_active != active), None)
            if current is None:
                raise NotFound(f"No period with id {period_id!r}.")
            if active:
                PeriodRules.check_fits(current, settings.periods)
            current.is_active = active
            current.updated_at = utcnow()
            return {"periods": settings.periods}, current

        return self._write_settings(switch)

    def _check_period_unused(self, period_id) -> None:
        lessons = sum(len(slot["assignments"]) for slot in slots().find(
            {"school_id": self.school_id, "period_id": period_id, "assignments": {"$ne": []}},
            {"assignments.id": 1}))
        if lessons:
            raise Conflict(f"{lessons} lesson(s) are in this period; move or delete them, or "
                           f"delete with ?cascade=true to end them.", code="period_in_use",
                           details={"assignments": lessons})

    def generate_periods(self, first_start: str, count: int = 8, duration: int | None = None,
                         breaks: list[dict] | None = None) -> list[Period]:
        """A bell schedule: `count` periods of `duration` minutes (the school's default when
        absent) from `first_start`, back to back but for the breaks given after some
        periods, numbered after the last active period. One write of the settings: all of
        them or none (409 when one overlaps a period the school has)."""
        self.require_admin()
        pauses = {b["after_period"]: b["minutes"] for b in breaks or []}

        def add(settings):
            length = duration or settings.default_period_duration
            numbers = [p.period_number for p in settings.periods if p.is_active]
            first_number = max(numbers, default=0) + 1
            times = bell_schedule(minutes_of(first_start), count, length, pauses)
            made = [Period(id=ObjectId(), period_number=first_number + offset,
                           period_name=f"Period {first_number + offset}",
                           start_time=time_of(start), end_time=time_of(end),
                           duration_minutes=length)
                    for offset, (start, end) in enumerate(times)]
            for period in made:
                PeriodRules.check_fits(period, settings.periods + made)
            return {"periods": settings.periods + made}, made

        made = self._write_settings(add)
        audit.record_many([audit.audit_event(self.actor, self.school_id, "generate",
                                             "timetable_period", p.id, None, period_summary(p))
                           for p in made])
        return made

    @staticmethod
    def _active_period(settings, wanted, period_id) -> Period:
        for period in settings.periods:
            if period.id == wanted and period.is_active:
                return period
        raise NotFound(f"No period with id {period_id!r}.")

    def _write_settings(self, apply):
        return write_settings(self.school_id, apply)

    def department_permissions(self) -> list[dict]:
        """Every department of the school (from its people and its stored permissions) with
        what it may do; absent permissions mean allowed."""
        stored = {p.department: p for p in DepartmentPermission.objects.for_school(self.school_id)}
        people = User.objects.for_school(self.school_id).filter(
            department__ne=None, is_active=True).distinct("department")
        names = sorted({name for name in people if name} | set(stored))
        return [self._permission_row(name, stored.get(name)) for name in names]

    @staticmethod
    def _permission_row(department: str, stored: DepartmentPermission | None) -> dict:
        return {"department": department,
                "allow_alterations": stored.allow_alterations if stored else True,
                "allow_inbound": stored.allow_inbound if stored else True,
                "updated_at": stored.updated_at if stored else None}

    def set_department_permission(self, department: str, **flags) -> dict:
        """For a department some user of the school belongs to, stored under the spelling
        its people have (422 otherwise: a typo must not lock a phantom department)."""
        self.require_admin()
        name = real_department(self.school_id, department)
        if name is None:
            raise ValidationFailed(f"No user of this school is in department {department!r}.",
                                   {"department": ["Not a department of this school."]})
        department = name
        before = DepartmentPermission.objects.for_school(self.school_id).filter(
            department=department).first()
        updates = {f"set__{name}": value for name, value in flags.items()}
        try:
            DepartmentPermission.objects.for_school(self.school_id).filter(
                department=department).update_one(upsert=True, set__updated_at=utcnow(),
                                                  **updates)
        except NotUniqueError:  # a parallel upsert inserted it: now it exists, update it
            DepartmentPermission.objects.for_school(self.school_id).filter(
                department=department).update_one(set__updated_at=utcnow(), **updates)
        stored = DepartmentPermission.objects.for_school(self.school_id).get(
            department=department)
        self.audit("set_permission", "timetable_department", department,
                   before=self._permission_row(department, before),
                   after=self._permission_row(department, stored))
        return self._permission_row(department, stored)

    def eligible_targets(self, department: str | None = None, page: int = 1,
                         page_size: int = 50) -> Page:
        """Staff who may receive a request from the caller: active staff, not the caller,
        whose department is not closed to inbound requests."""
        closed = DepartmentPermission.objects.for_school(self.school_id).filter(
            allow_inbound=False).distinct("department")
        staff = User.objects.for_school(self.school_id).filter(
            role="staff", is_active=True, id__ne=self.actor.user_id, department__nin=closed)
        if department:
            staff = staff.filter(department=department)
        return paginate(staff.order_by("name", "id"), page, page_size)


def write_settings(school_id, apply, dry_run: bool = False):
    """Apply `apply(settings) -> (fields to set, result)` as one compare-and-set of the
    settings (created on first use) and answer the result; a writer that lost a race re-reads
    and re-checks, so two parallel writers never both pass the period rules."""
    if dry_run:
        return apply(settings_for_reading(school_id))[1]
    outcome = []

    def plan(document: dict) -> dict | None:
        fields, result = apply(TimetableSettings._from_son(document))
        outcome[:] = [result]
        if not fields:
            return None
        stored = {name: TimetableSettings._fields[name].to_mongo(value)
                  for name, value in fields.items()}
        return {"$set": {**stored, "updated_at": utcnow()}}

    collection = TimetableSettings._get_collection()
    try:
        change(collection, school_id, {}, plan, what="timetable settings")
    except NotFound:
        # no settings yet (or `apply` found no such period: then the retry says so again)
        _create_settings(school_id)
        change(collection, school_id, {}, plan, what="timetable settings")
    return outcome[0]


def _create_settings(school_id) -> None:
    """Insert the default settings unless they exist."""
    defaults = TimetableSettings(school_id=school_id).to_mongo().to_dict()
    defaults.pop("_id", None)
    defaults.pop("school_id")
    try:
        TimetableSettings._get_collection().update_one(
            {"school_id": school_id}, {"$setOnInsert": defaults}, upsert=True)
    except DuplicateKeyError:  # a parallel request created them meanwhile
        pass


def department_key(name: str) -> str:
    """Department names compare without regard to case or surrounding spaces."""
    return " ".join(str(name).split()).casefold()


def real_department(school_id, name: str) -> str | None:
    """The department of the school's users matching `name`, spelled as they have it, or
    None (one round trip)."""
    wanted = department_key(name)
    known = User.objects.for_school(school_id).filter(department__ne=None).distinct(
        "department")
    return next((d for d in sorted(known) if d and department_key(d) == wanted), None)


def department_members(school_id, department: str, besides=None) -> list:
    """The ids of the department's active staff, but `besides`."""
    return list(User.objects.for_school(school_id).filter(
        role="staff", is_active=True, department=department, id__ne=besides).scalar("id"))


def permissions_of(school_id, departments) -> dict[str, DepartmentPermission]:
    wanted = [d for d in set(departments) if d]
    if not wanted:
        return {}
    return {p.department: p for p in DepartmentPermission.objects.for_school(school_id).filter(
        department__in=wanted)}


# The nightly import of periods (see service/imports.py for the protocol).

def end_lessons_of_period(service: SchoolService, period_id) -> int:
    """End every lesson in the period (one compare-and-set per working day's slot, so a
    lesson booked meanwhile is seen and ends too), each audited; answers how many."""
    ended = {}  # by id: a plan may run again after a lost race
    for day in sorted(slots().distinct("day_of_week", {"school_id": service.school_id,
                                                       "period_id": period_id})):
        def empty(slot):
            ended.update((a.id, a) for a in slot.placed())
            return {"$set": {"assignments": []}} if slot.assignments else None

        change_slot(service.school_id, day, period_id, empty)
    audit.record_many([audit.audit_event(
        service.actor, service.school_id, "end_with_period", "timetable_assignment", a.id,
        {"staff_id": a.staff_id, "day_of_week": a.day_of_week, "period_id": a.period_id,
         "classes": [c.to_mongo().to_dict() for c in a.classes]}, None)
        for a in ended.values()])
    return len(ended)


def import_periods(ctx, rows: list[Row], dry_run: bool) -> list[RowResult]:
    """Upsert periods by period_number; rows that break a rule are rejected one by one, the
    accepted ones are written in one conditional update of the period list."""
    events = []

    def apply(settings):
        periods = list(settings.periods)
        events.clear()
        results = [_apply_period_row(ctx, row, periods, events) for row in rows]
        return ({"periods": periods} if events else {}), results

    results = write_settings(ctx.school_id, apply, dry_run=dry_run)
    if not dry_run:
        audit.record_many(events)
    return results


def _apply_period_row(ctx, row: Row, periods: list[Period], events: list) -> RowResult:
    values = row.values
    key = values.get("period_number")
    try:
        number = int(key)
        start, end = values["start_time"], values["end_time"]
        for text in (start, end):
            if len(text) != 5 or text[2] != ":" or not 0 <= minutes_of(text) < 24 * 60:
                raise ValueError(f"{text!r} is not a time of day HH:MM")
        PeriodRules.check_times(start, end)
    except (ValueError, KeyError, TypeError, ValidationFailed) as exc:
        return RowResult(row.line, REJECTED, getattr(exc, "message", str(exc)), key)
    existing = next((p for p in periods if p.is_active and p.period_number == number), None)
    fields = {"period_number": number, "period_name": values["period_name"],
              "start_time": start, "end_time": end,
              "duration_minutes": minutes_of(end) - minutes_of(start)}
    if existing and all(existing[name] == value for name, value in fields.items()):
        return RowResult(row.line, UNCHANGED, key=key)
    candidate = Period(id=existing.id if existing else ObjectId(), **fields)
    try:
        PeriodRules.check_fits(candidate, periods)
    except Conflict as exc:
        return RowResult(row.line, REJECTED, exc.message, key)
    if existing:
        events.append(audit.audit_event(ctx.actor, ctx.school_id, "import_update",
                                        "timetable_period", existing.id,
                                        period_summary(existing), fields))
        for name, value in fields.items():
            existing[name] = value
        existing.updated_at = utcnow()
        return RowResult(row.line, UPDATED, key=key)
    periods.append(candidate)
    events.append(audit.audit_event(ctx.actor, ctx.school_id, "import_create",
                                    "timetable_period", candidate.id, None, fields))
    return RowResult(row.line, CREATED, key=key)


def export_periods(ctx):
    """Active periods as import rows (same columns), ordered by number."""
    active = [p for p in settings_for_reading(ctx.school_id).periods if p.is_active]
    for period in sorted(active, key=lambda p: p.period_number):
        yield {"period_number": str(period.period_number), "period_name": period.period_name,
               "start_time": period.start_time, "end_time": period.end_time}
