"""Timetable: settings, periods, many-class assignments, overrides, self-allocation, the grid
and the periods importer. Helpers at the top are shared by the other test_timetable files."""

from __future__ import annotations

import pytest
from bson import ObjectId

from documents.audit import AuditEvent, Notification
from documents.timetable import Assignment, TimetableSlot
from service.context import Actor, SchoolContext
from service.imports import CREATED, REJECTED, UNCHANGED, UPDATED, Row
from service.timetable import export_periods, import_periods
from tests.helpers import REQUEST_OVERHEAD

MONDAY, TUESDAY = 0, 1


# helpers shared by the timetable tests

def make_periods(client, world, count=8, first_start=8 * 60, minutes=45, gap=5) -> list[dict]:
    """`count` back-to-back periods from 08:00 (admin), returned as created."""
    periods = []
    for number in range(1, count + 1):
        start = first_start + (number - 1) * (minutes + gap)
        body = {"period_number": number, "period_name": f"Period {number}",
                "start_time": f"{start // 60:02d}:{start % 60:02d}",
                "end_time": f"{(start + minutes) // 60:02d}:{(start + minutes) % 60:02d}"}
        response = client.post(world.url("/timetable/periods"), json=body,
                               headers=world.headers("admin"))
        assert response.status_code == 201, response.json
        periods.append(response.json)
    return periods


def assign(client, world, staff, period, day=MONDAY, classes=None, headers=None):
    body = {"staff_id": str(staff.id), "period_id": period["id"], "day_of_week": day,
            "classes": classes if classes is not None else [
                {"class_id": "10-A", "subject": "Mathematics", "room_number": "Room 101",
                 "student_count": 28}]}
    return client.post(world.url("/timetable/assignments"), json=body,
                       headers=headers or world.headers("admin"))


def grid(client, world, staff, viewer=None):
    response = client.get(world.url(f"/timetable/staff/{staff.id}"),
                          headers=world.headers(viewer or staff))
    assert response.status_code == 200, response.json
    return response.json


def slot(grid_body, day, period):
    day_row = next(d for d in grid_body["days"] if d["day_of_week"] == day)
    return next(s for s in day_row["slots"] if s["period_id"] == period["id"])


def notifications_of(user, kind="") -> list[str]:
    return [n.message for n in Notification.objects(user_id=user.id) if kind in n.kind]


def stored_assignments(school_id) -> list[Assignment]:
    """Every assignment of the school as stored, inside its slot documents."""
    return [a for found in TimetableSlot.objects(school_id=school_id) for a in found.placed()]


def stored_assignment(assignment_id) -> Assignment:
    wanted = ObjectId(str(assignment_id))
    found = TimetableSlot.objects(__raw__={"assignments.id": wanted}).get()
    return next(a for a in found.placed() if a.id == wanted)


def audited(world, action, entity_type) -> int:
    return AuditEvent.objects(school_id=world.school.id, action=action,
                              entity_type=entity_type).count()


# settings and periods

def test_settings_default_and_admin_changes_them(client, world):
    url = world.url("/timetable/settings")
    current = client.get(url, headers=world.headers("staff")).json
    assert current["working_days"] == [0, 1, 2, 3, 4]
    assert current["allow_overlapping_assignments"] is False
    body = {"working_days": [5, 0, 1, 2, 3, 4], "default_period_duration": 40}
    assert client.put(url, json=body, headers=world.headers("staff")).status_code == 403
    changed = client.put(url, json=body, headers=world.headers("admin"))
    assert changed.status_code == 200
    assert changed.json["working_days"] == [0, 1, 2, 3, 4, 5]
    assert changed.json["default_period_duration"] == 40
    assert audited(world, "update_settings", "timetable_settings") == 1
    bad = client.put(url, json={"working_days": [7]}, headers=world.headers("admin"))
    assert bad.status_code == 422


def test_a_working_day_with_assignments_cannot_be_removed(client, world):
    url, headers = world.url("/timetable/settings"), world.headers("admin")
    period = make_periods(client, world, count=1)[0]
    assert assign(client, world, world.staff, period, day=TUESDAY).status_code == 201
    refused = client.put(url, json={"working_days": [0, 2, 3, 4]}, headers=headers)
    assert refused.status_code == 409
    assert refused.json["error"]["code"] == "day_in_use"
    assert "Tuesday" in refused.json["error"]["message"]
    assert client.get(url, headers=headers).json["working_days"] == [0, 1, 2, 3, 4]
    fewer = client.put(url, json={"working_days": [1, 2, 3]}, headers=headers)
    assert fewer.status_code == 200 and fewer.json["working_days"] == [1, 2, 3]


def test_switching_overlapping_off_guards_the_bookings_made_meanwhile(client, world):
    url, headers = world.url("/timetable/settings"), world.headers("admin")
    client.put(url, json={"allow_overlapping_assignments": True}, headers=headers)
    period = make_periods(client, world, count=1)[0]
    assert assign(client, world, world.staff, period).status_code == 201
    client.put(url, json={"allow_overlapping_assignments": False}, headers=headers)
    again = assign(client, world, world.staff2, period)
    assert (again.status_code, again.json["error"]["code"]) == (409, "class_taken")


def test_period_duration_is_computed_and_rules_hold(client, world):
    url, headers = world.url("/timetable/periods"), world.headers("admin")
    first = client.post(url, json={"period_number": 1, "period_name": "First",
                                   "start_time": "08:00", "end_time": "08:45"}, headers=headers)
    assert first.status_code == 201
    assert first.json["duration_minutes"] == 45
    backwards = client.post(url, json={"period_number": 2, "period_name": "X",
                                       "start_time": "10:00", "end_time": "09:00"},
                            headers=headers)
    assert backwards.status_code == 422
    assert "end_time" in backwards.json["error"]["details"]
    taken = client.post(url, json={"period_number": 1, "period_name": "Again",
                                   "start_time": "11:00", "end_time": "11:45"}, headers=headers)
    assert taken.status_code == 409
    assert taken.json["error"]["code"] == "period_number_taken"
    overlapping = client.post(url, json={"period_number": 2, "period_name": "Overlap",
                                         "start_time": "08:30", "end_time": "09:15"},
                              headers=headers)
    assert overlapping.status_code == 409
    assert overlapping.json["error"]["code"] == "period_overlap"
    touching = client.post(url, json={"period_number": 2, "period_name": "Second",
                                      "start_time": "08:45"}, headers=headers)
    assert touching.status_code == 201
    assert touching.json["end_time"] == "09:30"  # default duration of 45 minutes
    assert audited(world, "create", "timetable_period") == 2


def test_periods_list_patch_and_soft_delete(client, world):
    periods = make_periods(client, world, count=3)
    headers = world.headers("admin")
    listed = client.get(world.url("/timetable/periods"), headers=world.headers("staff")).json
    assert [p["period_number"] for p in listed["items"]] == [1, 2, 3]
    url = world.url(f"/timetable/periods/{periods[2]['id']}")
    patched = client.patch(url, json={"period_name": "Last", "end_time": "10:30"},
                           headers=headers)
    assert patched.status_code == 200
    assert patched.json["duration_minutes"] == 50  # 09:40-10:30
    clash = client.patch(url, json={"start_time": "08:40"}, headers=headers)
    assert clash.status_code == 409
    assert client.delete(url, headers=world.headers("staff")).status_code == 403
    assert client.delete(url, headers=headers).status_code == 204
    assert client.delete(url, headers=headers).status_code == 404
    listed = client.get(world.url("/timetable/periods"), headers=headers).json
    assert [p["period_number"] for p in listed["items"]] == [1, 2]
    reused = client.post(world.url("/timetable/periods"), json={
        "period_number": 3, "period_name": "New third", "start_time": "09:40",
        "end_time": "10:20"}, headers=headers)
    assert reused.status_code == 201  # a deleted period frees its number and time
    assert audited(world, "delete", "timetable_period") == 1


def test_scenario_1_a_ninth_period_appears_on_every_staff_grid(client, world):
    make_periods(client, world, count=8, minutes=40)  # the last ends 13:55
    ninth = client.post(world.url("/timetable/periods"), json={
        "period_number": 9, "period_name": "Period 9", "start_time": "14:00",
        "end_time": "14:30"}, headers=world.headers("admin"))
    assert ninth.status_code == 201
    for person in ("staff", "staff2"):
        body = grid(client, world, world.people[person])
        assert [p["period_number"] for p in body["periods"]] == list(range(1, 10))
        for day in body["days"]:
            assert [s["period_number"] for s in day["slots"]] == list(range(1, 10))
            assert slot(body, day["day_of_week"], ninth.json)["status"] == "empty"


# assignments

def test_assignment_with_many_classes(client, world):
    period = make_periods(client, world, count=1)[0]
    created = assign(client, world, world.staff, period, classes=[
        {"class_id": "10-A", "subject": "Physics", "room_number": "Lab 1", "student_count": 20},
        {"class_id": "10-B", "subject": "Physics", "room_number": "Lab 1"}])
    assert created.status_code == 201
    assert [c["class_id"] for c in created.json["classes"]] == ["10-A", "10-B"]
    assert created.json["assignment_type"] == "regular"
    assert created.json["locked"] is False
    cell = slot(grid(client, world, world.staff), MONDAY, period)
    assert cell["status"] == "assigned"
    assert cell["assignment"]["id"] == created.json["id"]
    assert audited(world, "create", "timetable_assignment") == 1


def test_no_double_booking_of_staff_class_or_room(client, world):
    period = make_periods(client, world, count=1)[0]
    assert assign(client, world, world.staff, period).status_code == 201
    again = assign(client, world, world.staff, period,
                   classes=[{"class_id": "11-C", "subject": "Art"}])
    assert again.status_code == 409
    assert again.json["error"]["code"] == "slot_taken"
    same_class = assign(client, world, world.staff2, period,
                        classes=[{"class_id": " 10-a ", "subject": "Mathematics"}])
    assert same_class.status_code == 409
    assert same_class.json["error"]["code"] == "class_taken"
    same_room = assign(client, world, world.staff2, period,
                       classes=[{"class_id": "12-B", "subject": "Art", "room_number": "room 101"}])
    assert same_room.status_code == 409
    assert same_room.json["error"]["code"] == "room_taken"
    other_day = assign(client, world, world.staff2, period, day=TUESDAY)
    assert other_day.status_code == 201
    # the refused requests wrote nothing: one assignment in each of the two slots
    assert sorted((a.day_of_week, a.staff_id) for a in stored_assignments(world.school.id)) \
        == [(MONDAY, world.staff.id), (TUESDAY, world.staff2.id)]


def test_overlapping_allowed_lets_a_class_be_taught_by_two(client, world):
    client.put(world.url("/timetable/settings"), json={"allow_overlapping_assignments": True},
               headers=world.headers("admin"))
    period = make_periods(client, world, count=1)[0]
    assert assign(client, world, world.staff, period).status_code == 201
    assert assign(client, world, world.staff2, period).status_code == 201
    assert assign(client, world, world.staff, period).json["error"]["code"] == "slot_taken"


def test_assignment_input_is_checked(client, world):
    period = make_periods(client, world, count=1)[0]
    foreign = assign(client, world, world.other_staff, period)
    assert foreign.status_code == 422
    assert "staff_id" in foreign.json["error"]["details"]
    student = assign(client, world, world.student, period)
    assert student.status_code == 422
    assert assign(client, world, world.staff, {"id": "0" * 24}).status_code == 422
    assert assign(client, world, world.staff, period, day=6).status_code == 422  # Sunday off
    twice = assign(client, world, world.staff, period, classes=[
        {"class_id": "7A", "subject": "Art"}, {"class_id": "7a", "subject": "Music"}])
    assert twice.status_code == 422
    assert assign(client, world, world.staff, period, classes=[]).status_code == 422
    blank = assign(client, world, world.staff, period, classes=[{"class_id": "  ",
                                                                 "subject": "Art"}])
    assert blank.status_code == 422
    assert assign(client, world, world.staff, period,
                  headers=world.headers("staff")).status_code == 403


def test_add_and_remove_classes(client, world):
    period = make_periods(client, world, count=1)[0]
    admin = world.headers("admin")
    mine = assign(client, world, world.staff, period).json
    other = assign(client, world, world.staff2, period,
                   classes=[{"class_id": "9-Z", "subject": "Art", "room_number": "Studio"},
                            {"class_id": "9-Y", "subject": "Art"}]).json
    url = world.url(f"/timetable/assignments/{mine['id']}/classes")
    added = client.post(url, json={"class_id": "10-B", "subject": "Mathematics",
                                   "room_number": "Room 101"}, headers=admin)
    assert added.status_code == 201
    assert [c["class_id"] for c in added.json["classes"]] == ["10-A", "10-B"]
    taken = client.post(url, json={"class_id": "9-z", "subject": "Art"}, headers=admin)
    assert taken.status_code == 409
    assert taken.json["error"]["code"] == "class_taken"
    duplicate = client.post(url, json={"class_id": "10-B", "subject": "Maths"}, headers=admin)
    assert duplicate.status_code == 409
    assert client.post(url, json={"class_id": "1", "subject": "x"},
                       headers=world.headers("staff2")).status_code == 404
    removed = client.delete(world.url(f"/timetable/assignments/{other['id']}/classes/9-Z"),
                            headers=admin)
    assert removed.status_code == 200
    assert [c["class_id"] for c in removed.json["classes"]] == ["9-Y"]
    # the class and the room are free now
    taken_now = client.post(url, json={"class_id": "9-Z", "subject": "Art",
                                       "room_number": "Studio"}, headers=admin)
    assert taken_now.status_code == 201
    assert len(taken_now.json["classes"]) == 3
    missing = client.delete(world.url(f"/timetable/assignments/{mine['id']}/classes/nope"),
                            headers=admin)
    assert missing.status_code == 404
    assert audited(world, "add_class", "timetable_assignment") == 2
    assert audited(world, "remove_class", "timetable_assignment") == 1


def test_a_taught_lesson_keeps_one_class_and_an_activity_may_have_none(client, world):
    period = make_periods(client, world, count=2)
    lesson = assign(client, world, world.staff, period[0]).json
    last = client.delete(world.url(f"/timetable/assignments/{lesson['id']}/classes/10-A"),
                         headers=world.headers("admin"))
    assert last.status_code == 409 and last.json["error"]["code"] == "last_class"
    assert [c.class_id for c in stored_assignment(lesson["id"]).classes] == ["10-A"]
    activity = client.post(world.url("/timetable/self-allocations"), headers=world.headers(
        "staff"), json={"period_id": period[1]["id"], "day_of_week": MONDAY,
                        "activity_name": "Maths extra",
                        "classes": [{"class_id": "10-A", "subject": "Maths"}]}).json
    emptied = client.delete(world.url(f"/timetable/assignments/{activity['id']}/classes/10-A"),
                            headers=world.headers("admin"))
    assert emptied.status_code == 200 and emptied.json["classes"] == []


def test_staff_change_classes_only_on_lessons_they_created(client, world):
    """An admin's lesson is not the staff member's to reshape; an unlocked self-allocation
    of their own is."""
    period = make_periods(client, world, count=2)
    staff = world.headers("staff")
    lesson = assign(client, world, world.staff, period[0]).json
    add = client.post(world.url(f"/timetable/assignments/{lesson['id']}/classes"),
                      json={"class_id": "10-B", "subject": "Maths"}, headers=staff)
    remove = client.delete(world.url(f"/timetable/assignments/{lesson['id']}/classes/10-A"),
                           headers=staff)
    assert [(r.status_code, r.json["error"]["code"]) for r in (add, remove)] == \
        [(403, "not_creator")] * 2
    activity = client.post(world.url("/timetable/self-allocations"), headers=staff, json={
        "period_id": period[1]["id"], "day_of_week": MONDAY, "activity_name": "Maths extra"}).json
    url = world.url(f"/timetable/assignments/{activity['id']}/classes")
    locked = client.post(url, json={"class_id": "10-C", "subject": "Maths"}, headers=staff)
    assert (locked.status_code, locked.json["error"]["code"]) == (403, "locked")
    assert client.post(world.url(f"/timetable/assignments/{activity['id']}/unlock"),
                       headers=world.headers("admin")).status_code == 200
    added = client.post(url, json={"class_id": "10-C", "subject": "Maths"}, headers=staff)
    assert added.status_code == 201, added.json
    assert [c.class_id for c in stored_assignment(lesson["id"]).classes] == ["10-A"]


def test_deleting_an_assignment_frees_the_slot(client, world):
    period = make_periods(client, world, count=1)[0]
    created = assign(client, world, world.staff, period).json
    url = world.url(f"/timetable/assignments/{created['id']}")
    assert client.delete(url, headers=world.headers("staff")).status_code == 403
    assert client.delete(url, headers=world.headers("admin")).status_code == 204
    assert client.delete(url, headers=world.headers("admin")).status_code == 404
    assert assign(client, world, world.staff2, period).status_code == 201
    assert audited(world, "delete", "timetable_assignment") == 1


def test_assignment_list_filters_and_staff_see_their_own(client, world):
    periods = make_periods(client, world, count=2)
    assign(client, world, world.staff, periods[0])
    assign(client, world, world.staff2, periods[1],
           classes=[{"class_id": "8B", "subject": "Biology"}])
    admin = client.get(world.url(f"/timetable/assignments?period_id={periods[1]['id']}"),
                       headers=world.headers("admin")).json
    assert [a["staff_id"] for a in admin["items"]] == [str(world.staff2.id)]
    own = client.get(world.url("/timetable/assignments"), headers=world.headers("staff")).json
    assert own["total"] == 1 and own["items"][0]["staff_id"] == str(world.staff.id)
    other = client.get(world.url(f"/timetable/assignments?staff_id={world.staff2.id}"),
                       headers=world.headers("staff"))
    assert other.status_code == 403


def test_assignment_pages_are_ordered_by_day_period_and_staff(client, world, roundtrips):
    periods = make_periods(client, world, count=2)
    booked = [assign(client, world, person, period, day=day,
                     classes=[{"class_id": f"{day}-{n}-{person.name}", "subject": "Art"}]).json
              for day in (TUESDAY, MONDAY) for n, period in enumerate(reversed(periods))
              for person in (world.staff2, world.staff)]
    order = sorted(booked, key=lambda a: (a["day_of_week"], a["period_id"], a["staff_id"]))
    url, headers = world.url("/timetable/assignments?page_size=3"), world.headers("admin")
    pages = []
    for page in (1, 2, 3):
        with roundtrips() as commands:
            pages.append(client.get(f"{url}&page={page}", headers=headers).json)
        assert len(commands) <= 1 + REQUEST_OVERHEAD  # one aggregate: the slice and the count
    assert [p["total"] for p in pages] == [8, 8, 8]
    assert [a["id"] for p in pages for a in p["items"]] == [a["id"] for a in order]
    mine = client.get(world.url(f"/timetable/assignments?staff_id={world.staff.id}"
                                f"&day_of_week={MONDAY}"), headers=headers).json
    assert [a["id"] for a in mine["items"]] == [a["id"] for a in order
                                                 if a["staff_id"] == str(world.staff.id)
                                                 and a["day_of_week"] == MONDAY]


# override

def test_scenario_5_admin_override_moves_the_period_at_once(client, world):
    period = make_periods(client, world, count=1)[0]
    staff_c = world.add_user(world.school, "staff", department="History", name="Carla")
    created = assign(client, world, world.staff, period).json
    response = client.post(world.url(f"/timetable/assignments/{created['id']}/override"),
                           json={"new_staff_id": str(staff_c.id), "notes": "Cover for leave"},
                           headers=world.headers("admin"))
    assert response.status_code == 200
    assert response.json["staff_id"] == str(staff_c.id)
    assert response.json["assignment_type"] == "admin_override"
    assert response.json["original_staff_id"] == str(world.staff.id)
    assert response.json["override_notes"] == "Cover for leave"
    assert slot(grid(client, world, staff_c), MONDAY, period)["status"] == "overridden"
    given_away = slot(grid(client, world, world.staff), MONDAY, period)
    assert given_away["status"] == "overridden"
    assert given_away["assignment"]["staff_id"] == str(staff_c.id)
    assert any("Carla" in m for m in notifications_of(world.staff, "override"))
    assert notifications_of(staff_c, "override")
    assert audited(world, "override", "timetable_assignment") == 1


def test_override_refuses_a_booked_new_owner(client, world):
    period = make_periods(client, world, count=1)[0]
    created = assign(client, world, world.staff, period).json
    assign(client, world, world.staff2, period, classes=[{"class_id": "X1", "subject": "Art"}])
    url = world.url(f"/timetable/assignments/{created['id']}/override")
    busy = client.post(url, json={"new_staff_id": str(world.staff2.id)},
                       headers=world.headers("admin"))
    assert busy.status_code == 409
    assert busy.json["error"]["code"] == "slot_taken"
    assert stored_assignment(created["id"]).staff_id == world.staff.id
    assert client.post(url, json={"new_staff_id": str(world.staff2.id)},
                       headers=world.headers("staff")).status_code == 403


# self-allocation

def test_scenario_6_self_allocation_is_locked_for_staff(client, world):
    period = make_periods(client, world, count=1)[0]
    body = {"period_id": period["id"], "day_of_week": TUESDAY, "activity_name": "Math Extra",
            "classes": [{"class_id": "10-A", "subject": "Mathematics"}]}
    created = client.post(world.url("/timetable/self-allocations"), json=body,
                          headers=world.headers("staff"))
    assert created.status_code == 201
    assert created.json["is_locked"] is True
    assert created.json["assignment_type"] == "self_allocated"
    cell = slot(grid(client, world, world.staff), TUESDAY, period)
    assert cell["status"] == "self_added" and cell["assignment"]["locked"] is True
    url = world.url(f"/timetable/self-allocations/{created.json['id']}")
    denied = client.delete(url, headers=world.headers("staff"))
    assert denied.status_code == 403
    assert denied.json["error"]["code"] == "locked"
    assert client.delete(url, headers=world.headers("admin")).status_code == 204
    assert slot(grid(client, world, world.staff), TUESDAY, period)["status"] == "empty"
    assert audited(world, "self_allocate", "timetable_assignment") == 1
    assert audited(world, "delete_self_allocation", "timetable_assignment") == 1


def test_self_allocation_needs_an_empty_slot(client, world):
    period = make_periods(client, world, count=1)[0]
    assign(client, world, world.staff, period)
    body = {"period_id": period["id"], "day_of_week": MONDAY, "activity_name": "Extra"}
    taken = client.post(world.url("/timetable/self-allocations"), json=body,
                        headers=world.headers("staff"))
    assert taken.status_code == 409
    assert taken.json["error"]["code"] == "slot_taken"
    class_busy = client.post(world.url("/timetable/self-allocations"), json={
        **body, "classes": [{"class_id": "10-A", "subject": "Maths"}]},
        headers=world.headers("staff2"))
    assert class_busy.status_code == 409
    assert class_busy.json["error"]["code"] == "class_taken"
    regular = stored_assignments(world.school.id)[0]
    not_self = client.delete(world.url(f"/timetable/self-allocations/{regular.id}"),
                             headers=world.headers("admin"))
    assert not_self.status_code == 404


# the grid: who may see it

def test_staff_see_only_their_own_grid(client, world):
    make_periods(client, world, count=2)
    other = client.get(world.url(f"/timetable/staff/{world.staff2.id}"),
                       headers=world.headers("staff"))
    assert other.status_code == 403
    admin_view = grid(client, world, world.staff2, viewer="admin")
    assert admin_view["staff"]["id"] == str(world.staff2.id)
    assert len(admin_view["days"]) == 5
    assert client.get(world.url(f"/timetable/staff/{world.staff.id}"),
                      headers=world.headers("student")).status_code == 403
    assert client.get(world.url(f"/timetable/staff/{world.student.id}"),
                      headers=world.headers("admin")).status_code == 404
    assert client.get(world.url(f"/timetable/staff/{world.other_staff.id}"),
                      headers=world.headers("admin")).status_code == 404


def test_foreign_schools_and_switched_off_module(client, world):
    period = make_periods(client, world, count=1)[0]
    created = assign(client, world, world.staff, period).json
    foreign = client.get(world.url(f"/timetable/assignments/{created['id']}",
                                   world.other_school), headers=world.headers("other_admin"))
    assert foreign.status_code == 404
    assert client.get(world.url("/timetable/periods"),
                      headers=world.headers("foreign_admin")).status_code == 404
    world.set_modules(world.school, timetable=False)
    off = client.get(world.url("/timetable/periods"), headers=world.headers("admin"))
    assert off.status_code == 403
    assert off.json["error"]["code"] == "module_disabled"


# the periods importer

@pytest.fixture
def admin_ctx(world):
    actor = Actor(world.admin.id, "school_admin", world.company.id, world.school.id)
    return SchoolContext(actor=actor, school_id=world.school.id, company_id=world.company.id,
                         modules=frozenset({"timetable"}))


def test_import_periods_upserts_by_number_and_exports_back(client, world, admin_ctx):
    make_periods(client, world, count=2)
    rows = [Row(2, {"period_number": "1", "period_name": "Period 1", "start_time": "08:00",
                    "end_time": "08:45"}),
            Row(3, {"period_number": "2", "period_name": "Second", "start_time": "08:50",
                    "end_time": "09:35"}),
            Row(4, {"period_number": "3", "period_name": "Third", "start_time": "09:40",
                    "end_time": "10:25"}),
            Row(5, {"period_number": "4", "period_name": "Clash", "start_time": "10:00",
                    "end_time": "10:30"}),
            Row(6, {"period_number": "x", "period_name": "Bad", "start_time": "11:00",
                    "end_time": "11:30"}),
            Row(7, {"period_number": "5", "period_name": "Back", "start_time": "12:00",
                    "end_time": "11:00"})]
    dry = import_periods(admin_ctx, rows, dry_run=True)
    assert [r.status for r in dry] == [UNCHANGED, UPDATED, CREATED, REJECTED, REJECTED,
                                       REJECTED]
    assert len(client.get(world.url("/timetable/periods"),
                          headers=world.headers("admin")).json["items"]) == 2
    results = import_periods(admin_ctx, rows, dry_run=False)
    assert [r.status for r in results] == [r.status for r in dry]
    exported = list(export_periods(admin_ctx))
    assert [(r["period_number"], r["period_name"]) for r in exported] == [
        ("1", "Period 1"), ("2", "Second"), ("3", "Third")]
    again = import_periods(admin_ctx, [Row(i + 2, r) for i, r in enumerate(exported)], False)
    assert {r.status for r in again} == {UNCHANGED}
    imported = AuditEvent.objects(school_id=world.school.id,
                                  action__in=["import_create", "import_update"])
    assert imported.count() == 2


def test_demo_seed_builds_a_consistent_timetable(client, world, admin_ctx):
    from scripts.demo_timetable import seed

    staff = [world.add_user(world.school, "staff", department=department)
             for department in ("Mathematics", "Science", "Languages", "Library")]
    seed(admin_ctx, {"admin": world.admin, "staff": staff, "students": [world.student]})
    headers = world.headers("admin")
    assert client.get(world.url("/timetable/conflicts"), headers=headers).json["total"] == 0
    first = grid(client, world, staff[0], viewer="admin")
    statuses = {s["status"] for day in first["days"] for s in day["slots"]}
    assert {"assigned", "self_added", "altered_sent"} <= statuses
    pending = client.get(world.url("/timetable/alteration-requests?status=pending"),
                         headers=headers).json
    assert pending["total"] == 1
