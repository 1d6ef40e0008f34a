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
from service import audit
from service.aggregates import change
from service.base import SchoolService
from service.errors import Conflict, NotFound, ValidationFailed
from service.ids import object_id
from service.imports import CREATED, REJECTED, UNCHANGED, UPDATED, Row, RowResult
from service.pagination import Page, paginate, paginate_list
from service.timetable_slots import slots

MODULE = "timetable"
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

    def delete_period(self, period_id) -> None:
        """Soft delete: assignments keep their period, the grid stops showing it."""
        self.require_admin()
        wanted = object_id(period_id, "period")

        def deactivate(settings):
            current = self._active_period(settings, wanted, period_id)
            current.is_active = False
            current.updated_at = utcnow()
            return {"periods": settings.periods}, current

        period = self._write_settings(deactivate)
        self.audit("delete", "timetable_period", period.id, before=period_summary(period))

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
        self.require_admin()
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


def permissions_of(school_id, departments) -> dict[str, DepartmentPermission]:
    wanted = [d for d in set(departments) if d]
    if not wanted:
        return {}
    return {p.department: p for p in DepartmentPermission.objects.for_school(school_id).filter(
        department__in=wanted)}


# The nightly import of periods (see service/imports.py for the protocol).

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
