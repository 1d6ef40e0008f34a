"""Reading the timetable as a whole: the staff week grid, the conflicts report, and the CSV
and iCalendar exports. Each is a constant number of round trips whatever the data size."""

from __future__ import annotations

import csv
import io
from collections import defaultdict

from documents.accounts import User
from documents.base import utcnow
from documents.timetable import Assignment, Period, TimetableSettings, booking_keys
from service.base import SchoolService
from service.calendar import school_timezone
from service.calendar_ical import lessons_of, timetable_calendar
from service.csv_cells import neutralised_row
from service.errors import Forbidden, NotFound
from service.ids import object_id
from service.timetable import DAY_NAMES, settings_for_reading
from service.timetable_slots import SLOT_FIELDS, assignments_of, clashes, slots

OWN_STATUS = {"regular": "assigned", "self_allocated": "self_added",
              "peer_swap": "altered_received", "admin_override": "overridden"}
# A slot whose assignment moved away from its original holder, as that holder sees it.
GIVEN_AWAY_STATUS = {"peer_swap": "altered_sent", "admin_override": "overridden"}
CSV_COLUMNS = ("staff_id", "staff_name", "staff_email", "day_of_week", "day_name",
               "period_number", "period_name", "start_time", "end_time", "class_id", "subject",
               "room_number", "student_count", "assignment_type", "activity_name",
               "assignment_id")
BATCH = 10000  # one round trip for any realistic timetable


class TimetableViews(SchoolService):
    """The grid, the conflicts report and the exports."""

    def _staff_member(self, staff_id) -> User:
        """The staff member whose timetable is asked for: staff may only see their own."""
        wanted = self._wanted_staff(staff_id)
        staff = User.objects.for_school(self.school_id).filter(id=wanted, role="staff").first()
        if staff is None:
            raise NotFound(f"No staff member with id {staff_id!r}.")
        return staff

    def _wanted_staff(self, staff_id):
        wanted = object_id(staff_id, "staff member")
        if not self.actor.is_admin and wanted != self.actor.user_id:
            raise Forbidden("Staff may only see their own timetable.", code="not_your_timetable")
        return wanted

    def _settings_and_staff_member(self, staff_id) -> tuple[TimetableSettings, User]:
        """The school's timetable settings and the staff member (as `_staff_member`) in one
        round trip: the settings with the user looked up by id (two when the school has no
        settings saved yet)."""
        wanted = self._wanted_staff(staff_id)
        found = list(TimetableSettings._get_collection().aggregate([
            {"$match": {"school_id": self.school_id}},
            {"$limit": 1},
            {"$addFields": {"_staff_id": {"$literal": wanted}}},
            {"$lookup": {"from": User._get_collection_name(), "localField": "_staff_id",
                         "foreignField": "_id", "as": "_staff"}},
        ]))
        if not found:
            return TimetableSettings(school_id=self.school_id), self._staff_member(staff_id)
        settings = found[0]
        settings.pop("_staff_id")
        staff = [user for user in settings.pop("_staff")
                 if user.get("school_id") == self.school_id and user.get("role") == "staff"]
        if not staff:
            raise NotFound(f"No staff member with id {staff_id!r}.")
        return TimetableSettings._from_son(settings), User._from_son(staff[0])

    def _active_periods(self, settings) -> list[Period]:
        return sorted((p for p in settings.periods if p.is_active),
                      key=lambda p: p.period_number)

    def _assignments(self, query: dict) -> list[Assignment]:
        return assignments_of(slots().find({"school_id": self.school_id, **query}
                                           ).batch_size(BATCH))

    def _assignments_of(self, staff_id) -> list[Assignment]:
        return lessons_of(self.school_id, staff_id)

    # the week grid

    def staff_grid(self, staff_id) -> dict:
        """Every working day x every active period: two round trips (the settings with their
        periods and the staff member, the assignments)."""
        settings, staff = self._settings_and_staff_member(staff_id)
        periods = self._active_periods(settings)
        found = self._slots_of(staff.id, self._assignments_involving(staff.id))
        days = [{"day_of_week": day,
                 "slots": [self._slot(period, found.get((day, period.id))) for period in periods]}
                for day in settings.working_days]
        return {"staff": staff, "periods": periods, "days": days}

    def _assignments_involving(self, staff_id) -> list[Assignment]:
        """The assignments the staff member holds or gave away, without the other staff's
        lessons of those slots (one round trip: the filter runs in the database)."""
        mine = {"$or": [{"$eq": ["$$a.staff_id", staff_id]},
                        {"$and": [{"$eq": ["$$a.original_staff_id", staff_id]},
                                  {"$in": ["$$a.assignment_type", list(GIVEN_AWAY_STATUS)]}]}]}
        return assignments_of(slots().aggregate([
            {"$match": {"school_id": self.school_id,
                        "$or": [{"assignments.staff_id": staff_id},
                                {"assignments.original_staff_id": staff_id}]}},
            {"$project": {**SLOT_FIELDS, "assignments": {
                "$filter": {"input": "$assignments", "as": "a", "cond": mine}}}},
        ], batchSize=BATCH))

    @staticmethod
    def _slots_of(staff_id, assignments) -> dict:
        """(day, period_id) -> (status, assignment); an assignment held beats one given away."""
        slots = {}
        for assignment in assignments:
            key = (assignment.day_of_week, assignment.period_id)
            if assignment.staff_id == staff_id:
                slots[key] = (OWN_STATUS[assignment.assignment_type], assignment)
            else:
                slots.setdefault(key, (GIVEN_AWAY_STATUS[assignment.assignment_type], assignment))
        return slots

    @staticmethod
    def _slot(period: Period, found) -> dict:
        status, assignment = found or ("empty", None)
        return {"period_id": period.id, "period_number": period.period_number,
                "period_name": period.period_name, "start_time": period.start_time,
                "end_time": period.end_time, "status": status,
                "locked": bool(assignment and assignment.is_locked), "assignment": assignment}

    # conflicts

    def conflicts(self) -> list[dict]:
        """Double bookings of a staff member, a class or a room in one slot. The slot writes
        prevent them; they come from times when overlapping was allowed, or from data written
        around the service."""
        settings = settings_for_reading(self.school_id)
        periods = {p.id: p for p in self._active_periods(settings)}
        by_key = defaultdict(list)
        for assignment in self._assignments({"period_id": {"$in": list(periods)}}):
            slot = (assignment.day_of_week, assignment.period_id)
            by_key[(*slot, "staff", str(assignment.staff_id))].append(assignment)
            for kind, key in booking_keys(assignment.classes):
                by_key[(*slot, kind, key)].append(assignment)
        return [self._conflict(key, found, periods) for key, found in sorted(
            by_key.items(), key=lambda item: (item[0][0], periods[item[0][1]].period_number,
                                              item[0][2], item[0][3]))
                if clashes(found)]

    def double_bookings(self) -> list[dict]:
        """The conflicts the school's settings forbid: for an admin to resolve."""
        found = self.conflicts()
        if settings_for_reading(self.school_id).allow_overlapping_assignments:
            return [c for c in found if c["kind"] == "staff"]
        return found

    @staticmethod
    def _conflict(key, assignments, periods) -> dict:
        day, period_id, kind, value = key
        return {"kind": kind, "key": value, "day_of_week": day, "period_id": period_id,
                "period_number": periods[period_id].period_number,
                "assignment_ids": sorted({str(a.id) for a in assignments}),
                "staff_ids": sorted({str(a.staff_id) for a in assignments})}

    # CSV

    def export_csv(self, staff_id=None) -> str:
        """One row per class (an assignment without classes gives one row), ordered by staff
        name, day and period number."""
        if staff_id is None:
            if not self.actor.is_admin:
                raise Forbidden("Staff may only export their own timetable.",
                                code="not_your_timetable")
            assignments = self._assignments({})
        else:
            assignments = self._assignments_of(self._staff_member(staff_id).id)
        periods = {p.id: p for p in self._active_periods(settings_for_reading(self.school_id))}
        assignments = [a for a in assignments if a.period_id in periods]
        people = {u.id: u for u in User.objects.for_school(self.school_id).filter(
            id__in=list({a.staff_id for a in assignments})).only("id", "name", "email")}
        assignments.sort(key=lambda a: (people[a.staff_id].name if a.staff_id in people else "",
                                        str(a.staff_id), a.day_of_week,
                                        periods[a.period_id].period_number))
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
        writer.writeheader()
        for assignment in assignments:
            for row in self._csv_rows(assignment, periods[assignment.period_id],
                                      people.get(assignment.staff_id)):
                writer.writerow(neutralised_row(row))  # no formulas in a spreadsheet
        return out.getvalue()

    @staticmethod
    def _csv_rows(assignment: Assignment, period: Period, staff: User | None):
        common = {"staff_id": str(assignment.staff_id),
                  "staff_name": staff.name if staff else "",
                  "staff_email": staff.email if staff else "",
                  "day_of_week": assignment.day_of_week,
                  "day_name": DAY_NAMES[assignment.day_of_week],
                  "period_number": period.period_number, "period_name": period.period_name,
                  "start_time": period.start_time, "end_time": period.end_time,
                  "assignment_type": assignment.assignment_type,
                  "activity_name": assignment.activity_name or "",
                  "assignment_id": str(assignment.id)}
        for entry in assignment.classes or [None]:
            yield {**common,
                   "class_id": entry.class_id if entry else "",
                   "subject": entry.subject if entry else "",
                   "room_number": (entry.room_number or "") if entry else "",
                   "student_count": "" if entry is None or entry.student_count is None
                   else entry.student_count}

    # iCalendar

    def export_ics(self, staff_id) -> bytes:
        """RFC 5545, in the school's time zone: one weekly series per lesson and term, with
        the dated changes (service/calendar_ical.py builds it, for the feed URLs too)."""
        staff = self._staff_member(staff_id)
        return timetable_calendar(self.school_id, staff.id, f"Timetable of {staff.name}",
                                  school_timezone(self.school_id), utcnow()).to_ical()
