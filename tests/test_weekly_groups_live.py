"""Weekly group moves under real concurrency: gunicorn with 4 workers on SecantusDB."""

from __future__ import annotations

import pytest
import requests

from tests.helpers import parallel
from tests.test_weekly_groups import manager

pytestmark = pytest.mark.integration


def _post_move(live, headers, program, student, group):
    return requests.post(
        live.url(live.world.url(f"/programs/{program.id}/weeks/1/moves")),
        json={"student_ids": [str(student["id"])], "group_id": str(group.id)},
        headers=headers, timeout=60)


def _members(program, group):
    from documents.weekly_groups import WeekEntry

    return WeekEntry.objects(program_id=program.id, week_number=1, kind="member",
                             group_id=group.id).count()


def _seats(program, group):
    from documents.weekly_groups import SeatClaim

    return SeatClaim.objects(program_id=program.id, week_number=1, group_id=group.id).count()


def test_thirty_parallel_moves_into_the_last_seat_give_one_success(live):
    world = live.world
    wg = manager(world)
    program = wg.create_program(name="Race", max_weeks=2)
    group = wg.create_group(program.id, "Almost full", "Blue", max_size=4)
    seated = [wg.add_student(program.id, f"Seated {i}") for i in range(3)]
    wg.move_students(program.id, 1, [s["id"] for s in seated], group.id)
    racers = [wg.add_student(program.id, f"Racer {i:02d}") for i in range(30)]
    headers = world.headers("staff")

    responses = parallel(30, lambda i: _post_move(live, headers, program, racers[i], group))

    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1, statuses
    assert statuses.count(409) == 29, statuses
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} \
        == {"group_full"}
    assert _members(program, group) == _seats(program, group) == 4
    week = wg.week_view(program.id, 1)
    assert week["groups"][0]["capacity"] == "4/4"
    assert len(week["unassigned_students"]) == 29


def test_one_student_moved_into_two_groups_at_once_ends_in_one(live):
    world = live.world
    wg = manager(world)
    program = wg.create_program(name="Tug of war", max_weeks=2)
    left = wg.create_group(program.id, "Left", "Blue", max_size=8)
    right = wg.create_group(program.id, "Right", "Blue", max_size=8)
    headers = world.headers("admin")
    targets = [left, right] * 4
    for attempt in range(5):
        student = wg.add_student(program.id, f"Pulled {attempt}")
        responses = parallel(8, lambda i, student=student: _post_move(
            live, headers, program, student, targets[i]))
        assert all(r.status_code in (200, 409) for r in responses), \
            [r.text for r in responses]
        history = wg.history(program.id, student["id"])
        assert set(history["weeks"]) == {"1"}
        final = history["weeks"]["1"]["group_id"]
        assert final in (left.id, right.id)
    # every seat held belongs to a member: nothing leaked, nothing counted twice
    assert _members(program, left) == _seats(program, left)
    assert _members(program, right) == _seats(program, right)
    assert _members(program, left) + _members(program, right) == 5


def test_parallel_group_moves_are_all_or_nothing(live):
    world = live.world
    wg = manager(world)
    program = wg.create_program(name="Pairs", max_weeks=2)
    group = wg.create_group(program.id, "Five seats", "Blue", max_size=5)
    pairs = [[wg.add_student(program.id, f"Pair {i} {side}") for side in "ab"]
             for i in range(8)]
    headers = world.headers("admin")
    url = live.url(world.url(f"/programs/{program.id}/weeks/1/moves"))

    def move_pair(i):
        return requests.post(url, json={"student_ids": [str(s["id"]) for s in pairs[i]],
                                        "group_id": str(group.id)},
                             headers=headers, timeout=60)

    responses = parallel(8, move_pair)

    moved = [i for i, r in enumerate(responses) if r.status_code == 200]
    assert all(r.status_code in (200, 409) for r in responses), [r.text for r in responses]
    # at most two pairs fit; under contention a pair may back off from seats that another
    # pair's backing off frees a moment later (a spurious 409 the caller retries)
    assert 1 <= len(moved) <= 2, [r.status_code for r in responses]
    week = wg.week_view(program.id, 1)
    in_group = {s["id"] for s in week["groups"][0]["students"]}
    assert in_group == {s["id"] for i in moved for s in pairs[i]}  # whole pairs only
    assert _members(program, group) == _seats(program, group) == 2 * len(moved)


def test_parallel_advances_move_one_week_each(live):
    world = live.world
    program = manager(world).create_program(name="Calendar", max_weeks=6)
    url = live.url(world.url(f"/programs/{program.id}/advance-week"))
    headers = world.headers("admin")
    responses = parallel(3, lambda _: requests.post(url, headers=headers))
    assert sorted(r.json()["current_week"] for r in responses) == [2, 3, 4]
