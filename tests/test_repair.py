"""`rota repair`: what crashed requests left half-done is settled, and only that."""

from __future__ import annotations

from datetime import timedelta

import pytest
from bson import ObjectId

from documents.base import utcnow
from documents.timetable import SlotClaim, claim_id
from documents.weekly_groups import ProgramWeek, StudentMove
from scripts.repair import run_repair
from service.context import SYSTEM
from service.errors import Conflict
from service.tenancy import school_context
from service.timetable import Assignments, TimetableSetup
from tests.test_weekly_groups import manager, movers


def test_weekly_groups_crashed_between_two_writes_are_completed(world):
    """A program saved without one of its weeks, a group missing from a week, a move whose
    log record was not written: each a crash between two writes, each restored once."""
    groups = manager(world)
    program = groups.create_program(name="Summer", max_weeks=3)
    group = groups.create_group(program.id, "Reds", "Blue", max_size=2)
    kid = groups.add_student(program.id, "Kid")
    movers(world).move_students(program.id, 1, [kid["id"]], group.id)
    ProgramWeek.objects(program_id=program.id, week_number=3).delete()
    ProgramWeek.objects(program_id=program.id, week_number=2).update_one(set__groups=[])
    StudentMove.objects(student_id=kid["id"]).delete()
    lines = []
    assert run_repair(world.school.code, lines.append) == 0
    assert lines[-1] == "3 fixed, 0 to resolve in 1 school(s)", lines
    for week in (2, 3):
        assert [g["group_id"] for g in groups.week_view(program.id, week)["groups"]] \
            == [group.id]
    [logged] = groups.history(program.id, kid["id"])["moves"]
    assert (logged["to_group_id"], logged["reason"]) == (group.id, "move")
    lines.clear()
    assert run_repair(world.school.code, lines.append) == 0
    assert lines[-1] == "0 fixed, 0 to resolve in 1 school(s)"


def test_an_unknown_school_code_is_exit_2(world):
    lines = []
    assert run_repair("NOPE", lines.append) == 2
    assert "NOPE" in lines[0]


def test_assignments_lacking_claims_get_them_back_and_clashes_are_reported(world):
    """After an upgrade from the older claims collection every assignment lacks its claims:
    repair restores them, so double bookings are refused again."""
    ctx = school_context(SYSTEM, world.school.id)
    period = TimetableSetup(ctx).create_period(1, "P1", "08:00", "08:45").id
    assignments = Assignments(ctx)
    booked = assignments.create(world.staff.id, period, 0,
                                [{"class_id": "7A", "subject": "Maths", "room_number": "R1"}])
    SlotClaim.objects(school_id=world.school.id).delete()
    intruder = SlotClaim(id=claim_id(world.school.id, 0, period, "room", "r1"),
                         school_id=world.school.id, kind="room", key="r1",
                         assignment_id=ObjectId()).save()
    lines = []
    assert run_repair(world.school.code, lines.append) == 1  # a clash is left for an admin
    assert f"  fixed: class '7a' claimed again for assignment {booked.id}" in lines
    assert any(line.startswith(f"  to resolve: double booking: assignment {booked.id} "
                               f"teaches room 'r1'") for line in lines)
    assert SlotClaim.objects.get(id=intruder.id).assignment_id == intruder.assignment_id
    with pytest.raises(Conflict) as refused:
        assignments.create(world.staff2.id, period, 0, [{"class_id": "7a", "subject": "Art"}])
    assert refused.value.code == "class_taken"
    lines.clear()
    assert run_repair(world.school.code, lines.append) == 1
    assert lines[-1] == "0 fixed, 1 to resolve in 1 school(s)"  # until an admin resolves it
    intruder.update(set__created_at=utcnow() - timedelta(hours=1))  # its writer crashed
    assert run_repair(world.school.code, lines.append) == 0
    assert SlotClaim.objects.get(id=intruder.id).assignment_id == booked.id
    assert lines[-1] == "1 fixed, 0 to resolve in 1 school(s)"
