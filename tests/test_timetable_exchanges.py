"""Two-way exchanges: both lessons change hands or neither, whatever races or crashes."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
import requests

from documents.audit import AuditEvent
from documents.base import utcnow
from documents.timetable import ExchangeRequest
from scripts.invariants import failed_exchanges_that_moved_a_lesson, lessons_in_two_slots
from scripts.repair import run_repair
from service.context import MODULES, Actor, SchoolContext
from service.timetable_exchanges import ExchangeRequests, handover_state
from tests.helpers import parallel
from tests.test_timetable import (
    MONDAY,
    TUESDAY,
    assign,
    grid,
    make_periods,
    notifications_of,
    slot,
    stored_assignment,
)

TIMEOUT = 30


@pytest.fixture
def periods(client, world):
    return make_periods(client, world, count=2)


@pytest.fixture
def lessons(client, world, periods):
    """world.staff teaches Monday period 1, world.staff2 Tuesday period 2."""
    mine = assign(client, world, world.staff, periods[0]).json
    theirs = assign(client, world, world.staff2, periods[1], day=TUESDAY,
                    classes=[{"class_id": "9-B", "subject": "Physics"}]).json
    return mine, theirs


def offer(client, world, mine, theirs, who="staff"):
    return client.post(world.url("/timetable/exchange-requests"), headers=world.headers(who),
                       json={"assignment_id": mine["id"], "target_assignment_id": theirs["id"],
                             "reason": "Swap our days?"})


def answer(client, world, request_id, verb, who):
    return client.post(world.url(f"/timetable/exchange-requests/{request_id}/{verb}"),
                       json={}, headers=world.headers(who))


def holders(mine, theirs) -> tuple:
    return stored_assignment(mine["id"]).staff_id, stored_assignment(theirs["id"]).staff_id


def error(response) -> tuple[int, str]:
    return response.status_code, response.json["error"]["code"]


def test_accepting_hands_both_lessons_over(client, world, periods, lessons):
    mine, theirs = lessons
    created = offer(client, world, mine, theirs)
    assert created.status_code == 201, created.json
    assert created.json["target_staff_id"] == str(world.staff2.id)
    assert any("Monday, Period 1" in m and "Tuesday, Period 2" in m
               for m in notifications_of(world.staff2, "exchange"))
    assert error(answer(client, world, created.json["id"], "accept", "staff")) == \
        (403, "not_target")

    accepted = answer(client, world, created.json["id"], "accept", "staff2")

    assert (accepted.status_code, accepted.json["status"]) == (200, "accepted")
    assert holders(mine, theirs) == (world.staff2.id, world.staff.id)
    mine_now = grid(client, world, world.staff)
    assert slot(mine_now, MONDAY, periods[0])["status"] == "altered_sent"
    assert slot(mine_now, TUESDAY, periods[1])["status"] == "altered_received"
    assert slot(mine_now, TUESDAY, periods[1])["assignment"]["exchange_request_id"] == \
        created.json["id"]
    assert len(notifications_of(world.staff, "exchange")) == 1
    assert AuditEvent.objects(entity_type="timetable_exchange", action="accept").count() == 1


def test_lessons_of_one_slot_are_exchanged_in_one_write(client, world, periods):
    mine = assign(client, world, world.staff, periods[0]).json
    theirs = assign(client, world, world.staff2, periods[0],
                    classes=[{"class_id": "9-B", "subject": "Physics"}]).json
    created = offer(client, world, mine, theirs).json
    assert answer(client, world, created["id"], "accept", "staff2").status_code == 200
    assert holders(mine, theirs) == (world.staff2.id, world.staff.id)


def test_offers_that_cannot_be_made_are_refused(client, world, periods, lessons):
    mine, theirs = lessons
    assert error(offer(client, world, theirs, mine)) == (409, "not_your_assignment")
    assert offer(client, world, mine, mine).status_code == 422
    busy = assign(client, world, world.staff2, periods[0],
                  classes=[{"class_id": "7-A", "subject": "Art"}]).json
    assert error(offer(client, world, mine, theirs)) == (409, "slot_taken")
    client.delete(world.url(f"/timetable/assignments/{busy['id']}"),
                  headers=world.headers("admin"))
    client.post(world.url(f"/timetable/assignments/{theirs['id']}/lock"),
                json={"reason": "Exam"}, headers=world.headers("admin"))
    assert error(offer(client, world, mine, theirs)) == (403, "locked")
    client.post(world.url(f"/timetable/assignments/{theirs['id']}/unlock"),
                headers=world.headers("admin"))
    assert offer(client, world, mine, theirs).status_code == 201
    assert error(offer(client, world, mine, theirs)) == (409, "request_pending")


def test_an_exchange_refused_in_the_second_slot_puts_the_first_back(client, world, periods,
                                                                   lessons):
    """The requester is booked into the target's slot after offering: the first lesson has
    already moved when the second write refuses, and it is put back."""
    mine, theirs = lessons
    created = offer(client, world, mine, theirs).json
    assign(client, world, world.staff, periods[1], day=TUESDAY,
           classes=[{"class_id": "7-A", "subject": "Art"}])

    refused = answer(client, world, created["id"], "accept", "staff2")

    assert error(refused) == (409, "slot_taken")
    assert holders(mine, theirs) == (world.staff.id, world.staff2.id)
    first = stored_assignment(mine["id"])
    assert (first.assignment_type, first.original_staff_id, first.exchange_request_id) == \
        ("regular", None, None)
    stored = ExchangeRequest.objects.get(id=created["id"])
    assert (stored.status, stored.failure_code) == ("failed", "slot_taken")
    assert failed_exchanges_that_moved_a_lesson(ExchangeRequest._get_db()) == []
    assert any("could not be made" in m for m in notifications_of(world.staff, "exchange"))


def test_a_lesson_locked_after_the_offer_fails_the_exchange(client, world, lessons):
    mine, theirs = lessons
    created = offer(client, world, mine, theirs).json
    client.post(world.url(f"/timetable/assignments/{mine['id']}/lock"),
                json={"reason": "Inspection"}, headers=world.headers("admin"))
    assert error(answer(client, world, created["id"], "accept", "staff2")) == (403, "locked")
    assert holders(mine, theirs) == (world.staff.id, world.staff2.id)
    assert ExchangeRequest.objects.get(id=created["id"]).failure_code == "locked"


def test_an_exchange_whose_lesson_changed_hands_fails_when_accepted(client, world, lessons):
    mine, theirs = lessons
    created = offer(client, world, mine, theirs).json
    client.post(world.url(f"/timetable/assignments/{mine['id']}/override"),
                json={"new_staff_id": str(world.add_user(world.school, "staff").id)},
                headers=world.headers("admin"))
    assert error(answer(client, world, created["id"], "accept", "staff2")) == \
        (409, "assignment_changed")
    stored = ExchangeRequest.objects.get(id=created["id"])
    assert (stored.status, stored.failure_code) == ("failed", "assignment_changed")
    assert stored_assignment(theirs["id"]).staff_id == world.staff2.id
    assert AuditEvent.objects(entity_type="timetable_exchange", entity_id=created["id"],
                              action="fail").count() == 1


def test_reject_and_cancel(client, world, lessons):
    mine, theirs = lessons
    first = offer(client, world, mine, theirs).json
    assert error(answer(client, world, first["id"], "cancel", "staff2")) == \
        (403, "not_requester")
    assert answer(client, world, first["id"], "reject", "staff2").json["status"] == "rejected"
    assert error(answer(client, world, first["id"], "accept", "staff2")) == (409, "not_pending")
    second = offer(client, world, mine, theirs).json
    assert answer(client, world, second["id"], "cancel", "staff").json["status"] == "cancelled"
    assert holders(mine, theirs) == (world.staff.id, world.staff2.id)
    assert any("cancelled" in m for m in notifications_of(world.staff2, "exchange"))


def test_exchanges_reach_webhooks_as_swaps_of_kind_exchange(client, world, lessons):
    from tests.test_webhooks_events import queued

    assert client.post(world.url("/webhooks"), headers=world.headers("admin"), json={
        "url": "http://127.0.0.1:9/none", "events": ["swap.requested", "swap.accepted",
                                                     "swap.rejected"]}).status_code == 201
    mine, theirs = lessons
    declined = offer(client, world, mine, theirs).json
    answer(client, world, declined["id"], "reject", "staff2")
    taken = offer(client, world, mine, theirs).json
    answer(client, world, taken["id"], "accept", "staff2")
    assert [(p["request_id"], p["kind"]) for p in queued(world, "swap.requested")] == \
        [(declined["id"], "exchange"), (taken["id"], "exchange")]
    assert queued(world, "swap.rejected") == [{"request_id": declined["id"], "kind": "exchange",
                                               "rejected_by": str(world.staff2.id)}]
    assert queued(world, "swap.accepted") == [{
        "request_id": taken["id"], "kind": "exchange", "accepted_by": str(world.staff2.id),
        "assignment_id": mine["id"], "target_assignment_id": theirs["id"]}]


# crashes between the writes

def interrupted(world, request_id, steps: int):
    """The accept as a worker that died after `steps` slot writes, long ago."""
    request = ExchangeRequest.objects.get(id=request_id)
    manager = ExchangeRequests(SchoolContext(
        Actor(world.staff2.id, "staff", world.company.id, world.school.id), world.school.id,
        world.company.id, frozenset(MODULES)))
    mine = stored_assignment(request.assignment_id)
    theirs = stored_assignment(request.target_assignment_id)
    ExchangeRequest.objects(id=request_id).update_one(
        set__status="accepting", set__accepting_since=utcnow() - timedelta(minutes=10),
        set__responded_by=world.staff2.id, set__assignment_before=handover_state(mine),
        set__target_before=handover_state(theirs))
    request.reload()
    if steps >= 1:
        assert manager._hand_over_first(request) is None
    return request


@pytest.mark.parametrize("steps", [0, 1])
def test_an_interrupted_exchange_is_rolled_forward_by_repair(client, world, lessons, steps):
    mine, theirs = lessons
    created = offer(client, world, mine, theirs).json
    interrupted(world, created["id"], steps)

    lines = []
    assert run_repair(world.school.code, lines.append) == 0

    assert holders(mine, theirs) == (world.staff2.id, world.staff.id)
    assert ExchangeRequest.objects.get(id=created["id"]).status == "accepted"
    assert any(f"exchange request {created['id']} settled as accepted" in line
               for line in lines)


def test_an_interrupted_exchange_that_can_no_longer_be_made_is_rolled_back(client, world,
                                                                         periods, lessons):
    mine, theirs = lessons
    created = offer(client, world, mine, theirs).json
    interrupted(world, created["id"], 1)
    client.post(world.url(f"/timetable/assignments/{theirs['id']}/override"),
                json={"new_staff_id": str(world.add_user(world.school, "staff").id)},
                headers=world.headers("admin"))

    shown = client.get(world.url(f"/timetable/exchange-requests/{created['id']}"),
                       headers=world.headers("staff"))

    assert (shown.json["status"], shown.json["failure_code"]) == \
        ("failed", "assignment_changed")
    assert stored_assignment(mine["id"]).staff_id == world.staff.id
    assert failed_exchanges_that_moved_a_lesson(ExchangeRequest._get_db()) == []


# races against the live server

def live_lessons(live):
    world = live.world
    admin = world.headers("admin")
    base = live.url(world.url(""))
    made = [requests.post(f"{base}/timetable/periods", headers=admin, timeout=TIMEOUT, json={
        "period_number": n, "period_name": f"P{n}", "start_time": f"0{7 + n}:00",
        "end_time": f"0{7 + n}:45"}).json() for n in (1, 2)]
    held = [requests.post(f"{base}/timetable/assignments", headers=admin, timeout=TIMEOUT,
                          json={"staff_id": str(person.id), "period_id": period["id"],
                                "day_of_week": 0,
                                "classes": [{"class_id": name, "subject": "S"}]}).json()
            for person, period, name in ((world.staff, made[0], "A"),
                                         (world.staff2, made[1], "B"))]
    created = requests.post(f"{base}/timetable/exchange-requests", timeout=TIMEOUT,
                            headers=world.headers("staff"), json={
                                "assignment_id": held[0]["id"],
                                "target_assignment_id": held[1]["id"], "reason": "Swap?"})
    assert created.status_code == 201, created.text
    return base, held, created.json()


@pytest.mark.integration
def test_twenty_parallel_accepts_exchange_once(live):
    world = live.world
    base, held, created = live_lessons(live)
    headers = world.headers("staff2")
    url = f"{base}/timetable/exchange-requests/{created['id']}/accept"

    responses = parallel(20, lambda i: requests.post(url, json={}, headers=headers,
                                                     timeout=TIMEOUT))

    assert Counter(r.status_code for r in responses) == {200: 1, 409: 19}
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == \
        {"not_pending"}
    assert [(a.staff_id, a.version) for a in map(stored_assignment, (held[0]["id"],
                                                                     held[1]["id"]))] == \
        [(world.staff2.id, 1), (world.staff.id, 1)]
    assert ExchangeRequest.objects.get(id=created["id"]).status == "accepted"
    assert AuditEvent.objects(entity_type="timetable_exchange", entity_id=created["id"],
                              action__in=["accept", "fail"]).count() == 1


@pytest.mark.integration
def test_accepts_racing_cancels_give_one_outcome(live):
    world = live.world
    base, held, created = live_lessons(live)
    verbs = ["accept", "cancel"] * 10
    headers = {"accept": world.headers("staff2"), "cancel": world.headers("staff")}

    responses = parallel(20, lambda i: requests.post(
        f"{base}/timetable/exchange-requests/{created['id']}/{verbs[i]}", json={},
        headers=headers[verbs[i]], timeout=TIMEOUT))

    assert Counter(r.status_code for r in responses) == {200: 1, 409: 19}
    won = next(verbs[i] for i, r in enumerate(responses) if r.status_code == 200)
    stored = ExchangeRequest.objects.get(id=created["id"])
    assert stored.status == {"accept": "accepted", "cancel": "cancelled"}[won]
    owners = [stored_assignment(lesson["id"]).staff_id for lesson in held]
    assert owners == ([world.staff2.id, world.staff.id] if won == "accept"
                      else [world.staff.id, world.staff2.id])
    db = ExchangeRequest._get_db()
    assert [failed_exchanges_that_moved_a_lesson(db), lessons_in_two_slots(db)] == [[], []]


@pytest.mark.integration
def test_two_exchanges_for_one_lesson_accepted_at_once_give_it_one_new_holder(live):
    """staff and a third teacher each offer a lesson for staff2's lesson; staff2 accepts
    both, ten times each, at once: one exchange is made, the other fails with its first
    lesson put back."""
    world = live.world
    base, held, first = live_lessons(live)
    third = world.add_user(world.school, "staff", department="Science")
    period = requests.post(f"{base}/timetable/periods", headers=world.headers("admin"),
                           timeout=TIMEOUT, json={"period_number": 3, "period_name": "P3",
                                                  "start_time": "11:00",
                                                  "end_time": "11:45"}).json()
    offered = requests.post(f"{base}/timetable/assignments", headers=world.headers("admin"),
                            timeout=TIMEOUT, json={
                                "staff_id": str(third.id), "period_id": period["id"],
                                "day_of_week": 0,
                                "classes": [{"class_id": "C", "subject": "S"}]}).json()
    second = requests.post(f"{base}/timetable/exchange-requests", timeout=TIMEOUT,
                           headers=world.headers(third), json={
                               "assignment_id": offered["id"],
                               "target_assignment_id": held[1]["id"], "reason": "Me too"})
    assert second.status_code == 201, second.text
    ids = [first["id"], second.json()["id"]]
    headers = world.headers("staff2")

    responses = parallel(20, lambda i: requests.post(
        f"{base}/timetable/exchange-requests/{ids[i % 2]}/accept", json={}, headers=headers,
        timeout=TIMEOUT))

    assert Counter(r.status_code for r in responses)[200] == 1
    statuses = sorted(ExchangeRequest.objects.get(id=rid).status for rid in ids)
    assert statuses == ["accepted", "failed"]
    won = next(ids[i % 2] for i, r in enumerate(responses) if r.status_code == 200)
    giver = world.staff.id if won == first["id"] else third.id
    assert stored_assignment(held[1]["id"]).staff_id == giver
    holders_now = {lesson: stored_assignment(lesson).staff_id
                   for lesson in (held[0]["id"], offered["id"])}
    assert sorted(holders_now.values(), key=str) == sorted(
        [world.staff2.id, third.id if giver == world.staff.id else world.staff.id], key=str)
    db = ExchangeRequest._get_db()
    assert [failed_exchanges_that_moved_a_lesson(db), lessons_in_two_slots(db)] == [[], []]
