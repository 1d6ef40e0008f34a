"""`rota repair`: what crashed requests left half-done is settled, and only that."""

from __future__ import annotations

from datetime import timedelta

from bson import ObjectId

from documents.base import utcnow
from documents.weekly_groups import SeatClaim
from scripts.repair import run_repair
from tests.test_weekly_groups import manager


def test_orphan_seats_of_a_crashed_move_are_released_and_young_ones_kept(world):
    groups = manager(world)
    program = groups.create_program(name="Summer", max_weeks=2)
    group = groups.create_group(program.id, "Reds", "Blue", max_size=2)

    def claim(seat, age):
        return SeatClaim(school_id=world.school.id, program_id=program.id, group_id=group.id,
                         week_number=1, seat=seat, student_id=ObjectId(), move_id=ObjectId(),
                         created_at=utcnow() - age).save()

    claim(1, timedelta(hours=1))     # its move died before placing the student
    young = claim(2, timedelta(seconds=1))  # a move between its steps right now
    lines = []
    assert run_repair(world.school.code, lines.append) == 0
    assert [c.id for c in SeatClaim.objects(group_id=group.id)] == [young.id]
    assert any("1 orphan seat(s) released" in line for line in lines)
    lines.clear()
    assert run_repair(world.school.code, lines.append) == 0
    assert lines[-1] == "0 fixed in 1 school(s)"


def test_an_unknown_school_code_is_exit_2(world):
    lines = []
    assert run_repair("NOPE", lines.append) == 2
    assert "NOPE" in lines[0]
