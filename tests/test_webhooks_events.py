"""Each module's changes reach webhooks: what a subscription to every event receives when
the change happens through the API."""

from __future__ import annotations

import json

import pytest

from documents.webhooks import WebhookDelivery
from service.webhooks import EVENTS
from tests.test_team_rosters import link, make_team, people, post, project  # noqa: F401
from tests.test_timetable import assign, make_periods
from tests.test_timetable_alterations import answer, ask
from tests.test_tracks import kit  # noqa: F401
from tests.test_weekly_groups import move, new_group, new_program, new_students


@pytest.fixture
def subscribed(client, world):
    """A subscription to every event; nothing listens at its address (deliveries stay in the
    outbox, which is what these tests read)."""
    answer = client.post(world.url("/webhooks"), headers=world.headers("admin"),
                         json={"url": "http://127.0.0.1:9/none", "events": list(EVENTS)})
    assert answer.status_code == 201, answer.json


def queued(world, event: str) -> list[dict]:
    """The payloads queued for `event`, as the receiver would get them."""
    found = WebhookDelivery.objects.for_school(world.school.id).filter(event=event).order_by(
        "created_at", "id")
    return [json.loads(json.dumps(d.payload)) for d in found]


def test_swap_requests_send_requested_rejected_cancelled_and_accepted(client, world,
                                                                      subscribed):
    held = assign(client, world, world.staff, make_periods(client, world, count=1)[0]).json
    rejected = ask(client, world, held, target_staff_id=world.staff2).json
    answer(client, world, rejected["id"], "reject", "staff2")
    cancelled = ask(client, world, held, target_staff_id=world.staff2).json
    answer(client, world, cancelled["id"], "cancel", "staff")
    accepted = ask(client, world, held, target_staff_id=world.staff2).json
    assert answer(client, world, accepted["id"], "accept", "staff2").status_code == 200
    assert [p["request_id"] for p in queued(world, "swap.requested")] == [
        rejected["id"], cancelled["id"], accepted["id"]]
    assert queued(world, "swap.requested")[0]["requester_id"] == str(world.staff.id)
    assert queued(world, "swap.rejected") == [{"request_id": rejected["id"],
                                               "rejected_by": str(world.staff2.id)}]
    assert queued(world, "swap.cancelled") == [{"request_id": cancelled["id"]}]
    assert queued(world, "swap.accepted") == [{"request_id": accepted["id"],
                                               "accepted_by": str(world.staff2.id),
                                               "assignment_id": held["id"]}]


def test_an_accept_finished_by_rota_repair_sends_swap_accepted_once(client, world, subscribed):
    from datetime import timedelta

    from scripts.repair import run_repair
    from tests.test_timetable_alterations import interrupt_accept

    held = assign(client, world, world.staff, make_periods(client, world, count=1)[0]).json
    request = ask(client, world, held, target_staff_id=world.staff2).json
    interrupt_accept(world, request["id"], moved=True, age=timedelta(seconds=1))
    assert queued(world, "swap.accepted") == []  # the worker died before the last write
    for _ in range(2):
        assert run_repair(world.school.code, lambda line: None) == 0
    assert queued(world, "swap.accepted") == [{"request_id": request["id"],
                                               "accepted_by": str(world.staff2.id),
                                               "assignment_id": held["id"]}]


def test_an_override_sends_assignment_overridden(client, world, subscribed):
    held = assign(client, world, world.staff, make_periods(client, world, count=1)[0]).json
    overridden = client.post(world.url(f"/timetable/assignments/{held['id']}/override"),
                             json={"new_staff_id": str(world.staff2.id)},
                             headers=world.headers("admin"))
    assert overridden.status_code == 200, overridden.json
    [payload] = queued(world, "assignment.overridden")
    assert (payload["assignment_id"], payload["staff_before"], payload["staff_after"]) == (
        held["id"], str(world.staff.id), str(world.staff2.id))


def test_moved_students_send_one_event_each(client, world, subscribed):
    program = new_program(world)
    group = new_group(world, program, "Sharks")
    kids = new_students(world, program, 2)
    assert move(client, world, program, 1, kids, group).status_code == 200
    payloads = queued(world, "student.moved")
    assert sorted(p["student_id"] for p in payloads) == sorted(str(k["id"]) for k in kids)
    assert {(p["week_number"], p["to_group_id"]) for p in payloads} == {(1, str(group.id))}


def test_a_reassigned_student_sends_instructor_reassigned(kit, world, subscribed):  # noqa: F811
    track = kit.track(instructors=[world.staff, world.staff2])
    enrolled = kit.enrol(track, kit.students(2)).json["enrolled"]
    moving = next(e for e in enrolled if e["instructor_id"] == str(world.staff.id))
    response = kit.client.put(
        world.url(f"/tracks/{track['id']}/students/{moving['student_id']}/reassign"),
        json={"instructor_id": str(world.staff2.id)}, headers=kit.admin)
    assert response.status_code == 200, response.json
    assert queued(world, "instructor.reassigned") == [{
        "track_id": track["id"], "student_id": moving["student_id"],
        "instructor_before": str(world.staff.id), "instructor_after": str(world.staff2.id)}]


def test_a_linked_team_sends_team_locked(client, world, people, project,  # noqa: F811
                                         subscribed):
    team = make_team(client, world, project, team_name="Crew")
    post(client, world, f"/project-teams/{team['id']}/members",
         {"members": [{"user_id": str(people[0].id), "role": "Leader"}]})
    link(client, world, "evaluations", project, team)
    [payload] = queued(world, "team.locked")
    assert (payload["team_id"], payload["member_ids"]) == (team["id"], [str(people[0].id)])


def test_a_cover_sends_cover_assigned(client, world, subscribed):
    from tests.test_timetable_cover import MONDAY, School

    school = School(client, world)
    school.absent(school.teacher)
    assert school.cover(school.third, school.spare).status_code == 201
    assert queued(world, "cover.assigned") == [{
        "date": MONDAY, "assignment_id": school.third["id"], "action": "cover",
        "cover_staff_id": str(school.spare.id), "room": None}]
