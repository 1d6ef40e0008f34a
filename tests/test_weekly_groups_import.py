"""The weekly groups importers and exporters called directly (the `rota import` command and
its own tests live elsewhere)."""

from __future__ import annotations

import pytest

from documents.weekly_groups import ProgramWeek
from service.context import SYSTEM, SchoolContext
from service.imports import CREATED, REJECTED, UNCHANGED, UPDATED, Row
from service.weekly_groups_import import (
    export_group_memberships,
    export_students,
    import_group_memberships,
    import_students,
)
from tests.test_weekly_groups import manager


@pytest.fixture
def ctx(world):
    return SchoolContext(actor=SYSTEM, school_id=world.school.id,
                         company_id=world.school.company_id, modules=frozenset())


def rows(*values: dict) -> list[Row]:
    return [Row(line, {k: v for k, v in v.items() if v != ""})
            for line, v in enumerate(values, start=2)]


def statuses(results):
    return [(r.status, r.reason) if r.status == REJECTED else r.status for r in results]


def student_row(customer_id, name, program="Winter", **extra):
    return {"program": program, "customer_id": customer_id, "name": name, **extra}


def test_students_are_upserted_by_customer_id(world, ctx, roundtrips):
    wg = manager(world)
    program = wg.create_program(name="Winter")
    batch = rows(student_row("C1", "Ada", ability_level="Red", birth_date="2014-02-03"),
                 student_row("C2", "Bo", email="Bo@Example.test"),
                 student_row("C3", "Cy", program="Nope"),
                 student_row("C4", "Di", birth_date="03/02/2014"))
    assert statuses(import_students(ctx, batch, dry_run=True))[:2] == [CREATED, CREATED]
    assert wg.list_students(program.id).total == 0  # dry run wrote nothing
    with roundtrips() as commands:
        results = import_students(ctx, batch, dry_run=False)
    assert len(commands) <= 4, commands
    assert statuses(results)[:2] == [CREATED, CREATED]
    assert results[2].status == REJECTED and "unknown program" in results[2].reason
    assert results[3].status == REJECTED and "birth_date" in results[3].reason
    again = import_students(ctx, rows(student_row("C1", "Ada", ability_level="Red",
                                                  birth_date="2014-02-03"),
                                      student_row("C2", "Bo B.")), dry_run=False)
    assert statuses(again) == [UNCHANGED, UPDATED]
    stored = {s["customer_id"]: s for s in wg.list_students(program.id).items}
    assert stored["C2"]["name"] == "Bo B." and stored["C2"]["email"] is None
    assert stored["C1"]["birth_date"].year == 2014


def test_a_customer_id_of_another_program_is_rejected(world, ctx):
    wg = manager(world)
    wg.create_program(name="Winter")
    other = wg.create_program(name="Summer")
    wg.add_student(other.id, "Taken", customer_id="C9")
    results = import_students(ctx, rows(student_row("C9", "Taken")), dry_run=False)
    assert results[0].status == REJECTED and "another program" in results[0].reason


def _members(program, week=1) -> dict[str, list]:
    """base name -> the ids of the group's members that week, as stored."""
    stored = ProgramWeek.objects.get(program_id=program.id, week_number=week)
    return {g.base_name: [m.student_id for m in g.members] for g in stored.groups}


def _program_with_groups(world):
    wg = manager(world)
    program = wg.create_program(name="Winter", max_weeks=3)
    small = wg.create_group(program.id, "Small", "Blue", max_size=2)
    big = wg.create_group(program.id, "Big", "Blue", max_size=8)
    for i in range(4):
        wg.add_student(program.id, f"Kid {i}", customer_id=f"K{i}")
    return wg, program, small, big


def membership(customer_id, group, week="1", program="Winter"):
    return {"program": program, "week_number": week, "group": group,
            "customer_id": customer_id}


def test_memberships_follow_the_move_rules(world, ctx):
    wg, program, small, big = _program_with_groups(world)
    batch = rows(membership("K0", "Small"), membership("K1", "Small"),
                 membership("K2", "Small"),            # third seat of a group of two
                 membership("K3", "Big", week="4"),    # outside the program
                 membership("K3", "Nowhere"),
                 membership("ZZ", "Big"),
                 membership("K3", "Big", week="2"))
    planned = import_group_memberships(ctx, batch, dry_run=True)
    assert wg.week_view(program.id, 1)["unassigned_students"] != []
    results = import_group_memberships(ctx, batch, dry_run=False)
    assert [r.status for r in results] == [r.status for r in planned]
    assert [r.status for r in results] == [CREATED, CREATED, REJECTED, REJECTED, REJECTED,
                                           REJECTED, CREATED]
    assert "full" in results[2].reason
    week = wg.week_view(program.id, 1)
    small_now = next(g for g in week["groups"] if g["group_id"] == small.id)
    assert small_now["capacity"] == "2/2"
    # moving someone out and re-importing: updated, and the seat counts stay true
    moved = import_group_memberships(ctx, rows(membership("K0", "Big"),
                                               membership("K2", "Small")), dry_run=False)
    assert [r.status for r in moved] == [UPDATED, CREATED]  # the seat freed in the batch
    assert [r.status for r in import_group_memberships(
        ctx, rows(membership("K2", "Small")), dry_run=False)] == [UNCHANGED]
    kids = {s["customer_id"]: s["id"] for s in wg.list_students(program.id).items}
    assert _members(program) == {"Small": [kids["K1"], kids["K2"]], "Big": [kids["K0"]]}
    history = wg.history(program.id, wg.list_students(program.id).items[0]["id"])
    assert [m["reason"] for m in history["moves"]] == ["import", "import"]


def test_an_export_imports_back_unchanged(world, ctx):
    wg, program, small, big = _program_with_groups(world)
    wg.add_student(program.id, "No key")  # no customer_id: not exported
    import_students(ctx, rows(student_row("K0", "Kid 0", ability_level="Red",
                                          birth_date="2015-05-06", email="k0@example.test")),
                    dry_run=False)
    import_group_memberships(ctx, rows(membership("K0", "Small"), membership("K1", "Big"),
                                       membership("K0", "Big", week="2")), dry_run=False)
    students = list(export_students(ctx))
    assert len(students) == 4
    assert students[0] == {"program": "Winter", "customer_id": "K0", "name": "Kid 0",
                           "ability_level": "Red", "birth_date": "2015-05-06",
                           "email": "k0@example.test"}
    memberships = list(export_group_memberships(ctx))
    assert memberships == [membership("K0", "Small"), membership("K0", "Big", week="2"),
                           membership("K1", "Big")]
    assert {r.status for r in import_students(ctx, rows(*students), False)} == {UNCHANGED}
    assert {r.status for r in import_group_memberships(ctx, rows(*memberships), False)} \
        == {UNCHANGED}


def test_a_file_swapping_two_students_between_full_groups_is_applied_as_a_swap(world, ctx):
    wg, program, small, big = _program_with_groups(world)
    wg.create_group(program.id, "Other", "Blue", max_size=2)
    import_group_memberships(ctx, rows(membership("K0", "Small"), membership("K1", "Small"),
                                       membership("K2", "Other"), membership("K3", "Other")),
                             dry_run=False)
    swap = rows(membership("K0", "Other"), membership("K2", "Small"))
    assert statuses(import_group_memberships(ctx, swap, dry_run=True)) == [UPDATED, UPDATED]
    assert statuses(import_group_memberships(ctx, swap, dry_run=False)) == [UPDATED, UPDATED]
    kids = {s["customer_id"]: s["id"] for s in wg.list_students(program.id).items}
    members = _members(program)
    assert (sorted(members["Small"]), sorted(members["Other"])) == (
        sorted([kids["K1"], kids["K2"]]), sorted([kids["K3"], kids["K0"]]))
    assert statuses(import_group_memberships(ctx, swap, dry_run=False)) == [UNCHANGED] * 2
    # a third student into the full group has no seat: the last row in is rejected
    crowded = import_group_memberships(ctx, rows(membership("K0", "Small"),
                                                 membership("K3", "Small"),
                                                 membership("K1", "Other")), dry_run=False)
    assert [r.status for r in crowded] == [UPDATED, REJECTED, UPDATED]
    assert "full" in crowded[1].reason


def test_nightly_files_create_groups_and_take_students_out(world, ctx):
    wg, program, small, big = _program_with_groups(world)
    import_group_memberships(ctx, rows(membership("K0", "Small")), dry_run=False)
    batch = rows({**membership("K1", "Fresh"), "max_size": "1"},
                 {**membership("K2", "Fresh"), "max_size": "1"},
                 membership("K3", "Unknown"),
                 {**membership("K0", ""), "group": ""})
    planned = statuses(import_group_memberships(ctx, batch, dry_run=True))
    assert "Fresh" not in {g["base_name"] for g in wg.list_groups(program.id).items}
    results = statuses(import_group_memberships(ctx, batch, dry_run=False))
    assert results == planned
    assert results[0] == CREATED and results[3] == UPDATED
    assert results[1][0] == REJECTED and "full" in results[1][1]
    assert results[2][0] == REJECTED and "max_size" in results[2][1]
    fresh = next(g for g in wg.list_groups(program.id).items if g.base_name == "Fresh")
    assert fresh.max_size == 1
    for week in (1, 2, 3):
        assert "Fresh" in _members(program, week)
    kids = {s["customer_id"]: s["id"] for s in wg.list_students(program.id).items}
    assert _members(program)["Fresh"] == [kids["K1"]] and _members(program)["Small"] == []


def test_a_group_starting_later_and_a_late_joiner_are_named_as_such(world, ctx):
    wg, program, small, big = _program_with_groups(world)
    late = wg.create_group(program.id, "Late", "Blue")
    ProgramWeek.objects(program_id=program.id, week_number=1).update(
        pull__groups__group_id=late.id)  # as a group generated for week 2 on
    wg.add_student(program.id, "Newcomer", customer_id="N1", first_week=2)
    results = import_group_memberships(ctx, rows(membership("K0", "Late"),
                                                 membership("N1", "Big")), dry_run=False)
    assert results[0].status == REJECTED and "starts in a later week" in results[0].reason
    assert results[1].status == REJECTED and "not yet enrolled" in results[1].reason
