"""The week document: one per program and week, its groups and members embedded, every
change one compare-and-set of it, the move log written after it and settled by the next."""

from __future__ import annotations

import pytest

from documents.weekly_groups import ProgramWeek, StudentMove
from service import weekly_groups_weeks
from service.errors import Conflict
from service.weekly_groups_weeks import WeekChange
from tests.helpers import REQUEST_OVERHEAD
from tests.test_weekly_groups import manager, movers, new_group, new_program, new_students


def stored_week(program, week=1) -> dict:
    return ProgramWeek._get_collection().find_one({"program_id": program.id,
                                                   "week_number": week})


def test_a_program_has_one_document_per_week_holding_groups_and_members(world):
    program = new_program(world, max_weeks=3)
    group = new_group(world, program, "Reds", max_size=2)
    kids = new_students(world, program, 2)
    movers(world).move_students(program.id, 2, [k["id"] for k in kids], group.id)
    documents = list(ProgramWeek._get_collection().find({"program_id": program.id}))
    assert sorted(d["week_number"] for d in documents) == [1, 2, 3]
    assert {d["school_id"] for d in documents} == {world.school.id}
    week = stored_week(program, 2)
    [reds] = week["groups"]
    assert (reds["group_id"], reds["base_name"], reds["max_size"]) == (group.id, "Reds", 2)
    assert [m["student_id"] for m in reds["members"]] == [k["id"] for k in kids]
    assert stored_week(program, 1)["groups"][0]["members"] == []
    # the change and its log carry the week's version: the exact order of its changes
    logged = StudentMove.objects(program_id=program.id, week_number=2)
    assert [m.week_version for m in logged] == [week["version"]] * 2
    assert [move[0] for move in week["last_change"]["moves"]] == [m.id for m in logged]


def test_a_move_that_loses_a_race_plans_again_on_the_fresh_week(world, monkeypatch):
    program = new_program(world)
    group = new_group(world, program, "One seat", max_size=1)
    first, second = new_students(world, program, 2)
    plan_on, versions = WeekChange.plan_on, []

    def racing(change, week, plan):
        versions.append(week["version"])
        if len(versions) == 1:  # another request takes the seat between this read and write
            movers(world).move_students(program.id, 1, [second["id"]], group.id)
        return plan_on(change, week, plan)

    monkeypatch.setattr(WeekChange, "plan_on", racing)
    with pytest.raises(Conflict) as refused:
        movers(world).move_students(program.id, 1, [first["id"]], group.id)
    assert refused.value.code == "group_full"
    assert versions == [1, 1, 2]  # read, the rival's own read, then read again after losing
    [seat] = stored_week(program)["groups"][0]["members"]
    assert seat["student_id"] == second["id"]
    assert StudentMove.objects(program_id=program.id).count() == 1


def test_the_next_change_of_a_week_logs_what_a_crashed_one_did_not(world, monkeypatch):
    program = new_program(world)
    group = new_group(world, program, "G")
    first, second = new_students(world, program, 2)
    moves = movers(world)

    def killed(*args):
        raise KeyboardInterrupt("killed")

    with monkeypatch.context() as patch:  # dies between the week update and its log
        patch.setattr(weekly_groups_weeks, "log_moves", killed)
        with pytest.raises(KeyboardInterrupt):
            moves.move_students(program.id, 1, [first["id"]], group.id)
    assert StudentMove.objects(program_id=program.id).count() == 0
    moves.move_students(program.id, 1, [second["id"]], group.id)
    assert {m.student_id for m in StudentMove.objects(program_id=program.id)} \
        == {first["id"], second["id"]}
    assert len(manager(world).history(program.id, first["id"])["moves"]) == 1


def test_generation_and_copy_replace_the_week_in_one_change(world):
    program = new_program(world, max_weeks=3)
    kids = new_students(world, program, 5, level="Green")
    moves = movers(world)
    moves.generate_groups(program.id, max_group_size=2, week_number=1)
    week_one = stored_week(program)
    assert [len(g["members"]) for g in week_one["groups"]] == [2, 2, 1]
    assert week_one["version"] == 1  # groups and members in one write
    version = stored_week(program, 3)["version"]  # the groups were added to later weeks
    copied = moves.copy_week(program.id, 3, 1)
    assert [g["capacity"] for g in copied["groups"]] == ["2/2", "2/2", "1/2"]
    assert stored_week(program, 3)["version"] == version + 1
    assert stored_week(program, 2)["groups"] and all(
        not g["members"] for g in stored_week(program, 2)["groups"])
    assert {m.reason for m in StudentMove.objects(student_id=kids[0]["id"])} \
        == {"generate", "copy"}


@pytest.mark.parametrize("weeks", [2, 12])
def test_history_round_trips_do_not_grow(client, world, roundtrips, weeks):
    program = new_program(world, name=f"Long {weeks}", max_weeks=weeks)
    group = new_group(world, program, "G")
    kid = new_students(world, program, 1)[0]
    for week in range(1, weeks + 1):
        movers(world).move_students(program.id, week, [kid["id"]], group.id)
    url = world.url(f"/programs/{program.id}/students/{kid['id']}/history")
    with roundtrips() as commands:
        response = client.get(url, headers=world.headers("staff"))
    assert response.status_code == 200 and len(response.json["weeks"]) == weeks
    assert len(commands) <= 4 + REQUEST_OVERHEAD, commands


def test_the_invariant_checker_names_an_overfilled_group_and_a_student_in_two(world):
    from mongoengine.connection import get_db

    from scripts.invariants import groups_over_capacity, students_in_two_groups

    program = new_program(world)
    small, other = new_group(world, program, "Small", max_size=1), new_group(world, program, "B")
    kids = new_students(world, program, 2)
    movers(world).move_students(program.id, 1, [kids[0]["id"]], small.id)
    assert groups_over_capacity(get_db()) == students_in_two_groups(get_db()) == []
    member = {"student_id": kids[1]["id"], "joined_at": stored_week(program)["updated_at"]}
    ProgramWeek._get_collection().update_one(  # what no request can write
        {"program_id": program.id, "week_number": 1},
        {"$push": {"groups.0.members": member, "groups.1.members": member}})
    assert groups_over_capacity(get_db()) == [
        f"group {small.id} week 1 has 2 members, max 1"]
    assert students_in_two_groups(get_db()) == [
        f"student {kids[1]['id']} is in 2 groups in week 1 of program {program.id}"]
    assert other.id == stored_week(program)["groups"][1]["group_id"]
