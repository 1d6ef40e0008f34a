"""Alteration requests: department locks, peer swaps, reject, cancel, circular swaps, requests
whose assignment changed hands, and the repair of interrupted accepts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from documents.audit import AuditEvent, Notification
from documents.base import utcnow
from documents.timetable import AlterationRequest
from scripts.invariants import accepted_swaps_not_executed_once
from scripts.repair import run_repair
from service.timetable_alterations import AlterationRequests
from service.timetable_slots import slots
from tests.test_timetable import (
    MONDAY,
    assign,
    audited,
    grid,
    make_periods,
    notifications_of,
    slot,
    stored_assignment,
)


@pytest.fixture
def period(client, world):
    return make_periods(client, world, count=2)[0]


@pytest.fixture
def held(client, world, period):
    """An assignment of world.staff (Mathematics) on Monday, first period."""
    return assign(client, world, world.staff, period).json


def lock(client, world, department, **flags):
    response = client.put(world.url(f"/timetable/department-permissions/{department}"),
                          json=flags, headers=world.headers("admin"))
    assert response.status_code == 200, response.json
    return response.json


def ask(client, world, assignment, requester="staff", **target):
    body = {"assignment_id": assignment["id"], "reason": "Dentist appointment"}
    body.update({k: str(v.id) if hasattr(v, "id") else v for k, v in target.items()})
    return client.post(world.url("/timetable/alteration-requests"), json=body,
                       headers=world.headers(requester))


def answer(client, world, request_id, verb, who, **body):
    return client.post(world.url(f"/timetable/alteration-requests/{request_id}/{verb}"),
                       json=body, headers=world.headers(who))


# department locks

def test_scenario_2_a_department_that_may_not_send_gets_403(client, world, period):
    librarian = world.add_user(world.school, "staff", department="Library")
    mine = assign(client, world, librarian, period,
                  classes=[{"class_id": "Reading", "subject": "Library"}]).json
    lock(client, world, "Library", allow_alterations=False)
    refused = ask(client, world, mine, requester=librarian, target_staff_id=world.staff2)
    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "department_locked"
    permissions = client.get(world.url("/timetable/department-permissions"),
                             headers=world.headers(librarian)).json
    library = next(p for p in permissions["items"] if p["department"] == "Library")
    assert library["allow_alterations"] is False and library["allow_inbound"] is True
    assert {"Mathematics", "Science"} <= {p["department"] for p in permissions["items"]}
    assert audited(world, "set_permission", "timetable_department") == 1
    by_staff = client.put(world.url("/timetable/department-permissions/Library"),
                          json={"allow_alterations": True}, headers=world.headers(librarian))
    assert by_staff.status_code == 403


def test_scenario_3_a_department_that_may_not_receive_is_not_a_target(client, world, held):
    librarian = world.add_user(world.school, "staff", department="Library")
    lock(client, world, "Library", allow_inbound=False)
    by_department = ask(client, world, held, target_department="Library")
    assert by_department.status_code == 403
    assert by_department.json["error"]["code"] == "department_locked"
    by_name = ask(client, world, held, target_staff_id=librarian)
    assert by_name.status_code == 403
    targets = client.get(world.url("/timetable/eligible-targets"),
                         headers=world.headers("staff")).json
    names = {t["id"] for t in targets["items"]}
    assert str(librarian.id) not in names and str(world.staff.id) not in names
    assert str(world.staff2.id) in names
    science = client.get(world.url("/timetable/eligible-targets?department=Science"),
                         headers=world.headers("staff")).json
    assert [t["id"] for t in science["items"]] == [str(world.staff2.id)]


def test_department_lock_is_checked_again_at_accept_time(client, world, held):
    created = ask(client, world, held, target_staff_id=world.staff2).json
    lock(client, world, "Science", allow_inbound=False)
    refused = answer(client, world, created["id"], "accept", "staff2")
    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "department_locked"
    lock(client, world, "Science", allow_inbound=True)
    lock(client, world, "Mathematics", allow_alterations=False)
    assert answer(client, world, created["id"], "accept", "staff2").status_code == 403
    assert stored_assignment(held["id"]).staff_id == world.staff.id


# the peer swap

def test_scenario_4_peer_swap(client, world, period, held):
    created = ask(client, world, held, target_staff_id=world.staff2)
    assert created.status_code == 201
    assert created.json["status"] == "pending"
    assert notifications_of(world.staff2, "alteration")
    incoming = client.get(world.url("/timetable/alteration-requests?box=incoming"),
                          headers=world.headers("staff2")).json
    assert [r["id"] for r in incoming["items"]] == [created.json["id"]]
    accepted = answer(client, world, created.json["id"], "accept", "staff2", reason="Sure")
    assert accepted.status_code == 200
    assert accepted.json["status"] == "accepted"
    assert accepted.json["responded_by"] == str(world.staff2.id)
    sent = slot(grid(client, world, world.staff), MONDAY, period)
    received = slot(grid(client, world, world.staff2), MONDAY, period)
    assert sent["status"] == "altered_sent"
    assert received["status"] == "altered_received"
    assert received["assignment"]["assignment_type"] == "peer_swap"
    assert received["assignment"]["original_staff_id"] == str(world.staff.id)
    assert any("accepted" in m for m in notifications_of(world.staff, "alteration"))
    assert len(notifications_of(world.staff2, "alteration")) == 2
    assert audited(world, "create", "timetable_alteration") == 1
    assert audited(world, "accept", "timetable_alteration") == 1
    again = answer(client, world, created.json["id"], "accept", "staff2")
    assert again.status_code == 409
    assert again.json["error"]["code"] == "not_pending"


def test_department_wide_request_first_eligible_acceptor_wins(client, world, held):
    colleague = world.add_user(world.school, "staff", department="Science")
    created = ask(client, world, held, target_department="Science").json
    assert created["target_department"] == "Science"
    assert notifications_of(world.staff2, "alteration") and notifications_of(colleague)
    outsider = world.add_user(world.school, "staff", department="Mathematics")
    assert answer(client, world, created["id"], "accept", outsider).status_code == 403
    assert answer(client, world, created["id"], "accept", "staff").status_code == 403
    assert answer(client, world, created["id"], "accept", colleague).status_code == 200
    late = answer(client, world, created["id"], "accept", "staff2")
    assert late.status_code == 409
    assert stored_assignment(held["id"]).staff_id == colleague.id


def test_request_rules(client, world, period, held):
    assert ask(client, world, held, requester="staff2",
               target_staff_id=world.staff).json["error"]["code"] == "not_your_assignment"
    both = ask(client, world, held, target_staff_id=world.staff2, target_department="Science")
    assert both.status_code == 422
    assert ask(client, world, held).status_code == 422
    assert ask(client, world, held, target_staff_id=world.staff).status_code == 422
    assert ask(client, world, held, target_staff_id=world.other_staff).status_code == 422
    assert ask(client, world, held, requester="admin",
               target_staff_id=world.staff2).status_code == 403
    assert ask(client, world, held, target_staff_id=world.staff2).status_code == 201
    duplicate = ask(client, world, held, target_department="Science")
    assert duplicate.status_code == 409
    assert duplicate.json["error"]["code"] == "request_pending"


def test_acceptor_already_booked_in_that_slot_is_refused(client, world, period, held):
    """Asked while the colleague is free, who is booked into that slot before accepting."""
    created = ask(client, world, held, target_staff_id=world.staff2).json
    assign(client, world, world.staff2, period, classes=[{"class_id": "S1", "subject": "Bio"}])
    busy = answer(client, world, created["id"], "accept", "staff2")
    assert busy.status_code == 409
    assert busy.json["error"]["code"] == "slot_taken"
    assert stored_assignment(held["id"]).staff_id == world.staff.id


def test_a_named_colleague_busy_in_that_slot_is_refused_at_request_time(client, world,
                                                                        period, held):
    assign(client, world, world.staff2, period, classes=[{"class_id": "S1", "subject": "Bio"}])
    busy = ask(client, world, held, target_staff_id=world.staff2)
    assert (busy.status_code, busy.json["error"]["code"]) == (409, "slot_taken")
    assert AlterationRequest.objects(school_id=world.school.id).count() == 0


def test_circular_swap_is_refused(client, world, held):
    first = ask(client, world, held, target_staff_id=world.staff2).json
    answer(client, world, first["id"], "accept", "staff2")
    back = ask(client, world, held, requester="staff2", target_staff_id=world.staff)
    assert back.status_code == 409
    assert back.json["error"]["code"] == "circular_swap"
    # to the sender's whole department it may go, but not to the sender
    to_department = ask(client, world, held, requester="staff2", target_department="Mathematics")
    assert to_department.status_code == 201
    refused = answer(client, world, to_department.json["id"], "accept", "staff")
    assert refused.status_code == 409
    assert refused.json["error"]["code"] == "circular_swap"


def test_reject_with_reason_and_cancel(client, world, held):
    created = ask(client, world, held, target_staff_id=world.staff2).json
    assert answer(client, world, created["id"], "reject", "staff").status_code == 403
    rejected = answer(client, world, created["id"], "reject", "staff2", reason="Teaching then")
    assert rejected.status_code == 200
    assert rejected.json["status"] == "rejected"
    assert rejected.json["response_reason"] == "Teaching then"
    assert any("Teaching then" in m for m in notifications_of(world.staff, "alteration"))
    assert answer(client, world, created["id"], "accept", "staff2").status_code == 409
    second = ask(client, world, held, target_staff_id=world.staff2).json
    assert answer(client, world, second["id"], "cancel", "staff2").status_code == 403
    cancelled = answer(client, world, second["id"], "cancel", "staff")
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    assert answer(client, world, second["id"], "cancel", "staff").status_code == 409
    assert answer(client, world, second["id"], "accept", "staff2").status_code == 409
    assert any("cancelled" in m for m in notifications_of(world.staff2, "alteration"))
    assert audited(world, "reject", "timetable_alteration") == 1
    assert audited(world, "cancel", "timetable_alteration") == 1
    assert stored_assignment(held["id"]).staff_id == world.staff.id


def test_a_request_whose_assignment_changed_hands_fails_cleanly(client, world, held):
    staff_c = world.add_user(world.school, "staff", department="History")
    created = ask(client, world, held, target_staff_id=world.staff2).json
    client.post(world.url(f"/timetable/assignments/{held['id']}/override"),
                json={"new_staff_id": str(staff_c.id)}, headers=world.headers("admin"))
    failed = answer(client, world, created["id"], "accept", "staff2")
    assert failed.status_code == 409
    assert failed.json["error"]["code"] == "assignment_changed"
    assert stored_assignment(held["id"]).staff_id == staff_c.id
    stored = AlterationRequest.objects.get(id=created["id"])
    assert stored.status == "failed" and stored.failure_code == "assignment_changed"
    assert audited(world, "fail", "timetable_alteration") == 1


def test_new_owner_can_ask_although_an_old_request_was_left_pending(client, world, held):
    staff_c = world.add_user(world.school, "staff", department="History")
    stale = ask(client, world, held, target_staff_id=world.staff2).json
    client.post(world.url(f"/timetable/assignments/{held['id']}/override"),
                json={"new_staff_id": str(staff_c.id)}, headers=world.headers("admin"))
    fresh = ask(client, world, held, requester=staff_c, target_staff_id=world.staff2)
    assert fresh.status_code == 201
    assert AlterationRequest.objects.get(id=stale["id"]).status == "failed"


def test_requests_are_listed_by_box_and_status(client, world, period, held):
    other = assign(client, world, world.staff2, period, day=1,
                   classes=[{"class_id": "S2", "subject": "Chemistry"}]).json
    outgoing = ask(client, world, held, target_staff_id=world.staff2).json
    incoming = ask(client, world, other, requester="staff2", target_department="Mathematics").json
    mine = client.get(world.url("/timetable/alteration-requests?box=outgoing"),
                      headers=world.headers("staff")).json
    assert [r["id"] for r in mine["items"]] == [outgoing["id"]]
    theirs = client.get(world.url("/timetable/alteration-requests?box=incoming"),
                        headers=world.headers("staff")).json
    assert [r["id"] for r in theirs["items"]] == [incoming["id"]]
    every = client.get(world.url("/timetable/alteration-requests"),
                       headers=world.headers("staff")).json
    assert every["total"] == 2
    answer(client, world, outgoing["id"], "cancel", "staff")
    pending = client.get(world.url("/timetable/alteration-requests?status=pending"),
                         headers=world.headers("admin")).json
    assert [r["id"] for r in pending["items"]] == [incoming["id"]]
    outsider = world.add_user(world.school, "staff", department="History")
    hidden = client.get(world.url(f"/timetable/alteration-requests/{outgoing['id']}"),
                        headers=world.headers(outsider))
    assert hidden.status_code == 404


def interrupt_accept(world, request_id, moved: bool, age: timedelta) -> None:
    """What an accept that died after step 1 (and, when `moved`, after step 2) leaves."""
    AlterationRequest.objects(id=request_id).update_one(
        set__status="accepting", set__accepted_by=world.staff2.id,
        set__accepting_since=utcnow() - age)
    if moved:
        request = AlterationRequest.objects.get(id=request_id)
        slots().update_one({"assignments.id": request.assignment_id}, {"$set": {
            "assignments.0.staff_id": world.staff2.id,
            "assignments.0.swap_request_id": request.id,
            "assignments.0.assignment_type": "peer_swap",
            "assignments.0.original_staff_id": world.staff.id}})


def outcome_trail(world, request_id) -> tuple[int, int]:
    """(audit events of the outcome, notifications of the outcome to the request's staff)."""
    events = AuditEvent.objects(school_id=world.school.id, entity_type="timetable_alteration",
                                entity_id=str(request_id),
                                action__in=["accept", "repair", "fail"]).count()
    told = [n for n in Notification.objects(user_id__in=[world.staff.id, world.staff2.id],
                                            __raw__={"data.request_id": str(request_id)})
            if "has asked you" not in n.message]
    return events, len(told)


@pytest.mark.parametrize("moved", [True, False])
def test_an_interrupted_accept_is_repaired(client, world, held, moved):
    created = ask(client, world, held, target_staff_id=world.staff2).json
    interrupt_accept(world, created["id"], moved, timedelta(minutes=10))
    assert client.post(world.url("/timetable/alteration-requests/repair"),
                       headers=world.headers("staff")).status_code == 403
    repaired = client.post(world.url("/timetable/alteration-requests/repair"),
                           headers=world.headers("admin"))
    assert repaired.status_code == 200
    assert [r["status"] for r in repaired.json["items"]] == (
        ["accepted"] if moved else ["failed"])
    owner = stored_assignment(held["id"]).staff_id
    assert owner == (world.staff2.id if moved else world.staff.id)
    assert audited(world, "repair", "timetable_alteration") == 1
    again = client.post(world.url("/timetable/alteration-requests/repair"),
                        headers=world.headers("admin"))
    assert again.json["items"] == []


def test_a_crash_between_the_writes_is_settled_by_rota_repair_once(client, world, held):
    """The first write (pending -> accepting) and the move happened, the worker died before
    the request was marked accepted: repair settles it, with the outcome's audit event and
    notifications once, and a second repair finds nothing."""
    created = ask(client, world, held, target_staff_id=world.staff2).json
    before = len(notifications_of(world.staff2))
    interrupt_accept(world, created["id"], moved=True, age=timedelta(seconds=1))
    db = AlterationRequest._get_db()
    assert accepted_swaps_not_executed_once(db) == []  # accepting is not accepted yet
    lines = []
    assert run_repair(world.school.code, lines.append) == 0
    assert f"  fixed: alteration request {created['id']} settled as accepted" in lines
    assert accepted_swaps_not_executed_once(db) == []
    stored = AlterationRequest.objects.get(id=created["id"])
    assert (stored.status, stored.responded_by) == ("accepted", world.staff2.id)
    assert stored_assignment(held["id"]).staff_id == world.staff2.id
    assert outcome_trail(world, created["id"]) == (1, 2)
    assert len(notifications_of(world.staff2)) == before + 1
    lines.clear()
    assert run_repair(world.school.code, lines.append) == 0
    assert lines[-1] == "0 fixed, 0 to resolve in 1 school(s)"
    assert outcome_trail(world, created["id"]) == (1, 2)


def test_a_young_unmoved_accepting_request_is_left_to_its_worker(client, world, held):
    created = ask(client, world, held, target_staff_id=world.staff2).json
    interrupt_accept(world, created["id"], moved=False, age=timedelta(seconds=1))
    lines = []
    assert run_repair(world.school.code, lines.append) == 0
    assert AlterationRequest.objects.get(id=created["id"]).status == "accepting"
    shown = client.get(world.url(f"/timetable/alteration-requests/{created['id']}"),
                       headers=world.headers("staff"))
    assert shown.json["status"] == "accepting"


@pytest.mark.parametrize("verb, who", [("get", "staff"), ("accept", "staff2"),
                                       ("reject", "staff2"), ("cancel", "staff"),
                                       ("ask again", "staff")])
def test_every_path_that_meets_an_interrupted_accept_settles_it(client, world, held, verb,
                                                                  who):
    created = ask(client, world, held, target_staff_id=world.staff2).json
    interrupt_accept(world, created["id"], moved=True, age=timedelta(seconds=1))
    if verb == "get":
        response = client.get(world.url(f"/timetable/alteration-requests/{created['id']}"),
                              headers=world.headers(who))
        assert response.json["status"] == "accepted"
    elif verb == "ask again":  # the acceptor now holds it and may hand it on
        colleague = world.add_user(world.school, "staff", department="History")
        response = ask(client, world, held, requester="staff2", target_staff_id=colleague)
        assert response.status_code == 201, response.json
    else:
        response = answer(client, world, created["id"], verb, who)
        assert response.status_code == 409
        assert response.json["error"]["details"]["status"] == "accepted"
    assert AlterationRequest.objects.get(id=created["id"]).status == "accepted"
    assert outcome_trail(world, created["id"]) == (1, 2)


def test_an_accept_that_loses_the_lesson_just_before_its_move_fails_the_request(
        client, world, held, monkeypatch):
    """The lesson is handed on between the accept's checks and its slot write: the write
    refuses, the request fails (not left accepting), the requester is told once."""
    created = ask(client, world, held, target_staff_id=world.staff2).json
    other = world.add_user(world.school, "staff", department="Science")
    checks = AlterationRequests._check_acceptor_can_take

    def handed_on_meanwhile(self, assignment, acceptor):
        checks(self, assignment, acceptor)
        slots().update_one({"assignments.id": assignment.id},
                           {"$set": {"assignments.0.staff_id": other.id}})

    monkeypatch.setattr(AlterationRequests, "_check_acceptor_can_take", handed_on_meanwhile)
    refused = answer(client, world, created["id"], "accept", "staff2")
    assert (refused.status_code, refused.json["error"]["code"]) == (409, "assignment_changed")
    stored = AlterationRequest.objects.get(id=created["id"])
    assert (stored.status, stored.failure_code) == ("failed", "assignment_changed")
    assert stored_assignment(held["id"]).staff_id == other.id
    assert outcome_trail(world, created["id"]) == (1, 1)
