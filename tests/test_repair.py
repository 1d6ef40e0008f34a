"""`rota repair`: what crashed requests left half-done is settled, and only that."""

from __future__ import annotations

from datetime import timedelta

from bson import ObjectId

from documents.base import utcnow
from documents.timetable import AlterationRequest, Assignment, ClassInfo
from documents.weekly_groups import ProgramWeek, StudentMove
from scripts.repair import run_repair
from service.context import SYSTEM, Actor
from service.tenancy import school_context
from service.timetable import TimetableSetup
from service.timetable_alterations import AlterationRequests
from service.timetable_assignments import Assignments
from service.timetable_slots import slots
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


def test_double_bookings_written_around_the_service_are_left_to_an_admin(world):
    ctx = school_context(SYSTEM, world.school.id)
    period = TimetableSetup(ctx).create_period(1, "P1", "08:00", "08:45").id
    booked = Assignments(ctx).create(world.staff.id, period, 0,
                                     [{"class_id": "7A", "subject": "Maths", "room_number": "R1"}])
    intruder = Assignment(id=ObjectId(), staff_id=world.staff2.id,
                          classes=[ClassInfo(class_id="7a", subject="Art")])
    slots().update_one({"school_id": world.school.id, "assignments.id": booked.id},
                       {"$push": {"assignments": intruder.to_mongo()}})
    lines = []
    assert run_repair(world.school.code, lines.append) == 1
    assert lines[-2] == "  to resolve: double booking: class '7a' on day 0 period 1: " \
        f"assignments {', '.join(sorted([str(booked.id), str(intruder.id)]))}"
    assert lines[-1] == "0 fixed, 1 to resolve in 1 school(s)"


def test_an_accept_that_died_between_its_writes_is_settled_by_repair(world):
    """Only the first write happened (pending -> accepting) and long ago: the slot does not
    show the move, so repair fails the request, once, and the lesson stays put."""
    ctx = school_context(SYSTEM, world.school.id)
    period = TimetableSetup(ctx).create_period(1, "P1", "08:00", "08:45").id
    held = Assignments(ctx).create(world.staff.id, period, 0,
                                   [{"class_id": "7A", "subject": "Maths"}])
    staff = Actor(world.staff.id, "staff", world.school.company_id, world.school.id)
    staff_ctx = school_context(staff, world.school.id)
    request = AlterationRequests(staff_ctx).create(held.id, "Course",
                                                   target_staff_id=world.staff2.id)
    request.update(set__status="accepting", set__accepted_by=world.staff2.id,
                   set__accepting_since=utcnow() - timedelta(hours=1))
    lines = []
    assert run_repair(world.school.code, lines.append) == 0
    assert f"  fixed: alteration request {request.id} settled as failed" in lines
    assert AlterationRequest.objects.get(id=request.id).failure_code == "interrupted"
    assert slots().find_one({"assignments.id": held.id})["assignments"][0]["staff_id"] == \
        world.staff.id
    lines.clear()
    assert run_repair(world.school.code, lines.append) == 0
    assert lines[-1] == "0 fixed, 0 to resolve in 1 school(s)"
