"""`rota repair` and the invariant checks for what the weekly groups editing adds: weeks a
crashed shrink left closed, change sets a crash left unwritten, waitlists beside free
seats."""

from __future__ import annotations

from mongoengine.connection import get_db

from documents.weekly_groups import ChangeSet, ProgramWeek
from scripts.invariants import waitlists_beside_free_seats
from scripts.repair import run_repair
from tests.test_weekly_groups import manager, movers, new_group, new_program, new_students
from tests.test_weekly_groups_changes import undo


def repaired(world) -> list[str]:
    lines = []
    assert run_repair(world.school.code, lines.append) == 0
    return lines


def test_weeks_a_crashed_shrink_left_closed_are_reopened_or_dropped(world):
    program = new_program(world, max_weeks=4)
    group = new_group(world, program, "Reds")
    kid = new_students(world, program, 1)[0]
    # crashed after closing week 4, before lowering max_weeks: the shrink never happened
    ProgramWeek.objects(program_id=program.id, week_number=4).update_one(set__closed=True)
    lines = repaired(world)
    assert any("closed week 4 reopened" in line for line in lines), lines
    movers(world).move_students(program.id, 4, [kid["id"]], group.id)  # week 4 works again

    # crashed after lowering max_weeks to 2, before dropping its closed weeks 3 and 4
    ProgramWeek.objects(program_id=program.id, week_number=3).update_one(set__closed=True)
    ProgramWeek.objects(program_id=program.id, week_number=4).update_one(set__closed=True)
    manager(world).get_program(program.id).update(set__max_weeks=2)
    lines = repaired(world)
    assert sum("dropped" in line for line in lines) == 2, lines
    assert sorted(w.week_number for w in ProgramWeek.objects(program_id=program.id)) == [1, 2]
    assert repaired(world)[-1] == "0 fixed, 0 to resolve in 1 school(s)"


def test_a_change_set_a_crash_left_unwritten_is_restored_and_undoable(client, world):
    program = new_program(world)
    reds = new_group(world, program, "Reds")
    kids = new_students(world, program, 2)
    moved = movers(world).move_students(program.id, 1, [k["id"] for k in kids], reds.id)
    ChangeSet.objects(id=moved["change_id"]).delete()
    lines = repaired(world)
    assert any(f"change set {moved['change_id']} (move) restored" in line for line in lines)
    assert undo(client, world, program, moved["change_id"]).status_code == 200
    assert manager(world).week_view(program.id, 1)["groups"][0]["students"] == []
    assert repaired(world)[-1] == "0 fixed, 0 to resolve in 1 school(s)"


def test_waitlists_beside_free_seats_are_reported(world):
    program = new_program(world)
    group = new_group(world, program, "Reds", max_size=1)
    seated, waiting = new_students(world, program, 2)
    movers(world).move_students(program.id, 1, [seated["id"]], group.id)
    movers(world).move_students(program.id, 1, [waiting["id"]], group.id, waitlist=True)
    assert waitlists_beside_free_seats(get_db()) == []
    ProgramWeek.objects(program_id=program.id, week_number=1).update_one(
        set__groups__0__members=[])  # written around the service: the seat freed, unpromoted
    [problem] = waitlists_beside_free_seats(get_db())
    assert "1 waiting beside 1 free seat(s)" in problem
