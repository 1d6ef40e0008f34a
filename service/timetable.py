"""The timetable: settings, periods, department permissions, assignments with many classes,
admin overrides and self-allocations, plus the periods importer.

Invariants are kept by the database (see the claim protocol in documents/timetable.py):
one assignment per staff slot (unique index), one claim per class and per room in a slot
(unique index), periods written as one list under the settings' revision lock
(service/timetable_claims.py).
Alteration requests live in service/timetable_alterations.py, the grid, exports and the
conflicts report in service/timetable_exports.py.
"""

from __future__ import annotations

import random
import time

from bson import ObjectId
from mongoengine.errors import NotUniqueError, OperationError

from documents.accounts import User
from documents.base import utcnow
from documents.connection import is_duplicate_key
from documents.timetable import (
    Assignment,
    ClassInfo,
    DepartmentPermission,
    Period,
    TimetableSettings,
    claim_keys,
    claims_for,
)
from service import audit
from service.base import SchoolService
from service.errors import Conflict, Forbidden, NotFound, ValidationFailed
from service.ids import field_object_id, object_id
from service.imports import CREATED, REJECTED, UNCHANGED, UPDATED, Row, RowResult
from service.pagination import Page, paginate, paginate_list
from service.timetable_claims import SlotClaims, revise

MODULE = "timetable"
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
SETTINGS_WRITE_ATTEMPTS = 10
PERIOD_FIELDS = ("period_number", "period_name", "start_time", "end_time")


def minutes_of(time_of_day: str) -> int:
    hours, mins = time_of_day.split(":")
    return int(hours) * 60 + int(mins)


def time_of(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def overlaps(a: Period, b: Period) -> bool:
    return (minutes_of(a.start_time) < minutes_of(b.end_time)
            and minutes_of(b.start_time) < minutes_of(a.end_time))


def stored_settings(school_id) -> TimetableSettings:
    """The school's settings document, created on first use (one round trip when it exists)."""
    found = TimetableSettings.objects.for_school(school_id).first()
    if found is not None:
        return found
    try:
        return TimetableSettings(school_id=school_id).save(force_insert=True)
    except NotUniqueError:  # a parallel request created it first
        return TimetableSettings.objects.for_school(school_id).get()


def settings_for_reading(school_id) -> TimetableSettings:
    """Like `stored_settings` but never writes: defaults when the school has none yet."""
    return (TimetableSettings.objects.for_school(school_id).first()
            or TimetableSettings(school_id=school_id))


def period_summary(period: Period) -> dict:
    return {"id": period.id, "period_number": period.period_number,
            "period_name": period.period_name, "start_time": period.start_time,
            "end_time": period.end_time, "is_active": period.is_active}


def assignment_summary(assignment: Assignment) -> dict:
    return {"staff_id": assignment.staff_id, "period_id": assignment.period_id,
            "day_of_week": assignment.day_of_week, "assignment_type": assignment.assignment_type,
            "classes": [c.to_mongo().to_dict() for c in assignment.classes],
            "is_locked": assignment.is_locked}


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
        if before.get("allow_overlapping_assignments") and not after.allow_overlapping_assignments:
            Assignments(self.ctx).restore_claims()
        return after

    def _check_days_unused(self, removed: set[int]) -> None:
        """A working day can go only once no assignment is left on it: they would vanish
        from every grid while still booking their staff, classes and rooms."""
        if not removed:
            return
        left = Assignment.objects.for_school(self.school_id).filter(
            day_of_week__in=sorted(removed)).count()
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

        def change(settings):
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

        period = self._write_settings(change)
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

    def _write_settings(self, change):
        """Apply `change(settings) -> (fields to set, result)` as the next revision of the
        settings (periods included); re-read and re-check when another writer got there
        first, so two parallel writers never both pass the period rules."""
        return write_settings(self.school_id, change)

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


def write_settings(school_id, change, dry_run: bool = False):
    for _ in range(SETTINGS_WRITE_ATTEMPTS):
        settings = (settings_for_reading if dry_run else stored_settings)(school_id)
        fields, result = change(settings)
        if dry_run or not fields:
            return result
        updates = {f"set__{name}": value for name, value in fields.items()}
        if revise(TimetableSettings, school_id, settings, lambda found, updates=updates:
                  found.update_one(set__updated_at=utcnow(), inc__version=1, **updates)):
            return result
        time.sleep(random.uniform(0.01, 0.05))
    raise Conflict("The timetable settings changed while saving; try again.",
                   code="concurrent_change")


def permissions_of(school_id, departments) -> dict[str, DepartmentPermission]:
    wanted = [d for d in set(departments) if d]
    if not wanted:
        return {}
    return {p.department: p for p in DepartmentPermission.objects.for_school(school_id).filter(
        department__in=wanted)}


class Assignments(SchoolService):
    """Assignments with many classes, overrides and self-allocations."""

    # reading

    def list(self, staff_id=None, day_of_week: int | None = None, period_id=None,
             page: int = 1, page_size: int = 50) -> Page:
        if not self.actor.is_admin:
            if staff_id is not None and str(staff_id) != str(self.actor.user_id):
                raise Forbidden("Staff may only list their own assignments.")
            staff_id = self.actor.user_id
        found = Assignment.objects.for_school(self.school_id)
        if staff_id is not None:
            found = found.filter(staff_id=field_object_id(staff_id, "staff_id"))
        if day_of_week is not None:
            found = found.filter(day_of_week=day_of_week)
        if period_id is not None:
            found = found.filter(period_id=field_object_id(period_id, "period_id"))
        return paginate(found.order_by("day_of_week", "period_id", "staff_id"), page, page_size)

    def get_assignment(self, assignment_id) -> Assignment:
        assignment = self.get(Assignment, assignment_id, "assignment")
        if not self.actor.is_admin and assignment.staff_id != self.actor.user_id:
            raise NotFound(f"No assignment with id {assignment_id!r}.")
        return assignment

    # creating

    def create(self, staff_id, period_id, day_of_week: int, classes: list[dict]) -> Assignment:
        self.require_admin()
        staff = self.member(staff_id, "staff_id", roles={"staff"})
        assignment = Assignment(school_id=self.school_id, staff_id=staff.id,
                                classes=self._class_list(classes), assignment_type="regular")
        created = self._book(assignment, period_id, day_of_week)
        self.audit("create", "timetable_assignment", created.id,
                   after=assignment_summary(created))
        return created

    def self_allocate(self, period_id, day_of_week: int, activity_name: str,
                      description: str | None = None, classes: list[dict] | None = None
                      ) -> Assignment:
        """A staff member fills an empty slot of their own; it is locked at once."""
        self.require_role({"staff"})
        assignment = Assignment(school_id=self.school_id, staff_id=self.actor.user_id,
                                classes=self._class_list(classes or []),
                                assignment_type="self_allocated", is_locked=True,
                                activity_name=activity_name, description=description)
        created = self._book(assignment, period_id, day_of_week)
        self.audit("self_allocate", "timetable_assignment", created.id,
                   after={**assignment_summary(created), "activity_name": activity_name})
        return created

    def _book(self, assignment: Assignment, period_id, day_of_week: int) -> Assignment:
        settings = stored_settings(self.school_id)
        assignment.period_id = self._bookable_period(settings, period_id).id
        assignment.day_of_week = self._working_day(settings, day_of_week)
        assignment.id = ObjectId()
        claims = SlotClaims(self.school_id)
        if not settings.allow_overlapping_assignments:
            claims.insert(claims_for(assignment))
        try:
            assignment.save(force_insert=True)
        except NotUniqueError:
            claims.release_assignment(assignment.id)
            raise Conflict("This staff member already has an assignment in that slot.",
                           code="slot_taken",
                           details={"staff_id": str(assignment.staff_id),
                                    "day_of_week": day_of_week,
                                    "period_id": str(assignment.period_id)}) from None
        except Exception:
            claims.release_assignment(assignment.id)
            raise
        return assignment

    @staticmethod
    def _bookable_period(settings: TimetableSettings, period_id) -> Period:
        wanted = field_object_id(period_id, "period_id")
        for period in settings.periods:
            if period.id == wanted and period.is_active:
                return period
        raise ValidationFailed("period_id is not an active period of this school.",
                               {"period_id": ["Not an active period of this school."]})

    @staticmethod
    def _working_day(settings: TimetableSettings, day_of_week: int) -> int:
        if day_of_week not in settings.working_days:
            raise ValidationFailed("day_of_week is not a working day of this school.",
                                   {"day_of_week": [f"Working days are {settings.working_days}."]})
        return day_of_week

    @staticmethod
    def _class_list(classes: list[dict]) -> list[ClassInfo]:
        seen = set()
        for entry in classes:
            key = claim_keys([ClassInfo(**entry)])
            class_key = next(k for k in key if k[0] == "class")
            if class_key in seen:
                raise ValidationFailed(f"Class {entry['class_id']!r} is listed twice.",
                                       {"classes": ["A class may appear once."]})
            seen.add(class_key)
        return [ClassInfo(**entry) for entry in classes]

    # changing classes

    def add_class(self, assignment_id, **entry) -> Assignment:
        assignment = self._changeable(assignment_id)
        new_class = ClassInfo(**entry)
        if claim_keys([new_class]) & {k for k in claim_keys(assignment.classes)
                                      if k[0] == "class"}:
            raise Conflict(f"Class {new_class.class_id!r} is already in this assignment.",
                           code="class_already_assigned")
        settings = settings_for_reading(self.school_id)
        claims = SlotClaims(self.school_id)
        new_claims = []
        if not settings.allow_overlapping_assignments:
            new_claims = claims_for(assignment,
                                    claim_keys([new_class]) - claim_keys(assignment.classes))
            claims.insert(new_claims)
        classes = list(assignment.classes) + [new_class]
        if not self._set_classes(assignment, classes):
            claims.release(new_claims)
            raise self._changed_meanwhile()
        self.audit("add_class", "timetable_assignment", assignment.id,
                   after=new_class.to_mongo().to_dict())
        return Assignment.objects.for_school(self.school_id).get(id=assignment.id)

    def remove_class(self, assignment_id, class_id: str) -> Assignment:
        assignment = self._changeable(assignment_id)
        wanted = claim_keys([ClassInfo(class_id=class_id, subject="-")])
        remaining = [c for c in assignment.classes if not claim_keys([c]) & wanted]
        if len(remaining) == len(assignment.classes):
            raise NotFound(f"Class {class_id!r} is not in this assignment.")
        removed = [c for c in assignment.classes if c not in remaining]
        if not self._set_classes(assignment, remaining):
            raise self._changed_meanwhile()
        SlotClaims(self.school_id).release_keys(
            assignment.id, claim_keys(assignment.classes) - claim_keys(remaining))
        self.audit("remove_class", "timetable_assignment", assignment.id,
                   before=removed[0].to_mongo().to_dict())
        return Assignment.objects.for_school(self.school_id).get(id=assignment.id)

    def _changeable(self, assignment_id) -> Assignment:
        """Admins change any assignment; staff their own ones that are not locked."""
        assignment = self.get_assignment(assignment_id)
        if not self.actor.is_admin and assignment.is_locked:
            raise Forbidden("This assignment is locked; ask an admin.", code="locked")
        return assignment

    def _set_classes(self, assignment: Assignment, classes: list[ClassInfo]) -> bool:
        return revise(Assignment, self.school_id, assignment, lambda found: found.update_one(
            set__classes=classes, inc__version=1, set__updated_at=utcnow()))

    @staticmethod
    def _changed_meanwhile() -> Conflict:
        return Conflict("The assignment changed meanwhile; reload and try again.",
                        code="assignment_changed")

    # deleting

    def delete(self, assignment_id) -> None:
        self.require_admin()
        self._remove(self.get(Assignment, assignment_id, "assignment"), "delete")

    def delete_self_allocation(self, assignment_id) -> None:
        """Admins only: self-allocations are locked for staff, their own included."""
        assignment = self.get(Assignment, assignment_id, "self-allocation")
        if assignment.assignment_type != "self_allocated":
            raise NotFound(f"No self-allocation with id {assignment_id!r}.")
        if not self.actor.is_admin:
            raise Forbidden("Self-allocations are locked; only an admin can delete them.",
                            code="locked")
        self._remove(assignment, "delete_self_allocation")

    def _remove(self, assignment: Assignment, action: str) -> None:
        # The assignment goes first: claims left behind by a crash are repairable, while a
        # claim removed before its assignment would let a double booking in.
        if not revise(Assignment, self.school_id, assignment, lambda found: found.delete()):
            raise self._changed_meanwhile()
        SlotClaims(self.school_id).release_assignment(assignment.id)
        self.audit(action, "timetable_assignment", assignment.id,
                   before=assignment_summary(assignment))

    def restore_claims(self) -> tuple[list[str], list[str]]:
        """Repair: give every assignment the class and room claims it lacks. Lines saying
        what was restored, and lines naming the double bookings an admin has to resolve
        (they are in the conflicts report too)."""
        if settings_for_reading(self.school_id).allow_overlapping_assignments:
            return [], []
        restored, clashing = SlotClaims(self.school_id).restore_missing()
        if restored:
            self.audit("restore_claims", "timetable_assignment",
                       after={"claims": [c.id for c in restored]})
        return ([f"{c.kind} {c.key!r} claimed again for assignment {c.assignment_id}"
                 for c in restored],
                [f"double booking: assignment {c.assignment_id} teaches {c.kind} {c.key!r} "
                 f"in a slot where another assignment holds it" for c in clashing])

    # override

    def override(self, assignment_id, new_staff_id, notes: str | None = None) -> Assignment:
        """Admins hand an assignment to someone else at once; both staff are told."""
        self.require_admin()
        assignment = self.get(Assignment, assignment_id, "assignment")
        new_staff = self.member(new_staff_id, "new_staff_id", roles={"staff"})
        if new_staff.id == assignment.staff_id:
            raise ValidationFailed("new_staff_id already holds this assignment.",
                                   {"new_staff_id": ["Already holds this assignment."]})
        try:
            moved = revise(Assignment, self.school_id, assignment, lambda found: found.update_one(
                set__staff_id=new_staff.id, set__original_staff_id=assignment.staff_id,
                set__assignment_type="admin_override", set__override_notes=notes,
                unset__swap_request_id=True, inc__version=1, set__updated_at=utcnow()))
        except (NotUniqueError, OperationError) as exc:
            if not is_duplicate_key(exc):
                raise
            raise Conflict("The new staff member already has an assignment in that slot.",
                           code="slot_taken", details={"staff_id": str(new_staff.id)}) from None
        if not moved:
            raise self._changed_meanwhile()
        self._announce_override(assignment, new_staff, notes)
        return Assignment.objects.for_school(self.school_id).get(id=assignment.id)

    def _announce_override(self, assignment: Assignment, new_staff: User, notes) -> None:
        slot = slot_label(assignment)
        data = {"assignment_id": str(assignment.id), "day_of_week": assignment.day_of_week,
                "period_id": str(assignment.period_id)}
        self.notify(assignment.staff_id, "timetable_override",
                    f"An admin has reassigned your {slot} period to {new_staff.name}.", data)
        self.notify(new_staff.id, "timetable_override",
                    f"An admin has assigned you a new period: {slot}.", data)
        self.audit("override", "timetable_assignment", assignment.id,
                   before={"staff_id": assignment.staff_id},
                   after={"staff_id": new_staff.id, "original_staff_id": assignment.staff_id,
                          "override_notes": notes})


def slot_label(assignment: Assignment) -> str:
    return f"{DAY_NAMES[assignment.day_of_week]} (period id {assignment.period_id})"


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
