"""The timetable by date over HTTP: absences, the day's cover plan, covers / cancellations /
room moves for one date, the dated grid, notifications and audit."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

import pytest
from icalendar import Calendar

from documents.audit import AuditEvent
from documents.timetable import TimetableSlot
from tests.helpers import REQUEST_OVERHEAD
from tests.test_timetable import assign, make_periods, notifications_of

MONDAY = "2026-09-14"
NEXT_MONDAY = "2026-09-21"
TUESDAY = "2026-09-15"


class School:
    """world.school with four periods, two teachers' Monday lessons and a third teacher."""

    def __init__(self, client, world):
        self.client, self.world = client, world
        self.periods = make_periods(client, world, count=4)
        self.teacher, self.other = world.staff, world.staff2
        self.spare = world.add_user(world.school, "staff", department="History", name="Spare")
        self.first = self.lesson(self.teacher, 0, "9-B", "R1")
        self.third = self.lesson(self.teacher, 2, "10-A", "R3")
        self.others_third = self.lesson(self.other, 2, "11-C", "R4")

    def lesson(self, staff, period_index, class_id, room, day=0) -> dict:
        response = assign(self.client, self.world, staff, self.periods[period_index], day=day,
                          classes=[{"class_id": class_id, "subject": "Maths",
                                    "room_number": room}])
        assert response.status_code == 201, response.json
        return response.json

    def post(self, path, body, who="admin"):
        return self.client.post(self.world.url(path), json=body,
                                headers=self.world.headers(who))

    def get(self, path, who="admin"):
        response = self.client.get(self.world.url(path), headers=self.world.headers(who))
        assert response.status_code == 200, response.json
        return response.json

    def absent(self, staff, start=MONDAY, end=MONDAY, who="admin", **extra):
        response = self.post("/timetable/absences", {"staff_id": str(staff.id),
                                                     "start_date": start, "end_date": end,
                                                     "reason": "Ill", **extra}, who)
        assert response.status_code == 201, response.json
        return response.json

    def cover(self, lesson, staff, date=MONDAY, **extra):
        return self.post("/timetable/cover", {"date": date, "assignment_id": lesson["id"],
                                              "action": "cover",
                                              "cover_staff_id": str(staff.id), **extra})

    def plan(self, date=MONDAY, who="admin") -> dict:
        return self.get(f"/timetable/cover?date={date}", who)

    def dated_grid(self, staff, date=MONDAY) -> dict:
        return self.get(f"/timetable/staff/{staff.id}?date={date}")


@pytest.fixture
def school(client, world):
    return School(client, world)


def statuses(plan) -> list[tuple[str, str]]:
    return [(lesson["assignment_id"], lesson["status"]) for lesson in plan["lessons"]]


def dated_slot(grid, date, period) -> dict:
    day = next(d for d in grid["days"] if d["date"] == date)
    return next(s for s in day["slots"] if s["period_id"] == period["id"])


# absences

def test_admins_record_absences_confirmed_and_staff_report_their_own_pending(school, world):
    by_admin = school.absent(school.teacher)
    assert by_admin["status"] == "confirmed"
    own = school.absent(school.other, who="staff2", period_ids=[school.periods[2]["id"]])
    assert own["status"] == "pending" and own["period_ids"] == [school.periods[2]["id"]]
    for_someone_else = school.post("/timetable/absences", {
        "staff_id": str(school.teacher.id), "start_date": MONDAY, "end_date": MONDAY,
        "reason": "Ill"}, "staff2")
    assert for_someone_else.status_code == 403
    backwards = school.post("/timetable/absences", {
        "staff_id": str(school.teacher.id), "start_date": MONDAY, "end_date": "2026-09-01",
        "reason": "Ill"})
    assert backwards.status_code == 422
    confirmed = school.post(f"/timetable/absences/{own['id']}/confirm", {})
    assert confirmed.status_code == 200 and confirmed.json["status"] == "confirmed"
    again = school.post(f"/timetable/absences/{own['id']}/confirm", {})
    assert again.status_code == 409 and again.json["error"]["code"] == "not_pending"
    assert any("confirmed" in m for m in notifications_of(school.other, "absence"))
    assert notifications_of(world.admin, "absence") == [
        f"{school.other.name} reported an absence from 2026-09-14 to 2026-09-14: Ill. "
        f"Confirm it to plan the cover."]
    everyone = school.get(f"/timetable/absences?date={MONDAY}")
    assert {a["id"] for a in everyone["items"]} == {by_admin["id"], own["id"]}
    mine = school.get(f"/timetable/absences?date={MONDAY}", "staff2")
    assert [a["id"] for a in mine["items"]] == [own["id"]]
    assert school.get(f"/timetable/absences?date={TUESDAY}")["total"] == 0
    assert AuditEvent.objects(entity_type="timetable_absence", action="confirm").count() == 1


def test_the_school_can_confirm_self_reported_absences_automatically(school, world):
    setting = world.url("/timetable/cover/settings")
    changed = school.client.put(setting, json={"auto_confirm_absences": True},
                                headers=world.headers("admin"))
    assert changed.status_code == 200 and changed.json["auto_confirm_absences"] is True
    reported = school.absent(school.other, who="staff2")
    assert reported["status"] == "confirmed"
    assert school.get(f"/timetable/absences/{reported['id']}", "staff2")["status"] == \
        "confirmed"


def test_staff_withdraw_their_pending_absence_but_not_a_confirmed_one(school, world):
    pending = school.absent(school.other, who="staff2")
    confirmed = school.absent(school.other, start=TUESDAY, end=TUESDAY)
    client, headers = school.client, world.headers("staff2")
    assert client.delete(world.url(f"/timetable/absences/{confirmed['id']}"),
                         headers=headers).status_code == 403
    assert client.delete(world.url(f"/timetable/absences/{pending['id']}"),
                         headers=world.headers("staff")).status_code == 404
    assert client.delete(world.url(f"/timetable/absences/{pending['id']}"),
                         headers=headers).status_code == 204
    assert client.delete(world.url(f"/timetable/absences/{confirmed['id']}"),
                         headers=world.headers("admin")).status_code == 204
    assert school.get("/timetable/absences")["total"] == 0


# the day's plan

def test_an_absent_teachers_lessons_are_uncovered_for_the_days_of_the_absence(school):
    school.absent(school.teacher, end=TUESDAY)
    plan = school.plan()
    assert statuses(plan) == [(school.first["id"], "uncovered"),
                              (school.third["id"], "uncovered")]
    lesson = plan["lessons"][0]
    assert lesson["staff_id"] == str(school.teacher.id)
    assert lesson["period_id"] == school.periods[0]["id"]
    assert lesson["classes"][0]["class_id"] == "9-B"
    assert lesson["cover_staff_id"] is None
    assert school.plan(NEXT_MONDAY)["lessons"] == []
    assert school.plan(TUESDAY)["lessons"] == []  # no Tuesday lessons


def test_an_absence_for_chosen_periods_leaves_the_others_as_usual(school):
    school.absent(school.teacher, period_ids=[school.periods[2]["id"]])
    assert statuses(school.plan()) == [(school.third["id"], "uncovered")]


def test_a_pending_absence_leaves_the_lessons_as_usual_until_confirmed(school):
    reported = school.absent(school.teacher, who="staff")
    assert school.plan()["lessons"] == []
    school.post(f"/timetable/absences/{reported['id']}/confirm", {})
    assert len(school.plan()["lessons"]) == 2


def test_a_cover_changes_that_date_only_and_the_weekly_pattern_stays(school, world):
    school.absent(school.teacher)
    weekly_before = school.get(f"/timetable/staff/{school.teacher.id}", "staff")
    covered = school.cover(school.third, school.spare, notes="Worksheet on the desk")
    assert covered.status_code == 201, covered.json
    assert (covered.json["status"], covered.json["cover_staff_id"]) == \
        ("covered", str(school.spare.id))
    plan = school.plan()
    assert statuses(plan) == [(school.first["id"], "uncovered"),
                              (school.third["id"], "covered")]
    assert plan["lessons"][1]["cover_staff_name"] == "Spare"
    # the absent teacher's week, that date and the next week
    grid = school.dated_grid(school.teacher)
    assert dated_slot(grid, MONDAY, school.periods[2])["dated_status"] == "covered"
    assert dated_slot(grid, MONDAY, school.periods[0])["dated_status"] == "absent"
    assert dated_slot(grid, MONDAY, school.periods[1])["dated_status"] == "as_usual"
    assert [d["date"] for d in grid["days"]] == [
        "2026-09-14", "2026-09-15", "2026-09-16", "2026-09-17", "2026-09-18"]
    later = school.dated_grid(school.teacher, NEXT_MONDAY)
    assert dated_slot(later, NEXT_MONDAY, school.periods[2])["dated_status"] == "as_usual"
    # the cover teacher's dated grid shows the lesson they cover, their weekly one does not
    cover_grid = school.dated_grid(school.spare)
    covering = dated_slot(cover_grid, MONDAY, school.periods[2])
    assert covering["dated_status"] == "covering"
    assert covering["change"]["assignment_id"] == school.third["id"]
    assert covering["change"]["classes"][0]["class_id"] == "10-A"
    assert covering["status"] == "empty"
    # the weekly pattern and the lesson itself are unchanged
    assert school.get(f"/timetable/staff/{school.teacher.id}", "staff") == weekly_before
    lesson = school.get(f"/timetable/assignments/{school.third['id']}")
    assert (lesson["assignment_type"], lesson["version"], lesson["staff_id"]) == \
        ("regular", 0, str(school.teacher.id))


def ical_events(school, staff) -> list:
    response = school.client.get(school.world.url(f"/timetable/staff/{staff.id}/calendar.ics"),
                                 headers=school.world.headers("admin"))
    assert response.status_code == 200
    return [e for e in Calendar.from_ical(response.data).walk("VEVENT")]


def weekly_events(events) -> list[bytes]:
    """The recurring events as text, without their creation stamp."""
    return sorted(re.sub(rb"DTSTAMP:[0-9TZ]+\r\n", b"", e.to_ical()) for e in events
                  if "RECURRENCE-ID" not in e and "RRULE" in e)


def test_the_ical_feeds_show_a_dates_changes_beside_the_unchanged_weekly_events(school):
    today = date.today()
    monday = today + timedelta(days=7 - today.weekday())  # after every lesson's first week
    school.absent(school.teacher, start=monday.isoformat(), end=monday.isoformat())
    before = weekly_events(ical_events(school, school.teacher))
    assert len(before) == 2
    assert school.cover(school.third, school.spare, date=monday.isoformat()).status_code == 201
    moved = school.post("/timetable/cover", {"date": monday.isoformat(), "action": "room",
                                             "room": "Hall",
                                             "assignment_id": school.others_third["id"]})
    assert moved.status_code == 201
    events = ical_events(school, school.teacher)
    assert weekly_events(events) == before
    (override,) = [e for e in events if "RECURRENCE-ID" in e]
    third = datetime.combine(monday, time(9, 40), tzinfo=UTC)  # the school's zone
    assert str(override["UID"]) == f"{school.third['id']}@rota"
    assert override.decoded("RECURRENCE-ID") == third
    assert str(override["STATUS"]) == "CANCELLED"
    (cover,) = [e for e in ical_events(school, school.spare) if "RRULE" not in e]
    assert cover.decoded("DTSTART") == third
    assert str(cover["SUMMARY"]) == "Cover: Maths (10-A)"
    (room,) = [e for e in ical_events(school, school.other) if "RECURRENCE-ID" in e]
    assert (str(room["LOCATION"]), room.decoded("RECURRENCE-ID")) == ("Hall", third)
    assert "STATUS" not in room


def test_both_teachers_are_told_naming_the_period_and_every_change_is_audited(school):
    school.absent(school.teacher)
    assert school.cover(school.third, school.spare).status_code == 201
    told_cover = notifications_of(school.spare, "cover")
    told_absent = notifications_of(school.teacher, "cover")
    assert told_cover == ["Please cover 10-A in Period 3, 09:40\u201310:25 on Monday "
                          "2026-09-14."]
    assert told_absent == ["Spare covers 10-A in Period 3, 09:40\u201310:25 on Monday "
                           "2026-09-14."]
    assert school.post("/timetable/cover", {"date": MONDAY, "assignment_id":
                                            school.first["id"], "action": "cancel"}
                       ).status_code == 201
    actions = {e.action for e in AuditEvent.objects(entity_type="timetable_lesson")}
    assert actions == {"dated_cover", "dated_cancel"}


def test_a_cancelled_lesson_and_an_undo_back_to_uncovered(school, world):
    school.absent(school.teacher)
    cancelled = school.post("/timetable/cover", {"date": MONDAY, "action": "cancel",
                                                 "assignment_id": school.first["id"]})
    assert cancelled.status_code == 201
    assert statuses(school.plan())[-1] == (school.first["id"], "cancelled")
    twice = school.post("/timetable/cover", {"date": MONDAY, "action": "cancel",
                                             "assignment_id": school.first["id"]})
    assert twice.status_code == 409 and twice.json["error"]["code"] == "already_changed"
    url = world.url(f"/timetable/cover/{MONDAY}/{school.first['id']}")
    assert school.client.delete(url, headers=world.headers("admin")).status_code == 204
    assert school.client.delete(url, headers=world.headers("admin")).status_code == 404
    assert (school.first["id"], "uncovered") in statuses(school.plan())


def test_a_lesson_of_a_present_teacher_can_be_moved_to_another_room(school):
    moved = school.post("/timetable/cover", {"date": MONDAY, "action": "room", "room": "Hall",
                                             "assignment_id": school.others_third["id"]})
    assert moved.status_code == 201
    plan = school.plan()
    assert [(entry["status"], entry["room"]) for entry in plan["lessons"]] == \
        [("room_changed", "Hall")]
    slot = dated_slot(school.dated_grid(school.other), MONDAY, school.periods[2])
    assert (slot["dated_status"], slot["change"]["room"]) == ("room_changed", "Hall")


# double booking on a date

def test_a_cover_teacher_teaching_or_covering_in_that_slot_is_409(school):
    school.absent(school.teacher)
    teaching = school.cover(school.third, school.other)
    assert teaching.status_code == 409
    assert teaching.json["error"]["code"] == "cover_staff_taken"
    second = school.lesson(school.spare, 2, "8-D", "R8", day=1)  # Tuesday: no clash
    assert second["day_of_week"] == 1
    school.absent(school.other)
    assert school.cover(school.others_third, school.spare).status_code == 201
    covering = school.cover(school.third, school.spare)
    assert covering.status_code == 409 and covering.json["error"]["code"] == \
        "cover_staff_taken"
    # a teacher whose own lesson is cancelled that day is free to cover
    free = school.world.add_user(school.world.school, "staff", name="Freed")
    freed_lesson = school.lesson(free, 2, "12-E", "R9")
    school.post("/timetable/cover", {"date": MONDAY, "action": "cancel",
                                     "assignment_id": freed_lesson["id"]})
    assert school.cover(school.third, free).status_code == 201


def test_an_absent_cover_teacher_is_409(school):
    school.absent(school.teacher)
    school.absent(school.spare, who="admin")
    refused = school.cover(school.third, school.spare)
    assert refused.status_code == 409 and refused.json["error"]["code"] == "cover_staff_absent"


def test_a_room_holds_one_lesson_on_a_date(school):
    school.absent(school.teacher)
    into_used_room = school.post("/timetable/cover", {
        "date": MONDAY, "action": "room", "room": "r4 ", "assignment_id": school.third["id"]})
    assert into_used_room.status_code == 409
    assert into_used_room.json["error"]["code"] == "room_taken"
    assert school.post("/timetable/cover", {"date": MONDAY, "action": "room", "room": "Lab",
                                            "assignment_id": school.others_third["id"]}
                       ).status_code == 201
    # R4 is free now that lesson moved out; Lab is taken by it
    taken = school.post("/timetable/cover", {"date": MONDAY, "action": "room", "room": "LAB",
                                             "assignment_id": school.third["id"]})
    assert taken.status_code == 409 and taken.json["error"]["code"] == "room_taken"
    assert school.post("/timetable/cover", {"date": MONDAY, "action": "room", "room": "R4",
                                            "assignment_id": school.third["id"]}
                       ).status_code == 201


def test_wrong_days_holidays_and_missing_fields_are_refused(school):
    wrong_day = school.cover(school.third, school.spare, date=TUESDAY)
    assert wrong_day.status_code == 422 and "date" in wrong_day.json["error"]["details"]
    school.post("/holidays", {"date": NEXT_MONDAY, "name": "Founders' day"})
    holiday = school.cover(school.third, school.spare, date=NEXT_MONDAY)
    assert holiday.status_code == 409 and holiday.json["error"]["code"] == "holiday"
    assert school.plan(NEXT_MONDAY)["holiday"] == "Founders' day"
    no_teacher = school.post("/timetable/cover", {"date": MONDAY, "action": "cover",
                                                  "assignment_id": school.third["id"]})
    assert no_teacher.status_code == 422 and "cover_staff_id" in no_teacher.json["error"][
        "details"]
    no_room = school.post("/timetable/cover", {"date": MONDAY, "action": "room",
                                               "assignment_id": school.third["id"]})
    assert no_room.status_code == 422
    own = school.cover(school.third, school.teacher)
    assert own.status_code == 422
    by_staff = school.post("/timetable/cover", {"date": MONDAY, "action": "cancel",
                                                "assignment_id": school.third["id"]}, "staff")
    assert by_staff.status_code == 403


def test_the_plan_and_the_dated_grid_take_the_same_round_trips_at_any_size(
        client, world, roundtrips):
    small = School(client, world)
    small.absent(small.teacher)
    small.cover(small.third, small.spare)

    def count(call) -> int:
        with roundtrips() as commands:
            call()
        return len(commands)

    plan_small = count(lambda: small.plan())
    grid_small = count(lambda: small.dated_grid(small.spare))
    for index in range(6):
        extra = world.add_user(world.school, "staff", name=f"Extra {index}")
        for period in range(4):
            small.lesson(extra, period, f"X{index}-{period}", f"Room X{index}{period}")
        small.absent(extra)
        small.post("/timetable/cover", {"date": MONDAY, "action": "cancel",
                                        "assignment_id": stored_lesson(extra, period)})
    assert count(lambda: small.plan()) == plan_small
    assert count(lambda: small.dated_grid(small.spare)) == grid_small
    assert plan_small <= 7 + REQUEST_OVERHEAD
    assert grid_small <= 9 + REQUEST_OVERHEAD


def stored_lesson(staff, period_index) -> str:
    lessons = [a for slot in TimetableSlot.objects(__raw__={"assignments.staff_id": staff.id})
               for a in slot.placed() if a.staff_id == staff.id]
    return str(sorted(lessons, key=lambda a: a.created_at)[period_index].id)


# the A/B week rotation

def test_lessons_marked_for_week_a_or_b_run_in_their_week_only(school, world):
    rotation = school.client.put(world.url("/calendar/settings"), json={
        "week_rotation": True, "week_a_starts": "2026-09-07"}, headers=world.headers("admin"))
    assert rotation.status_code == 200
    period = school.periods[1]

    def marked(week, class_id):
        return school.client.post(world.url("/timetable/assignments"), json={
            "staff_id": str(school.spare.id), "period_id": period["id"], "day_of_week": 0,
            "week": week, "classes": [{"class_id": class_id, "subject": "Art",
                                       "room_number": "Studio"}]},
            headers=world.headers("admin"))

    week_a, week_b = marked("A", "7-A"), marked("B", "7-B")
    assert (week_a.status_code, week_b.status_code) == (201, 201)
    assert (week_a.json["week"], week_b.json["week"]) == ("A", "B")
    every_week = marked(None, "7-C")
    assert every_week.status_code == 409  # the Studio and the teacher are taken both weeks
    assert school.get("/timetable/conflicts")["items"] == []
    in_a = dated_slot(school.dated_grid(school.spare, "2026-09-07"), "2026-09-07", period)
    in_b = dated_slot(school.dated_grid(school.spare, MONDAY), MONDAY, period)
    assert (in_a["assignment"]["id"], in_b["assignment"]["id"]) == \
        (week_a.json["id"], week_b.json["id"])
    assert school.dated_grid(school.spare, MONDAY)["days"][0]["week"] == "B"
    school.absent(school.spare)
    plan = school.plan()
    assert (plan["week"], statuses(plan)) == ("B", [(week_b.json["id"], "uncovered")])
    wrong_week = school.post("/timetable/cover", {"date": MONDAY, "action": "cancel",
                                                  "assignment_id": week_a.json["id"]})
    assert wrong_week.status_code == 422
    # in the iCal feed each recurs every second week, from a Monday of its own week
    feed = {str(e["UID"]): e for e in ical_events(school, school.spare)}
    anchor = date(2026, 9, 7)
    for lesson, parity in ((week_a.json, 0), (week_b.json, 1)):
        event = feed[f"{lesson['id']}@rota"]
        assert event["RRULE"]["INTERVAL"] == [2]
        first = event.decoded("DTSTART").date()
        assert first.weekday() == 0 and ((first - anchor).days // 7) % 2 == parity


def test_a_weekly_booking_made_after_a_cover_shows_as_a_conflict_of_the_day(school):
    school.absent(school.teacher)
    assert school.cover(school.third, school.spare).status_code == 201
    school.lesson(school.spare, 2, "12-Z", "R12")  # Monday period 3, every week
    plan = school.plan()
    assert plan["conflicts"] == [{"assignment_id": school.third["id"],
                                  "period_id": school.periods[2]["id"],
                                  "cover_staff_id": str(school.spare.id),
                                  "reason": "cover_staff_teaching"}]


def test_a_weekly_booking_landing_during_a_cover_takes_the_cover_back(school, monkeypatch):
    """The cover's plan read the weekly slot before a parallel booking gave the cover teacher
    a lesson there; the re-read after the write sees it: 409, and no cover is left."""
    from service.timetable_cover import Cover

    school.absent(school.teacher)
    late_booking = school.lesson(school.spare, 2, "12-Z", "R12")
    reads = []
    real_weekly = Cover._weekly

    def weekly_before_the_booking(self, lesson):
        found = real_weekly(self, lesson)
        reads.append(len(found))
        if len(reads) == 1:  # the plan's read: as it was before the booking landed
            return [a for a in found if str(a.id) != late_booking["id"]]
        return found

    monkeypatch.setattr(Cover, "_weekly", weekly_before_the_booking)
    refused = school.cover(school.third, school.spare)
    assert refused.status_code == 409 and refused.json["error"]["code"] == "cover_staff_taken"
    assert len(reads) == 2
    assert [lesson["status"] for lesson in school.plan()["lessons"]] == \
        ["uncovered", "uncovered"]
    assert school.plan()["conflicts"] == []


def test_the_plan_without_a_date_is_today_where_the_school_is(school, world):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    zone = "Pacific/Kiritimati"  # UTC+14: often already tomorrow in UTC terms
    school.client.patch(f"/api/v1/schools/{world.school.id}", json={"timezone": zone},
                        headers=world.headers("admin"))
    plan = school.get("/timetable/cover")
    assert plan["date"] == datetime.now(ZoneInfo(zone)).date().isoformat()


def test_the_dated_grid_of_a_range_of_days(school, world):
    school.absent(school.teacher, start=NEXT_MONDAY, end=NEXT_MONDAY)
    school.post("/holidays", {"date": TUESDAY, "name": "Fair"})
    grid = school.get(f"/timetable/staff/{school.teacher.id}?from={TUESDAY}&to={NEXT_MONDAY}")
    assert [d["date"] for d in grid["days"]] == [
        "2026-09-15", "2026-09-16", "2026-09-17", "2026-09-18", "2026-09-21"]
    assert grid["days"][0]["holiday"] == "Fair"
    assert {s["dated_status"] for s in grid["days"][0]["slots"]} == {"holiday"}
    assert dated_slot(grid, NEXT_MONDAY, school.periods[0])["dated_status"] == "absent"
    url = f"/timetable/staff/{school.teacher.id}"
    headers = world.headers("admin")
    for query in (f"?from={TUESDAY}", f"?from={NEXT_MONDAY}&to={TUESDAY}",
                  "?from=2026-09-01&to=2026-12-01"):
        refused = school.client.get(world.url(url + query), headers=headers)
        assert refused.status_code == 422, query
    assert school.client.get(world.url(f"{url}?date={MONDAY}"),
                             headers=world.headers("staff2")).status_code == 403
