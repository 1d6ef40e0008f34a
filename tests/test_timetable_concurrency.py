"""Parallel requests against the live server (gunicorn, several workers, SecantusDB): the
slot document keeps one owner per period and no double booking, whoever is fastest."""

from __future__ import annotations

from collections import Counter

import pytest
import requests

from documents.audit import AuditEvent, Notification
from documents.timetable import AlterationRequest, TimetableSlot
from scripts.invariants import (
    accepted_swaps_not_executed_once,
    class_and_room_double_bookings,
    staff_double_bookings,
)
from tests.helpers import parallel

pytestmark = pytest.mark.integration
TIMEOUT = 30


def post(live, path, body, headers):
    return requests.post(live.url(live.world.url(path)), json=body, headers=headers,
                         timeout=TIMEOUT)


def first_period(live) -> dict:
    response = post(live, "/timetable/periods", {"period_number": 1, "period_name": "First",
                                                 "start_time": "08:00", "end_time": "08:45"},
                    live.world.headers("admin"))
    assert response.status_code == 201, response.text
    return response.json()


def stored_slot(world, period) -> TimetableSlot:
    return TimetableSlot.objects.get(school_id=world.school.id, day_of_week=0,
                                     period_id=period["id"])


def body_for(staff, period, class_id, room):
    return {"staff_id": str(staff.id), "period_id": period["id"], "day_of_week": 0,
            "classes": [{"class_id": class_id, "subject": "Maths", "room_number": room}]}


def test_twenty_parallel_accepts_give_one_owner(live):
    world = live.world
    period = first_period(live)
    admin = world.headers("admin")
    held = post(live, "/timetable/assignments", body_for(world.staff, period, "10-A", "R1"),
                admin).json()
    acceptors = [world.add_user(world.school, "staff", department="History")
                 for _ in range(20)]
    request = post(live, "/timetable/alteration-requests",
                   {"assignment_id": held["id"], "target_department": "History",
                    "reason": "Training day"}, world.headers("staff"))
    assert request.status_code == 201, request.text
    headers = [world.headers(person) for person in acceptors]
    url = live.url(world.url(f"/timetable/alteration-requests/{request.json()['id']}/accept"))

    responses = parallel(20, lambda i: requests.post(url, json={}, headers=headers[i],
                                                     timeout=TIMEOUT))

    assert Counter(r.status_code for r in responses) == {200: 1, 409: 19}
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == \
        {"not_pending"}
    winner = next(acceptors[i] for i, r in enumerate(responses) if r.status_code == 200)
    stored = AlterationRequest.objects.get(id=request.json()["id"])
    assert stored.status == "accepted" and stored.responded_by == winner.id
    slot = stored_slot(world, period)
    # moved once: one change of the assignment, two writes of the slot (booking, move)
    assert [(a.staff_id, a.swap_request_id, a.version) for a in slot.assignments] == \
        [(winner.id, stored.id, 1)]
    assert slot.version == 2
    assert AuditEvent.objects(entity_type="timetable_alteration", entity_id=str(stored.id),
                              action__in=["accept", "repair", "fail"]).count() == 1
    outcome = Notification.objects(__raw__={"data.request_id": str(stored.id),
                                            "data.assignment_id": held["id"]})
    assert sorted(n.user_id for n in outcome) == sorted([world.staff.id, winner.id])
    db = AlterationRequest._get_db()
    assert [check(db) for check in (staff_double_bookings, class_and_room_double_bookings,
                                    accepted_swaps_not_executed_once)] == [[], [], []]


def test_parallel_creates_of_one_staff_slot_give_one_assignment(live):
    world = live.world
    period = first_period(live)
    admin = world.headers("admin")
    bodies = [body_for(world.staff, period, f"C{i}", f"R{i}") for i in range(10)]

    responses = parallel(10, lambda i: post(live, "/timetable/assignments", bodies[i], admin))

    assert Counter(r.status_code for r in responses) == {201: 1, 409: 9}
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == \
        {"slot_taken"}
    winner = next(r.json() for r in responses if r.status_code == 201)
    assert [str(a.id) for a in stored_slot(world, period).assignments] == [winner["id"]]


@pytest.mark.parametrize("clash", ["class", "room"])
def test_parallel_creates_of_one_class_or_room_give_one_assignment(live, clash):
    world = live.world
    period = first_period(live)
    admin = world.headers("admin")
    staff = [world.add_user(world.school, "staff", department="Science") for _ in range(10)]
    bodies = [body_for(person, period, "10-A" if clash == "class" else f"C{i}",
                       "Hall" if clash == "room" else f"R{i}")
              for i, person in enumerate(staff)]

    responses = parallel(10, lambda i: post(live, "/timetable/assignments", bodies[i], admin))

    assert Counter(r.status_code for r in responses) == {201: 1, 409: 9}
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == \
        {f"{clash}_taken"}
    winner = next(r.json() for r in responses if r.status_code == 201)
    slot = stored_slot(world, period)
    assert [str(a.id) for a in slot.assignments] == [winner["id"]]
    assert slot.version == 1  # the refused writers wrote nothing


def test_parallel_overlapping_periods_give_one_period(live):
    admin = live.world.headers("admin")
    bodies = [{"period_number": i + 1, "period_name": f"P{i}", "start_time": "09:00",
               "end_time": "09:45"} for i in range(8)]

    responses = parallel(8, lambda i: post(live, "/timetable/periods", bodies[i], admin))

    assert Counter(r.status_code for r in responses) == {201: 1, 409: 7}
    listed = requests.get(live.url(live.world.url("/timetable/periods")), headers=admin,
                          timeout=TIMEOUT).json()
    assert listed["total"] == 1


def test_parallel_accepts_and_rejects_of_one_request_give_one_answer(live):
    """Leaving `pending` is one conditional update: of 10 accepts and 10 rejects by the
    target, exactly one answers 200 and the stored request and slot agree with it."""
    world = live.world
    period = first_period(live)
    held = post(live, "/timetable/assignments", body_for(world.staff, period, "10-A", "R1"),
                world.headers("admin")).json()
    request = post(live, "/timetable/alteration-requests",
                   {"assignment_id": held["id"], "target_staff_id": str(world.staff2.id),
                    "reason": "Training day"}, world.headers("staff")).json()
    verbs = ["accept", "reject"] * 10
    headers = world.headers("staff2")

    responses = parallel(20, lambda i: post(
        live, f"/timetable/alteration-requests/{request['id']}/{verbs[i]}", {}, headers))

    assert Counter(r.status_code for r in responses) == {200: 1, 409: 19}
    won = next(verbs[i] for i, r in enumerate(responses) if r.status_code == 200)
    stored = AlterationRequest.objects.get(id=request["id"])
    assert stored.status == {"accept": "accepted", "reject": "rejected"}[won]
    owner = stored_slot(world, period).assignments[0].staff_id
    assert owner == (world.staff2.id if won == "accept" else world.staff.id)
    assert AuditEvent.objects(entity_type="timetable_alteration", entity_id=request["id"],
                              action__in=["accept", "reject", "repair", "fail"]).count() == 1


def test_parallel_creates_in_one_slot_without_clash_all_land(live):
    """Eight admins book eight staff into one slot at once: each compare-and-set that loses
    re-reads and retries, so none is lost and none is refused."""
    world = live.world
    period = first_period(live)
    admin = world.headers("admin")
    staff = [world.add_user(world.school, "staff", department="Science") for _ in range(8)]
    bodies = [body_for(person, period, f"C{i}", f"R{i}") for i, person in enumerate(staff)]

    responses = parallel(8, lambda i: post(live, "/timetable/assignments", bodies[i], admin))

    assert Counter(r.status_code for r in responses) == {201: 8}
    slot = stored_slot(world, period)
    assert sorted(str(a.id) for a in slot.assignments) == sorted(r.json()["id"]
                                                                 for r in responses)
    assert slot.version == 8


def test_parallel_adds_of_one_class_to_two_lessons_of_a_slot_give_one(live):
    """Adding a class re-checks the whole slot inside its compare-and-set: of 10 parallel
    adds of class 9-Z to two lessons of one slot, exactly one lands."""
    world = live.world
    period = first_period(live)
    admin = world.headers("admin")
    lessons = [post(live, "/timetable/assignments", body_for(person, period, name, None),
                    admin).json()["id"] for person, name in ((world.staff, "A"),
                                                             (world.staff2, "B"))]

    responses = parallel(10, lambda i: post(
        live, f"/timetable/assignments/{lessons[i % 2]}/classes",
        {"class_id": "9-Z", "subject": "Art"}, admin))

    assert Counter(r.status_code for r in responses) == {201: 1, 409: 9}
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} <= \
        {"class_taken", "class_already_assigned"}
    taught = [c.class_id for a in stored_slot(world, period).assignments for c in a.classes]
    assert sorted(taught) == ["9-Z", "A", "B"]
