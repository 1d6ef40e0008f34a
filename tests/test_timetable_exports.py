"""The grid's round-trip bound, the conflicts report, and the CSV and iCalendar exports."""

from __future__ import annotations

import csv
import io

import icalendar
import pytest
from bson import ObjectId

from documents.accounts import User
from documents.timetable import Assignment, ClassInfo
from service.timetable_slots import slots
from tests.helpers import REQUEST_OVERHEAD, unique
from tests.test_timetable import MONDAY, TUESDAY, assign, make_periods

SIX_DAYS = [0, 1, 2, 3, 4, 5]


def fill_school(world, periods, staff_count) -> list[User]:
    """`staff_count` staff, each with an assignment in every period of six days (one write
    per slot)."""
    staff = User.objects.insert([
        User(email=f"{unique('t')}@example.test", name=f"Teacher {i:03d}", role="staff",
             department="Mathematics", company_id=world.company.id, school_id=world.school.id)
        for i in range(staff_count)])
    for period in periods:
        for day in SIX_DAYS:
            add_to_slot(world, day, period, [Assignment(
                id=ObjectId(), staff_id=person.id,
                classes=[ClassInfo(class_id=f"{person.name}-{day}", subject="Maths")])
                for person in staff])
    return staff


def add_to_slot(world, day, period, assignments: list[Assignment]) -> None:
    """Write assignments into a slot around the service (no rule checked)."""
    slots().update_one({"school_id": world.school.id, "day_of_week": day,
                        "period_id": ObjectId(period["id"])},
                       {"$push": {"assignments": {"$each": [a.to_mongo() for a in assignments]}},
                        "$setOnInsert": {"version": 0}}, upsert=True)


def grid_round_trips(client, world, roundtrips, staff) -> int:
    headers = world.headers("admin")
    with roundtrips() as commands:
        response = client.get(world.url(f"/timetable/staff/{staff.id}"), headers=headers)
    assert response.status_code == 200
    assert sum(len(day["slots"]) for day in response.json["days"]) == 48
    assert {s["status"] for day in response.json["days"] for s in day["slots"]} == {"assigned"}
    return len(commands)


def test_grid_is_two_round_trips_whatever_the_size(client, world, roundtrips, backend):
    client.put(world.url("/timetable/settings"), json={"working_days": SIX_DAYS},
               headers=world.headers("admin"))
    periods = make_periods(client, world, count=8)
    small = fill_school(world, periods, 2)
    small_count = grid_round_trips(client, world, roundtrips, small[0])
    # 120 staff x 8 periods x 6 days on mongomock; kept smaller over TCP on the embedded server
    large = fill_school(world, periods, 118 if backend == "mongomock" else 20)
    large_count = grid_round_trips(client, world, roundtrips, large[-1])
    assert small_count == large_count
    assert large_count <= 2 + REQUEST_OVERHEAD  # the settings with the staff member, the slots


# conflicts

def test_conflicts_report_finds_double_bookings_made_while_overlapping(client, world):
    periods = make_periods(client, world, count=2)
    assign(client, world, world.staff, periods[0])
    assign(client, world, world.staff, periods[1],
           classes=[{"class_id": "9A", "subject": "Art", "room_number": "Studio"}])
    url, headers = world.url("/timetable/conflicts"), world.headers("admin")
    assert client.get(url, headers=headers).json == {"items": [], "total": 0}
    client.put(world.url("/timetable/settings"), json={"allow_overlapping_assignments": True},
               headers=headers)
    assign(client, world, world.staff2, periods[0])  # same class 10-A and Room 101
    assign(client, world, world.staff2, periods[1],
           classes=[{"class_id": "9B", "subject": "Art", "room_number": "studio "}])
    report = client.get(url, headers=headers).json
    found = {(c["kind"], c["key"], c["period_number"]) for c in report["items"]}
    assert found == {("class", "10-a", 1), ("room", "room 101", 1), ("room", "studio", 2)}
    assert all(sorted(c["staff_ids"]) == sorted([str(world.staff.id), str(world.staff2.id)])
               for c in report["items"])
    assert client.get(url, headers=world.headers("staff")).status_code == 403


def test_conflicts_report_finds_double_bookings_written_around_the_service(client, world):
    period = make_periods(client, world, count=1)[0]
    assign(client, world, world.staff, period)
    add_to_slot(world, MONDAY, period, [Assignment(
        id=ObjectId(), staff_id=world.staff2.id,
        classes=[ClassInfo(class_id="10-A", subject="Maths")])])
    report = client.get(world.url("/timetable/conflicts"), headers=world.headers("admin")).json
    assert [(c["kind"], c["key"], c["day_of_week"]) for c in report["items"]] == [
        ("class", "10-a", MONDAY)]


# CSV

def test_csv_export_of_the_school_and_of_one_staff_member(client, world):
    periods = make_periods(client, world, count=2)
    assign(client, world, world.staff, periods[0], classes=[
        {"class_id": "10-A", "subject": "Maths", "room_number": "R1", "student_count": 25},
        {"class_id": "10-B", "subject": "Maths", "room_number": "R1"}])
    assign(client, world, world.staff2, periods[1], day=TUESDAY,
           classes=[{"class_id": "11-C", "subject": "Biology"}])
    response = client.get(world.url("/timetable/export.csv"), headers=world.headers("admin"))
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert sorted((r["staff_name"], r["day_name"], r["period_number"], r["class_id"])
                  for r in rows) == sorted([(world.staff.name, "Monday", "1", "10-A"),
                                            (world.staff.name, "Monday", "1", "10-B"),
                                            (world.staff2.name, "Tuesday", "2", "11-C")])
    first = next(r for r in rows if r["class_id"] == "10-A")
    assert (first["start_time"], first["room_number"], first["student_count"]) == \
        ("08:00", "R1", "25")
    own = client.get(world.url(f"/timetable/export.csv?staff_id={world.staff2.id}"),
                     headers=world.headers("staff2"))
    assert [r["class_id"] for r in csv.DictReader(io.StringIO(own.get_data(as_text=True)))] \
        == ["11-C"]
    assert client.get(world.url("/timetable/export.csv"),
                      headers=world.headers("staff")).status_code == 403
    other = client.get(world.url(f"/timetable/export.csv?staff_id={world.staff2.id}"),
                       headers=world.headers("staff"))
    assert other.status_code == 403
    assert other.json["error"]["code"] == "not_your_timetable"


# iCalendar

def test_calendar_has_one_weekly_event_per_assignment(client, world):
    periods = make_periods(client, world, count=2)
    assign(client, world, world.staff, periods[0], day=MONDAY, classes=[
        {"class_id": "10-A", "subject": "Maths", "room_number": "R1"},
        {"class_id": "10-B", "subject": "Maths", "room_number": "R2"}])
    client.post(world.url("/timetable/self-allocations"), json={
        "period_id": periods[1]["id"], "day_of_week": TUESDAY, "activity_name": "Math Extra",
        "description": "Revision, bring calculators; room TBC"}, headers=world.headers("staff"))
    response = client.get(world.url(f"/timetable/staff/{world.staff.id}/calendar.ics"),
                          headers=world.headers("staff"))
    assert response.status_code == 200
    assert response.mimetype == "text/calendar"
    assert b"\r\n" in response.data
    calendar = icalendar.Calendar.from_ical(response.data)
    assert calendar["VERSION"] == "2.0" and calendar["PRODID"]
    events = sorted(calendar.walk("VEVENT"), key=lambda e: e.decoded("dtstart"))
    assert len(events) == 2
    monday, tuesday = events
    assert monday.decoded("dtstart").weekday() == 0
    assert monday.decoded("dtstart").strftime("%H:%M") == "08:00"
    assert (monday.decoded("dtend") - monday.decoded("dtstart")).seconds == 45 * 60
    assert monday["RRULE"]["FREQ"] == ["WEEKLY"] and monday["RRULE"]["BYDAY"] == ["MO"]
    assert str(monday["LOCATION"]) == "R1, R2"
    assert "10-A" in str(monday["SUMMARY"]) and "10-B" in str(monday["DESCRIPTION"])
    assert str(tuesday["SUMMARY"]) == "Math Extra"
    assert tuesday.decoded("dtstart").weekday() == 1
    assert "bring calculators; room TBC" in str(tuesday["DESCRIPTION"])
    assert len({str(e["UID"]) for e in events}) == 2
    assert client.get(world.url(f"/timetable/staff/{world.staff.id}/calendar.ics"),
                      headers=world.headers("staff2")).status_code == 403


@pytest.mark.parametrize("path,content_type", [
    ("/timetable/export.csv", "text/csv"),
    ("/timetable/staff/{staff_id}/calendar.ics", "text/calendar")])
def test_exports_are_documented_in_openapi(client, path, content_type):
    spec = client.get("/api/v1/openapi.json").json
    operation = spec["paths"]["/api/v1/schools/{school_id}" + path]["get"]
    assert content_type in operation["responses"]["200"]["content"]
