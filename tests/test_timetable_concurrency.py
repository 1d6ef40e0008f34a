"""Parallel requests against the live server (gunicorn, several workers, SecantusDB): the
database keeps one owner per period and no double booking, whoever is fastest."""

from __future__ import annotations

from collections import Counter

import pytest
import requests

from documents.timetable import AlterationRequest, Assignment, SlotClaim
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


def body_for(staff, period, class_id, room):
    return {"staff_id": str(staff.id), "period_id": period["id"], "day_of_week": 0,
            "classes": [{"class_id": class_id, "subject": "Maths", "room_number": room}]}


def test_twenty_parallel_accepts_give_one_owner(live):
    world = live.world
    period = first_period(live)
    admin = world.headers("admin")
    held = post(live, "/timetable/assignments", body_for(world.staff, period, "10-A", "R1"),
                admin).json()
    request = post(live, "/timetable/alteration-requests",
                   {"assignment_id": held["id"], "target_department": "History",
                    "reason": "Training day"}, world.headers("staff"))
    assert request.status_code == 201, request.text
    acceptors = [world.add_user(world.school, "staff", department="History")
                 for _ in range(20)]
    headers = [world.headers(person) for person in acceptors]
    url = live.url(world.url(f"/timetable/alteration-requests/{request.json()['id']}/accept"))

    responses = parallel(20, lambda i: requests.post(url, json={}, headers=headers[i],
                                                     timeout=TIMEOUT))

    assert Counter(r.status_code for r in responses) == {200: 1, 409: 19}
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == \
        {"not_pending"}
    winner = next(acceptors[i] for i, r in enumerate(responses) if r.status_code == 200)
    owners = Assignment.objects(school_id=world.school.id, period_id=period["id"],
                                day_of_week=0)
    assert [a.staff_id for a in owners] == [winner.id]
    stored = AlterationRequest.objects.get(id=request.json()["id"])
    assert stored.status == "accepted" and stored.responded_by == winner.id


def test_parallel_creates_of_one_staff_slot_give_one_assignment(live):
    world = live.world
    period = first_period(live)
    admin = world.headers("admin")
    bodies = [body_for(world.staff, period, f"C{i}", f"R{i}") for i in range(10)]

    responses = parallel(10, lambda i: post(live, "/timetable/assignments", bodies[i], admin))

    assert Counter(r.status_code for r in responses) == {201: 1, 409: 9}
    assert Assignment.objects(school_id=world.school.id).count() == 1
    assert SlotClaim.objects(school_id=world.school.id).count() == 2  # the winner's class+room


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
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} <= \
        {f"{clash}_taken", "concurrent_change"}
    assert Assignment.objects(school_id=world.school.id).count() == 1
    assert SlotClaim.objects(school_id=world.school.id).count() == 2


def test_parallel_overlapping_periods_give_one_period(live):
    admin = live.world.headers("admin")
    bodies = [{"period_number": i + 1, "period_name": f"P{i}", "start_time": "09:00",
               "end_time": "09:45"} for i in range(8)]

    responses = parallel(8, lambda i: post(live, "/timetable/periods", bodies[i], admin))

    assert Counter(r.status_code for r in responses) == {201: 1, 409: 7}
    listed = requests.get(live.url(live.world.url("/timetable/periods")), headers=admin,
                          timeout=TIMEOUT).json()
    assert listed["total"] == 1
