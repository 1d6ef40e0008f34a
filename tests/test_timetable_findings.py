"""The timetable audit's findings, each as a user meets it: locked self-allocations, period
names in notifications, department-wide requests, deleting periods in use, real department
names and generated bell schedules."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from documents.timetable import AlterationRequest, TimetableSlot
from service.errors import ValidationFailed
from service.timetable import bell_schedule
from tests.helpers import parallel
from tests.test_timetable import (
    MONDAY,
    assign,
    audited,
    make_periods,
    notifications_of,
    stored_assignments,
)
from tests.test_timetable_alterations import answer, ask


@pytest.fixture
def periods(client, world):
    return make_periods(client, world, count=3)


def error(response) -> tuple[int, str]:
    return response.status_code, response.json["error"]["code"]


def self_allocate(client, world, period, who="staff"):
    response = client.post(world.url("/timetable/self-allocations"), headers=world.headers(who),
                           json={"period_id": period["id"], "day_of_week": MONDAY,
                                 "activity_name": "Maths extra"})
    assert response.status_code == 201, response.json
    return response.json


def test_a_self_allocation_cannot_be_passed_on_and_stays_deletable(client, world, periods):
    activity = self_allocate(client, world, periods[0])
    assert error(ask(client, world, activity, target_staff_id=world.staff2)) == (403, "locked")
    assert error(ask(client, world, activity, target_department="Science")) == (403, "locked")
    # an admin's override hands it on, and it is still deletable as a self-allocation
    client.post(world.url(f"/timetable/assignments/{activity['id']}/override"),
                json={"new_staff_id": str(world.staff2.id)}, headers=world.headers("admin"))
    assert client.delete(world.url(f"/timetable/self-allocations/{activity['id']}"),
                         headers=world.headers("admin")).status_code == 204
    assert stored_assignments(world.school.id) == []


def test_notifications_name_the_period_never_an_id(client, world, periods):
    lesson = assign(client, world, world.staff, periods[2]).json
    ask(client, world, lesson, target_staff_id=world.staff2)
    client.post(world.url(f"/timetable/assignments/{lesson['id']}/override"),
                json={"new_staff_id": str(world.staff2.id)}, headers=world.headers("admin"))
    messages = notifications_of(world.staff2, "timetable") + notifications_of(world.staff,
                                                                               "timetable")
    assert len(messages) == 3
    assert all("Monday, Period 3, 09:40\u201310:25" in m for m in messages), messages
    assert not any(re.search(r"[0-9a-f]{24}", m) for m in messages)


# department-wide requests

@pytest.fixture
def scientists(world):
    return [world.staff2] + [world.add_user(world.school, "staff", department="Science")
                             for _ in range(2)]


def test_a_request_to_a_department_without_members_answers_422(client, world, periods):
    lesson = assign(client, world, world.staff, periods[0]).json
    nobody = ask(client, world, lesson, target_department="Astronomy")
    assert nobody.status_code == 422
    only_me = ask(client, world, lesson, target_department="mathematics ")
    assert only_me.status_code == 422
    assert AlterationRequest.objects(school_id=world.school.id).count() == 0


def test_one_members_decline_closes_the_request_for_them_only(client, world, periods,
                                                             scientists):
    lesson = assign(client, world, world.staff, periods[0]).json
    request = ask(client, world, lesson, target_department=" science").json
    assert request["target_department"] == "Science"
    first, second, _ = scientists
    declined = answer(client, world, request["id"], "reject", first)
    assert (declined.status_code, declined.json["status"]) == (200, "pending")
    incoming = client.get(world.url("/timetable/alteration-requests?box=incoming"),
                          headers=world.headers(first)).json
    assert incoming["total"] == 0
    assert error(answer(client, world, request["id"], "accept", first)) == (409, "declined")
    accepted = answer(client, world, request["id"], "accept", second)
    assert (accepted.status_code, accepted.json["status"]) == (200, "accepted")
    assert notifications_of(world.staff, "alteration") == [
        f"Your alteration request has been accepted by {second.name}."]


def test_the_request_is_rejected_once_every_member_declined(client, world, periods,
                                                           scientists):
    lesson = assign(client, world, world.staff, periods[0]).json
    request = ask(client, world, lesson, target_department="Science").json
    statuses = [answer(client, world, request["id"], "reject", person).json["status"]
                for person in scientists]
    assert statuses == ["pending", "pending", "rejected"]
    assert AlterationRequest.objects.get(id=request["id"]).status == "rejected"
    assert audited(world, "decline", "timetable_alteration") == 3
    assert len(notifications_of(world.staff, "alteration")) == 1


def test_cancelling_a_department_request_notifies_its_members(client, world, periods,
                                                             scientists):
    lesson = assign(client, world, world.staff, periods[0]).json
    request = ask(client, world, lesson, target_department="Science").json
    cancelled = answer(client, world, request["id"], "cancel", "staff")
    assert cancelled.json["status"] == "cancelled"
    assert [sum("cancelled" in m for m in notifications_of(person, "alteration"))
            for person in scientists] == [1, 1, 1]


# periods

def test_deleting_a_period_with_lessons_answers_409_or_ends_them_with_cascade(client, world,
                                                                            periods):
    admin = world.headers("admin")
    for day in (0, 1):
        assign(client, world, world.staff, periods[0], day=day)
    url = world.url(f"/timetable/periods/{periods[0]['id']}")
    assert error(client.delete(url, headers=admin)) == (409, "period_in_use")
    assert len(stored_assignments(world.school.id)) == 2
    assert client.delete(url + "?cascade=true", headers=admin).status_code == 204
    assert stored_assignments(world.school.id) == []
    assert audited(world, "end_with_period", "timetable_assignment") == 2
    listed = client.get(world.url("/timetable/periods"), headers=admin).json
    assert [p["period_number"] for p in listed["items"]] == [2, 3]
    # a period without lessons goes without cascade
    assert client.delete(world.url(f"/timetable/periods/{periods[1]['id']}"),
                         headers=admin).status_code == 204


def test_generate_a_bell_schedule(client, world):
    admin = world.headers("admin")
    made = client.post(world.url("/timetable/periods/generate"), headers=admin, json={
        "first_start": "08:30", "count": 4, "duration": 40,
        "breaks": [{"after_period": 2, "minutes": 20}]})
    assert made.status_code == 201, made.json
    assert [(p["period_number"], p["period_name"], p["start_time"], p["end_time"])
            for p in made.json["items"]] == [
        (1, "Period 1", "08:30", "09:10"), (2, "Period 2", "09:10", "09:50"),
        (3, "Period 3", "10:10", "10:50"), (4, "Period 4", "10:50", "11:30")]
    clash = client.post(world.url("/timetable/periods/generate"), headers=admin,
                        json={"first_start": "11:00", "count": 2})
    assert error(clash) == (409, "period_overlap")
    assert client.get(world.url("/timetable/periods"), headers=admin).json["total"] == 4
    assert audited(world, "generate", "timetable_period") == 4


def test_a_new_schools_generated_schedule_has_eight_periods(client, world):
    made = client.post(world.url("/timetable/periods/generate"), headers=world.headers("admin"),
                       json={"first_start": "08:00"})
    assert made.status_code == 201
    assert [p["end_time"] for p in made.json["items"]][::7] == ["08:45", "14:00"]
    assert made.json["total"] == 8


@given(first_start=st.integers(0, 12 * 60), count=st.integers(1, 12),
       length=st.integers(5, 90),
       pauses=st.dictionaries(st.integers(1, 12), st.integers(1, 60), max_size=4))
def test_a_bell_schedule_is_periods_of_one_length_apart_by_exactly_the_breaks(
        first_start, count, length, pauses):
    try:
        times = bell_schedule(first_start, count, length, pauses)
    except ValidationFailed:
        assert first_start + count * length + sum(
            m for n, m in pauses.items() if n < count) > 24 * 60
        return
    assert len(times) == count and times[0][0] == first_start
    assert all(end - start == length for start, end in times)
    assert [nxt[0] - cur[1] for cur, nxt in zip(times, times[1:], strict=False)] == \
        [pauses.get(n, 0) for n in range(1, count)]
    assert times[-1][1] <= 24 * 60


# departments

def test_department_permissions_only_for_real_departments(client, world, periods):
    admin = world.headers("admin")
    typo = client.put(world.url("/timetable/department-permissions/Mathmatics"),
                      json={"allow_alterations": False}, headers=admin)
    assert typo.status_code == 422
    real = client.put(world.url("/timetable/department-permissions/%20mathematics%20"),
                      json={"allow_alterations": False}, headers=admin)
    assert (real.status_code, real.json["department"]) == (200, "Mathematics")
    lesson = assign(client, world, world.staff, periods[0]).json
    assert error(ask(client, world, lesson, target_staff_id=world.staff2)) == \
        (403, "department_locked")
    names = [p["department"] for p in client.get(
        world.url("/timetable/department-permissions"), headers=admin).json["items"]]
    assert "Mathmatics" not in names and names.count("Mathematics") == 1


@pytest.mark.integration
@pytest.mark.parametrize("cascade", [False, True])
def test_deleting_a_period_racing_bookings_never_orphans_a_lesson(live, cascade):
    """One delete of a period and nine bookings into it at once: whichever wins, no lesson
    is left in a deleted period, and every booking answered 201 is kept unless the delete
    ended it (cascade)."""
    import requests

    world = live.world
    admin = world.headers("admin")
    base = live.url(world.url(""))
    period = requests.post(f"{base}/timetable/periods", headers=admin, timeout=30, json={
        "period_number": 1, "period_name": "P1", "start_time": "08:00",
        "end_time": "08:45"}).json()
    staff = [world.add_user(world.school, "staff", department="Science") for _ in range(9)]

    def call(i):
        if i == 0:
            return requests.delete(f"{base}/timetable/periods/{period['id']}"
                                   + ("?cascade=true" if cascade else ""),
                                   headers=admin, timeout=30)
        return requests.post(f"{base}/timetable/assignments", headers=admin, timeout=30, json={
            "staff_id": str(staff[i - 1].id), "period_id": period["id"], "day_of_week": 0,
            "classes": [{"class_id": f"C{i}", "subject": "S"}]})

    responses = parallel(10, call)

    deleted = responses[0].status_code == 204
    assert responses[0].status_code in {204, 409}
    assert {r.status_code for r in responses[1:]} <= {201, 409, 422}
    stored = {str(a.id) for s in TimetableSlot.objects(school_id=world.school.id)
              for a in s.assignments}
    booked = {r.json()["id"] for r in responses[1:] if r.status_code == 201}
    if deleted:
        assert stored == set()
    else:
        assert stored == booked and booked


def test_a_colleague_teaching_only_in_the_other_ab_week_is_not_busy(client, world, periods):
    admin = world.headers("admin")
    mine = client.post(world.url("/timetable/assignments"), headers=admin, json={
        "staff_id": str(world.staff.id), "period_id": periods[0]["id"], "day_of_week": MONDAY,
        "week": "A", "classes": [{"class_id": "10-A", "subject": "Maths"}]}).json
    client.post(world.url("/timetable/assignments"), headers=admin, json={
        "staff_id": str(world.staff2.id), "period_id": periods[0]["id"],
        "day_of_week": MONDAY, "week": "B", "classes": [{"class_id": "9-B", "subject": "Art"}]})
    asked = ask(client, world, mine, target_staff_id=world.staff2)
    assert asked.status_code == 201, asked.json
    assert answer(client, world, asked.json["id"], "accept", "staff2").status_code == 200
