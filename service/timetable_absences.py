"""Staff absences and the school's cover settings.

Admins record absences (confirmed at once); staff report their own, pending until an admin
confirms them, or confirmed at once when the school's cover settings say so. Confirming is
one update filtered on `status: pending`: of parallel confirmations exactly one wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pymongo.errors import DuplicateKeyError

from documents.accounts import User
from documents.audit import Notification
from documents.base import utcnow
from documents.timetable_cover import Absence, CoverSettings
from service import preconditions
from service.aggregates import update_where
from service.base import SchoolService
from service.calendar import as_date, as_datetime, check_range
from service.errors import Conflict, Forbidden, NotFound, ValidationFailed
from service.ids import field_object_id, object_id
from service.notifications import notify_many
from service.pagination import Page, paginate
from service.timetable import settings_for_reading

MAX_ABSENCE_DAYS = 366


def cover_settings_for_reading(school_id) -> CoverSettings:
    return (CoverSettings.objects.for_school(school_id).first()
            or CoverSettings(school_id=school_id))


def absences_between(school_id, start: date, end: date) -> list[Absence]:
    """Every absence touching the days from `start` to `end` (one round trip)."""
    return list(Absence.objects.for_school(school_id).filter(
        start_date__lte=as_datetime(end), end_date__gte=as_datetime(start)))


@dataclass(frozen=True)
class AbsenceBook:
    """Who is away when, from a list of absences read once."""

    absences: list[Absence]

    def covers(self, absence: Absence, staff_id, day: date, period_id) -> bool:
        return (absence.staff_id == staff_id
                and as_date(absence.start_date) <= day <= as_date(absence.end_date)
                and (not absence.period_ids or period_id in absence.period_ids))

    def away(self, staff_id, day: date, period_id, confirmed_only: bool = True) -> bool:
        return any(self.covers(a, staff_id, day, period_id) for a in self.absences
                   if a.status == "confirmed" or not confirmed_only)

    def away_staff(self, day: date, period_id, confirmed_only: bool = True) -> set:
        return {a.staff_id for a in self.absences
                if (a.status == "confirmed" or not confirmed_only)
                and self.covers(a, a.staff_id, day, period_id)}


def absence_summary(absence: Absence) -> dict:
    return {"staff_id": absence.staff_id, "start_date": as_date(absence.start_date),
            "end_date": as_date(absence.end_date), "period_ids": absence.period_ids,
            "reason": absence.reason, "status": absence.status}


class Absences(SchoolService):
    """Absences: admins record and confirm them; staff report and withdraw their own."""

    def create(self, staff_id, start_date: date, end_date: date, reason: str,
               period_ids: list | None = None) -> Absence:
        staff = self._absentee(staff_id)
        check_range(start_date, end_date)
        if (end_date - start_date).days >= MAX_ABSENCE_DAYS:
            raise ValidationFailed("An absence spans at most a year.",
                                   {"end_date": [f"At most {MAX_ABSENCE_DAYS} days."]})
        periods = self._periods(period_ids or [])
        confirmed = self.actor.is_admin or \
            cover_settings_for_reading(self.school_id).auto_confirm_absences
        absence = Absence(school_id=self.school_id, staff_id=staff, reason=reason,
                          start_date=as_datetime(start_date), end_date=as_datetime(end_date),
                          period_ids=periods, reported_by=self.actor.user_id,
                          status="confirmed" if confirmed else "pending")
        if confirmed:
            absence.confirmed_by, absence.confirmed_at = self.actor.user_id, utcnow()
        absence.save()
        self.audit("create", "timetable_absence", absence.id, after=absence_summary(absence))
        if absence.staff_id != self.actor.user_id:
            self.notify(absence.staff_id, "timetable_absence",
                        f"An absence was recorded for you from {start_date} to {end_date}.",
                        {"absence_id": str(absence.id)})
        if not confirmed:
            self._ask_admins(absence)
        return absence

    def _ask_admins(self, absence: Absence) -> None:
        """The school's admins hear of a self-reported absence awaiting them (one read, one
        write)."""
        reporter = User.objects.for_school(self.school_id).filter(id=absence.staff_id).only(
            "name").first()
        admins = User.objects.for_school(self.school_id).filter(
            role="school_admin", is_active=True).scalar("id")
        message = (f"{reporter.name if reporter else 'A staff member'} reported an absence "
                   f"from {as_date(absence.start_date)} to {as_date(absence.end_date)}: "
                   f"{absence.reason}. Confirm it to plan the cover.")
        notify_many([Notification(user_id=admin, school_id=self.school_id,
                                  kind="timetable_absence", message=message,
                                  data={"absence_id": str(absence.id)}) for admin in admins])

    def _absentee(self, staff_id):
        """Admins record anyone's absence; staff only their own."""
        if self.actor.is_admin:
            return self.member(staff_id, "staff_id", roles={"staff"}).id
        if field_object_id(staff_id, "staff_id") != self.actor.user_id:
            raise Forbidden("Staff may only report their own absence.", code="not_your_absence")
        return self.actor.user_id

    def _periods(self, period_ids: list) -> list:
        active = {p.id for p in settings_for_reading(self.school_id).periods if p.is_active}
        wanted = [field_object_id(p, "period_ids") for p in period_ids]
        unknown = [str(p) for p in wanted if p not in active]
        if unknown:
            raise ValidationFailed("period_ids names periods this school does not have.",
                                   {"period_ids": [f"Not active periods: {unknown}."]})
        return sorted(set(wanted))

    def list(self, date: date | None = None, staff_id=None, status: str | None = None,
             page: int = 1, page_size: int = 50) -> Page:
        """Admins see every absence, staff their own."""
        absences = Absence.objects.for_school(self.school_id)
        if not self.actor.is_admin:
            staff_id = self.actor.user_id
        if staff_id is not None:
            absences = absences.filter(staff_id=field_object_id(staff_id, "staff_id"))
        if date is not None:
            absences = absences.filter(start_date__lte=as_datetime(date),
                                       end_date__gte=as_datetime(date))
        if status:
            absences = absences.filter(status=status)
        return paginate(absences.order_by("start_date", "id"), page, page_size)

    def confirm(self, absence_id) -> Absence:
        self.require_admin()
        wanted = object_id(absence_id, "absence")
        confirmed = update_where(Absence._get_collection(), self.school_id,
                                 {"_id": wanted, "status": "pending"},
                                 {"$set": {"status": "confirmed",
                                           "confirmed_by": self.actor.user_id,
                                           "confirmed_at": utcnow(), "updated_at": utcnow()}})
        if confirmed is None:
            current = self.get(Absence, absence_id, "absence")
            raise Conflict(f"The absence is {current.status}, not pending.", code="not_pending")
        absence = Absence._from_son(confirmed)
        self.audit("confirm", "timetable_absence", absence.id, before={"status": "pending"},
                   after={"status": "confirmed"})
        self.notify(absence.staff_id, "timetable_absence",
                    f"Your absence from {as_date(absence.start_date)} to "
                    f"{as_date(absence.end_date)} was confirmed.",
                    {"absence_id": str(absence.id)})
        return absence

    def delete(self, absence_id) -> None:
        """Admins delete any absence; staff withdraw their own while it is pending. Covers
        already given for it stay on the day's plan until an admin changes them."""
        absence = self.get(Absence, absence_id, "absence")
        if not self.actor.is_admin:
            if absence.staff_id != self.actor.user_id:
                raise NotFound(f"No absence with id {absence_id!r}.")
            if absence.status != "pending":
                raise Forbidden("A confirmed absence is withdrawn by an admin.",
                                code="absence_confirmed")
        preconditions.check(absence.id, absence.version)  # If-Match, and in the filter:
        removed = Absence.objects.for_school(self.school_id).filter(
            id=absence.id, __raw__=preconditions.guard(absence.id),
            **({} if self.actor.is_admin else {"status": "pending"})).delete()
        if not removed:
            current = Absence.objects.for_school(self.school_id).filter(id=absence.id).first()
            if current is not None:
                preconditions.check(absence.id, current.version)  # 412
            raise Conflict("The absence was confirmed meanwhile.", code="absence_confirmed")
        self.audit("delete", "timetable_absence", absence.id, before=absence_summary(absence))

    def get_absence(self, absence_id) -> Absence:
        absence = self.get(Absence, absence_id, "absence")
        if not self.actor.is_admin and absence.staff_id != self.actor.user_id:
            raise NotFound(f"No absence with id {absence_id!r}.")
        return absence

    # the cover settings

    def settings(self) -> CoverSettings:
        return cover_settings_for_reading(self.school_id)

    def update_settings(self, **changes) -> CoverSettings:
        """One `$set` upsert of the fields given: the fields hold no rule together."""
        self.require_admin()
        before = self.settings()
        update = {"$set": {**changes, "updated_at": utcnow()},
                  "$setOnInsert": {"created_at": utcnow()}}
        where = {"school_id": self.school_id}
        try:
            CoverSettings._get_collection().update_one(where, update, upsert=True)
        except DuplicateKeyError:  # a parallel first write inserted it: update that one
            CoverSettings._get_collection().update_one(where, update)
        self.audit("update_cover_settings", "timetable_cover_settings", self.school_id,
                   before={name: before[name] for name in changes}, after=changes)
        return self.settings()
