"""Lessons after booking: PATCH (move, subject, room), PATCH of one class, lock and unlock,
class and room grids, and keys containing `/` in every path that names one."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from bson import ObjectId

from documents.base import utcnow
from documents.timetable import TimetableSlot
from scripts.invariants import lessons_in_two_slots
from scripts.repair import run_repair
from service.timetable_slots import slots
from tests.helpers import REQUEST_OVERHEAD, parallel
from tests.test_timetable import (
    MONDAY,
    TUESDAY,
    assign,
    audited,
    grid,
    make_periods,
    slot,
    stored_assignment,
    stored_assignments,
)


@pytest.fixture
def periods(client, world):
    return make_periods(client, world, count=3)


def patch(client, world, assignment_id, body, who="admin", suffix=""):
    return client.patch(world.url(f"/timetable/assignments/{assignment_id}{suffix}"),
                        json=body, headers=world.headers(who))


def error(response) -> tuple[int, str]:
    return response.status_code, response.json["error"]["code"]


# PATCH

def test_patch_moves_a_lesson_and_checks_the_new_slot_as_a_booking(client, world, periods):
    lesson = assign(client, world, world.staff, periods[0]).json
    assign(client, world, world.staff2, periods[1],
           classes=[{"class_id": "9-B", "subject": "Art", "room_number": "Room 101"}])
    assign(client, world, world.staff, periods[2], day=TUESDAY,
           classes=[{"class_id": "8-C", "subject": "Maths"}])

    room_clash = patch(client, world, lesson["id"], {"period_id": periods[1]["id"]})
    staff_clash = patch(client, world, lesson["id"], {"period_id": periods[2]["id"],
                                                      "day_of_week": TUESDAY})
    assert [error(room_clash), error(staff_clash)] == [(409, "room_taken"), (409, "slot_taken")]

    moved = patch(client, world, lesson["id"], {"period_id": periods[1]["id"],
                                                "room_number": "Room 7"})
    assert moved.status_code == 200, moved.json
    assert (moved.json["id"], moved.json["period_id"], moved.json["classes"][0]["room_number"]) \
        == (lesson["id"], periods[1]["id"], "Room 7")
    assert moved.json["updated_by"] == str(world.admin.id)
    # in exactly one slot, the new one; the old slot is free for the class again
    assert [(a.period_id, a.version) for a in stored_assignments(world.school.id)
            if str(a.id) == lesson["id"]] == [(ObjectId(periods[1]["id"]), 1)]
    week = grid(client, world, world.staff)
    assert slot(week, MONDAY, periods[0])["status"] == "empty"
    assert slot(week, MONDAY, periods[1])["assignment"]["id"] == lesson["id"]
    assert assign(client, world, world.staff2, periods[0],
                  classes=[{"class_id": "10-A", "subject": "Maths"}]).status_code == 201
    assert audited(world, "update", "timetable_assignment") == 1


def test_patch_changes_the_subject_and_room_in_place(client, world, periods):
    lesson = assign(client, world, world.staff, periods[0], classes=[
        {"class_id": "10-A", "subject": "Maths", "room_number": "R1"},
        {"class_id": "10-B", "subject": "Maths", "room_number": "R1"}]).json
    assign(client, world, world.staff2, periods[0],
           classes=[{"class_id": "9-B", "subject": "Art", "room_number": "Studio"}])
    assert error(patch(client, world, lesson["id"], {"room_number": "studio"})) == \
        (409, "room_taken")
    changed = patch(client, world, lesson["id"], {"subject": "Statistics", "room_number": "R2"})
    assert changed.status_code == 200
    assert [(c["subject"], c["room_number"]) for c in changed.json["classes"]] == \
        [("Statistics", "R2")] * 2
    assert changed.json["version"] == 1


def test_patch_one_class(client, world, periods):
    lesson = assign(client, world, world.staff, periods[0], classes=[
        {"class_id": "10/A", "subject": "Maths", "room_number": "R1"},
        {"class_id": "10/B", "subject": "Maths", "room_number": "R1"}]).json
    changed = patch(client, world, lesson["id"], {"room_number": "R9", "student_count": 12},
                    suffix="/classes/10%2FB")
    assert changed.status_code == 200, changed.json
    assert [(c["class_id"], c["room_number"], c["student_count"])
            for c in changed.json["classes"]] == [("10/A", "R1", None), ("10/B", "R9", 12)]
    missing = patch(client, world, lesson["id"], {"subject": "x"}, suffix="/classes/10%2FC")
    assert missing.status_code == 404
    assert audited(world, "update_class", "timetable_assignment") == 1


def test_staff_may_not_patch_a_lesson_they_did_not_create(client, world, periods):
    lesson = assign(client, world, world.staff, periods[0]).json
    assert error(patch(client, world, lesson["id"], {"subject": "Art"}, who="staff")) == \
        (403, "not_creator")
    assert patch(client, world, lesson["id"], {"subject": "Art"}, who="staff2").status_code \
        == 404
    assert stored_assignment(lesson["id"]).classes[0].subject == "Mathematics"


def test_an_interrupted_move_is_settled_by_repair(client, world, periods):
    """A crash between the two writes of a move leaves the lesson in both slots: repair keeps
    the moved copy when the original is unchanged since."""
    lesson = assign(client, world, world.staff, periods[0]).json
    original = stored_assignment(lesson["id"])
    copy = original.to_mongo().to_dict()
    long_ago = utcnow() - timedelta(minutes=10)
    copy.update(version=1, move_id=ObjectId.from_datetime(long_ago))
    slots().update_one({"school_id": world.school.id, "day_of_week": TUESDAY,
                        "period_id": ObjectId(periods[0]["id"])},
                       {"$set": {"assignments": [copy], "version": 1}}, upsert=True)
    assert len([a for a in stored_assignments(world.school.id)
                if str(a.id) == lesson["id"]]) == 2

    lines = []
    run_repair(world.school.code, lines.append)

    assert [(a.day_of_week, a.version) for a in stored_assignments(world.school.id)
            if str(a.id) == lesson["id"]] == [(TUESDAY, 1)]
    assert lessons_in_two_slots(TimetableSlot._get_db()) == []
    assert any("found in two slots: moved" in line for line in lines)


# lock and unlock

def test_a_locked_lesson_refuses_requests_and_staff_edits_until_unlocked(client, world,
                                                                          periods):
    lesson = assign(client, world, world.staff, periods[0]).json
    url = world.url(f"/timetable/assignments/{lesson['id']}")
    assert client.post(f"{url}/lock", json={"reason": "Exam"},
                       headers=world.headers("staff")).status_code == 403
    locked = client.post(f"{url}/lock", json={"reason": "Mock exam"},
                         headers=world.headers("admin"))
    assert locked.status_code == 200
    assert (locked.json["locked"], locked.json["locked_reason"]) == (True, "Mock exam")
    week = grid(client, world, world.staff)
    assert slot(week, MONDAY, periods[0])["locked"] is True
    assert slot(week, MONDAY, periods[0])["assignment"]["locked"] is True
    assert slot(week, MONDAY, periods[0])["assignment"]["updated_by"] == str(world.admin.id)

    request = client.post(world.url("/timetable/alteration-requests"), headers=world.headers(
        "staff"), json={"assignment_id": lesson["id"], "target_staff_id": str(world.staff2.id),
                        "reason": "Dentist"})
    edit = client.post(f"{url}/classes", json={"class_id": "10-B", "subject": "Maths"},
                       headers=world.headers("staff"))
    assert [error(request), error(edit)] == [(403, "locked"), (403, "locked")]
    # admins still edit it
    assert patch(client, world, lesson["id"], {"room_number": "R5"}).status_code == 200

    unlocked = client.post(f"{url}/unlock", headers=world.headers("admin"))
    assert unlocked.json["locked"] is False and unlocked.json["locked_reason"] is None
    again = client.post(world.url("/timetable/alteration-requests"), headers=world.headers(
        "staff"), json={"assignment_id": lesson["id"], "target_staff_id": str(world.staff2.id),
                        "reason": "Dentist"})
    assert again.status_code == 201
    assert (audited(world, "lock", "timetable_assignment"),
            audited(world, "unlock", "timetable_assignment")) == (1, 1)


def test_a_lesson_locked_after_the_request_fails_the_accept(client, world, periods):
    lesson = assign(client, world, world.staff, periods[0]).json
    request = client.post(world.url("/timetable/alteration-requests"), headers=world.headers(
        "staff"), json={"assignment_id": lesson["id"], "target_staff_id": str(world.staff2.id),
                        "reason": "Dentist"}).json
    client.post(world.url(f"/timetable/assignments/{lesson['id']}/lock"),
                json={"reason": "Inspection"}, headers=world.headers("admin"))
    accepted = client.post(world.url(f"/timetable/alteration-requests/{request['id']}/accept"),
                           json={}, headers=world.headers("staff2"))
    assert error(accepted) == (403, "locked")
    assert stored_assignment(lesson["id"]).staff_id == world.staff.id


# class and room grids

def test_class_and_room_grids(client, world, periods):
    assign(client, world, world.staff, periods[0], classes=[
        {"class_id": "10/A", "subject": "Maths", "room_number": "Lab 1/2"}])
    assign(client, world, world.staff2, periods[1], day=TUESDAY, classes=[
        {"class_id": "10/a ", "subject": "Physics", "room_number": "Hall"}])
    assign(client, world, world.staff2, periods[2], classes=[
        {"class_id": "9-B", "subject": "Art", "room_number": "Lab 1/2"}])
    headers = world.headers("staff")

    week = client.get(world.url("/timetable/classes/10%2FA"), headers=headers)
    assert week.status_code == 200, week.json
    taught = [(day["day_of_week"], s["period_number"], s["assignment"]["classes"][0]["subject"],
               s["assignment"]["staff_name"])
              for day in week.json["days"] for s in day["slots"] if s["status"] == "assigned"]
    assert taught == [(MONDAY, 1, "Maths", world.staff.name),
                      (TUESDAY, 2, "Physics", world.staff2.name)]
    assert week.json["class_id"] == "10/A" and len(week.json["days"]) == 5
    room = client.get(world.url("/timetable/rooms/lab%201%2F2"), headers=headers).json
    assert [(d["day_of_week"], s["period_number"]) for d in room["days"] for s in d["slots"]
            if s["assignments"]] == [(MONDAY, 1), (MONDAY, 3)]
    assert client.get(world.url("/timetable/classes/10%2FA"),
                      headers=world.headers("student")).status_code == 403


def test_class_and_room_grids_take_the_same_round_trips_at_two_sizes(client, world, periods,
                                                                    roundtrips):
    def cost(path):
        with roundtrips() as commands:
            assert client.get(world.url(path), headers=world.headers("admin")).status_code == 200
        return len(commands)

    paths = ["/timetable/classes/10-A", "/timetable/rooms/Room%20101",
             "/timetable/classes/10-A?date=2026-11-30"]
    assign(client, world, world.staff, periods[0])
    small = [cost(path) for path in paths]
    for index in range(12):
        person = world.add_user(world.school, "staff", department="Science")
        assign(client, world, person, periods[index % 3], day=index % 5,
               classes=[{"class_id": f"C{index}", "subject": "S", "room_number": f"R{index}"}])
    large = [cost(path) for path in paths]
    assert small == large
    assert large[:2] == [3 + REQUEST_OVERHEAD] * 2 and large[2] <= 6 + REQUEST_OVERHEAD


# keys containing "/"

def test_keys_with_a_slash_are_created_read_removed_and_locked(client, world, periods):
    admin = world.headers("admin")
    lesson = assign(client, world, world.staff, periods[0], classes=[
        {"class_id": "10/A", "subject": "Maths"}, {"class_id": "10/B", "subject": "Maths"}]).json
    removed = client.delete(world.url(f"/timetable/assignments/{lesson['id']}/classes/10%2FA"),
                            headers=admin)
    assert removed.status_code == 200, removed.json
    assert [c["class_id"] for c in removed.json["classes"]] == ["10/B"]
    assert client.get(world.url("/timetable/classes/10%2FA"), headers=admin).json["days"][0][
        "slots"][0]["status"] == "empty"

    world.add_user(world.school, "staff", department="Design/Tech")
    locked = client.put(world.url("/timetable/department-permissions/Design%2FTech"),
                        json={"allow_inbound": False}, headers=admin)
    assert locked.status_code == 200, locked.json
    listed = client.get(world.url("/timetable/department-permissions"), headers=admin).json
    assert {"department": "Design/Tech", "allow_inbound": False} in [
        {k: p[k] for k in ("department", "allow_inbound")} for p in listed["items"]]


@pytest.mark.integration
def test_keys_with_a_slash_work_through_gunicorn(live):
    """gunicorn decodes %2F before routing: the path converter takes the key whole."""
    import requests

    world = live.world
    admin = world.headers("admin")
    base = live.url(world.url(""))
    period = requests.post(f"{base}/timetable/periods", headers=admin, timeout=30, json={
        "period_number": 1, "period_name": "P1", "start_time": "08:00",
        "end_time": "08:45"}).json()
    lesson = requests.post(f"{base}/timetable/assignments", headers=admin, timeout=30, json={
        "staff_id": str(world.staff.id), "period_id": period["id"], "day_of_week": 0,
        "classes": [{"class_id": "10/A", "subject": "Maths", "room_number": "D/T 1"},
                    {"class_id": "10/B", "subject": "Maths"}]}).json()
    room = requests.get(f"{base}/timetable/rooms/D%2FT%201", headers=admin, timeout=30)
    assert room.status_code == 200
    assert room.json()["days"][0]["slots"][0]["assignment"]["id"] == lesson["id"]
    removed = requests.delete(f"{base}/timetable/assignments/{lesson['id']}/classes/10%2FA",
                              headers=admin, timeout=30)
    assert removed.status_code == 200
    world.add_user(world.school, "staff", department="Design/Tech")
    locked = requests.put(f"{base}/timetable/department-permissions/Design%2FTech",
                          headers=admin, json={"allow_inbound": False}, timeout=30)
    assert (locked.status_code, locked.json()["department"]) == (200, "Design/Tech")
    assert [c.class_id for c in TimetableSlot.objects.get(
        school_id=world.school.id).assignments[0].classes] == ["10/B"]


@pytest.mark.integration
def test_parallel_moves_of_one_lesson_leave_it_in_one_slot(live):
    """Eight admins move one lesson to eight different slots at once: each move adds its copy
    first, and only a move that still finds the original where it read it removes it; the
    others take their copies back (409 `assignment_changed`)."""
    import requests

    world = live.world
    admin = world.headers("admin")
    base = live.url(world.url(""))
    made = [requests.post(f"{base}/timetable/periods", headers=admin, timeout=30, json={
        "period_number": n, "period_name": f"P{n}", "start_time": f"{7 + n:02d}:00",
        "end_time": f"{7 + n:02d}:45"}).json() for n in (1, 2, 3)]
    lesson = requests.post(f"{base}/timetable/assignments", headers=admin, timeout=30, json={
        "staff_id": str(world.staff.id), "period_id": made[0]["id"], "day_of_week": 0,
        "classes": [{"class_id": "10-A", "subject": "Maths"}]}).json()
    targets = [(day, period["id"]) for day in range(1, 5) for period in made[1:]][:8]

    responses = parallel(8, lambda i: requests.patch(
        f"{base}/timetable/assignments/{lesson['id']}", headers=admin, timeout=30,
        json={"day_of_week": targets[i][0], "period_id": targets[i][1]}))

    codes = Counter(r.status_code for r in responses)
    assert set(codes) <= {200, 409} and codes[200] >= 1, codes
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} <= \
        {"assignment_changed"}
    placed = [(s.day_of_week, str(s.period_id)) for s in TimetableSlot.objects(
        school_id=world.school.id) if any(str(a.id) == lesson["id"] for a in s.assignments)]
    assert len(placed) == 1 and placed[0] in {targets[i] for i, r in enumerate(responses)
                                              if r.status_code == 200}
    assert lessons_in_two_slots(TimetableSlot._get_db()) == []


def test_dated_class_and_room_grids_apply_that_weeks_changes(client, world, periods):
    """A lesson moved to another room on Monday 2026-11-30 leaves its room's grid for that
    week and shows in the new room's; a cancellation shows on the class grid."""
    admin = world.headers("admin")
    moved = assign(client, world, world.staff, periods[0], classes=[
        {"class_id": "10/A", "subject": "Maths", "room_number": "R1"}]).json
    cancelled = assign(client, world, world.staff2, periods[1], classes=[
        {"class_id": "10/A", "subject": "Physics", "room_number": "R2"}]).json
    for lesson, change in ((moved, {"action": "room", "room": "Hall"}),
                           (cancelled, {"action": "cancel"})):
        response = client.post(world.url("/timetable/cover"), headers=admin, json={
            "date": "2026-11-30", "assignment_id": lesson["id"], **change})
        assert response.status_code == 201, response.json

    def monday(path):
        found = client.get(world.url(path), headers=admin).json
        return found["days"][0], [s["assignment"]["id"] if s["assignment"] else None
                                  for s in found["days"][0]["slots"]]

    day, r1 = monday("/timetable/rooms/R1?date=2026-12-02")
    assert (day["date"], r1) == ("2026-11-30", [None, None, None])
    assert monday("/timetable/rooms/hall?date=2026-12-02")[1] == [moved["id"], None, None]
    assert monday("/timetable/rooms/R1")[1] == [moved["id"], None, None]  # the weekly grid
    assert monday("/timetable/rooms/R1?date=2026-12-09")[1] == [moved["id"], None, None]
    week = client.get(world.url("/timetable/classes/10%2Fa?date=2026-11-30"), headers=admin)
    changes = [s["changes"] for s in week.json["days"][0]["slots"]]
    assert [[c["action"] for c in found] for found in changes] == [["room"], ["cancel"], []]
