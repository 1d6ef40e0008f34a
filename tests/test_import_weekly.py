"""`rota import students` and `rota import group-memberships` through the framework (the
importers live in service/weekly_groups_import.py and are tested there row by row)."""

from __future__ import annotations

from pathlib import Path

import pytest

from documents.audit import AuditEvent
from documents.weekly_groups import ProgramStudent
from service import weekly_groups_import
from service.context import SYSTEM
from service.tenancy import school_context
from service.weekly_groups import WeeklyGroups
from tests.test_import_support import (
    crash_on_call,
    export,
    run,
    snapshot,
    write_csv,
    write_json_lines,
)

SAMPLES = Path(__file__).resolve().parent.parent / "scripts" / "samples"
STUDENT_HEADER = ("program", "customer_id", "name", "ability_level", "birth_date", "email")
MEMBERSHIP_HEADER = ("program", "week_number", "group", "customer_id")


@pytest.fixture
def swim(world):
    """The program and groups the sample files name; Beginner 1 seats two."""
    manager = WeeklyGroups(school_context(SYSTEM, world.school.id))
    program = manager.create_program("Summer Swim", max_weeks=4)
    manager.create_group(program.id, "Beginner 1", "Beginner", max_size=2)
    manager.create_group(program.id, "Advanced 1", "Advanced", max_size=8)
    return program


def students(world) -> dict[str, dict]:
    return {s["customer_id"]: s for s in ProgramStudent.objects.for_school(
        world.school.id).as_pymongo()}


def test_every_sample_file_imports_cleanly_in_order(world, swim, tmp_path):
    for kind in ("users", "periods", "assignments", "students", "group-memberships"):
        sample = tmp_path / f"{kind}.csv"
        sample.write_text((SAMPLES / f"{kind}.csv").read_text())
        outcome = run(kind, sample, world.school)
        assert outcome.code == 0, (kind, outcome.report)
        assert outcome.count("rejected") == 0
        assert run(kind, sample, world.school).count("created") == 0, kind


def test_students_create_rerun_update_reject_and_round_trip(world, swim, tmp_path):
    rows = [("Summer Swim", "C1", "Mia", "Beginner", "2015-04-12", "Mia@Parents.test"),
            ("Summer Swim", "C2", "Leo", "", "", ""),
            ("Winter Ski", "C3", "Zoe", "", "", ""),
            ("Summer Swim", "C4", "Kit", "", "12/04/2015", "")]
    path = write_csv(tmp_path / "s.csv", STUDENT_HEADER, rows)
    outcome = run("students", path, world.school)
    assert (outcome.code, outcome.count("created"), outcome.count("rejected")) == (1, 2, 2)
    assert outcome.reasons()[4] == "unknown program 'Winter Ski'"
    assert "birth_date" in outcome.reasons()[5]
    assert students(world)["C1"]["email"] == "mia@parents.test"
    [created] = AuditEvent.objects(school_id=world.school.id, action="import_create",
                                   entity_type="program_student")
    assert sorted(created.entity_ids) == sorted(
        str(students(world)[key]["_id"]) for key in ("C1", "C2"))

    again = run("students", write_csv(tmp_path / "t.csv", STUDENT_HEADER, rows[:2]),
                world.school)
    assert (again.code, again.count("unchanged")) == (0, 2)

    renamed = [("Summer Swim", "C2", "Leon", "", "", "")]
    updated = run("students", write_csv(tmp_path / "u.csv", STUDENT_HEADER, renamed),
                  world.school)
    assert (updated.code, updated.count("updated")) == (0, 1)
    assert students(world)["C2"]["name"] == "Leon"
    assert AuditEvent.objects(school_id=world.school.id, action="import_update").count() == 1

    exported = export("students", world.school, tmp_path / "out.csv")
    assert [r["customer_id"] for r in exported] == ["C1", "C2"]
    back = run("students", tmp_path / "out.csv", world.school)
    assert (back.code, back.count("unchanged")) == (0, 2)


def import_students(world, tmp_path, count: int) -> None:
    rows = [("Summer Swim", f"C{n}", f"Kid {n}", "", "", "") for n in range(count)]
    assert run("students", write_csv(tmp_path / "kids.csv", STUDENT_HEADER, rows),
               world.school).code == 0


def test_memberships_respect_capacity_and_round_trip(world, swim, tmp_path):
    import_students(world, tmp_path, 4)
    rows = [("Summer Swim", 1, "Beginner 1", "C0"), ("Summer Swim", 1, "Beginner 1", "C1"),
            ("Summer Swim", 1, "Beginner 1", "C2"), ("Summer Swim", 1, "Nope", "C3"),
            ("Summer Swim", 9, "Advanced 1", "C3"), ("Summer Swim", 1, "Advanced 1", "C9")]
    outcome = run("group-memberships", write_csv(tmp_path / "m.csv", MEMBERSHIP_HEADER, rows),
                  world.school)
    assert outcome.code == 1
    assert outcome.count("created") == 2
    reasons = outcome.reasons()
    assert reasons[4] == "group 'Beginner 1' is full in week 1"
    assert reasons[5].startswith("no group 'Nope'")
    assert reasons[6].startswith("week_number must be 1 to 4")
    assert reasons[7].startswith("no student with customer_id 'C9'")

    exported = export("group-memberships", world.school, tmp_path / "out.csv")
    assert [(r["group"], r["customer_id"]) for r in exported] == [
        ("Beginner 1", "C0"), ("Beginner 1", "C1")]
    back = run("group-memberships", tmp_path / "out.csv", world.school)
    assert (back.code, back.count("unchanged")) == (0, 2)


def test_a_nightly_swap_between_two_full_groups_lands_whatever_the_batch_size(world, swim,
                                                                             tmp_path):
    import_students(world, tmp_path, 4)
    seated = [("Summer Swim", 1, "Beginner 1", "C0"), ("Summer Swim", 1, "Beginner 1", "C1"),
              ("Summer Swim", 1, "Small 1", "C2"), ("Summer Swim", 1, "Small 1", "C3")]
    header = (*MEMBERSHIP_HEADER, "max_size")
    first = run("group-memberships", write_csv(tmp_path / "m.csv", header, [
        (*row, 2) for row in seated]), world.school)
    assert (first.code, first.count("created")) == (0, 4)  # Small 1 created, seating two
    swap = [("Summer Swim", 1, "Small 1", "C0"), ("Summer Swim", 1, "Beginner 1", "C2"),
            ("Summer Swim", 2, "", "C0")]
    for attempt in range(2):  # a re-run of the same file changes nothing
        outcome = run("group-memberships", write_csv(tmp_path / "swap.csv", MEMBERSHIP_HEADER,
                                                     swap), world.school, batch_size=1)
        assert outcome.code == 0, outcome.reasons()
        assert outcome.count("updated") == (2, 0)[attempt]  # week 2: C0 was in no group
        assert outcome.count("unchanged") == (1, 3)[attempt]
    exported = export("group-memberships", world.school, tmp_path / "out.csv")
    assert sorted((r["group"], r["customer_id"]) for r in exported) == [
        ("Beginner 1", "C1"), ("Beginner 1", "C2"), ("Small 1", "C0"), ("Small 1", "C3")]


def test_dry_run_writes_nothing(world, swim, tmp_path):
    rows = [("Summer Swim", "C1", "Mia", "", "", "")]
    before = AuditEvent.objects.count()
    outcome = run("students", write_csv(tmp_path / "s.csv", STUDENT_HEADER, rows),
                  world.school, dry_run=True)
    assert (outcome.code, outcome.count("created")) == (0, 1)
    assert students(world) == {}
    assert AuditEvent.objects.count() == before


def crash_then_rerun(world, monkeypatch, kind: str, importer: str, path: Path) -> None:
    """Kill the import after its first batch of 4 rows, then run the file again."""
    with monkeypatch.context() as patch:
        crash_on_call(patch, weekly_groups_import, importer, call_number=2)
        with pytest.raises(KeyboardInterrupt):
            run(kind, path, world.school, batch_size=4)
    assert run(kind, path, world.school, batch_size=4).code == 0


def test_students_killed_between_batches_then_rerun_end_like_one_clean_run(
        world, swim, tmp_path, monkeypatch):
    rows = [("Summer Swim", f"K{n}", f"Kid {n}", "", "", "") for n in range(10)]
    path = write_csv(tmp_path / "s.csv", STUDENT_HEADER, rows)
    crash_then_rerun(world, monkeypatch, "students", "import_students", path)
    recovered = snapshot(ProgramStudent, world.school.id)
    ProgramStudent.objects.for_school(world.school.id).delete()
    assert run("students", path, world.school).code == 0
    assert snapshot(ProgramStudent, world.school.id) == recovered
    assert len(recovered) == 10


def test_memberships_killed_between_batches_then_rerun_end_like_one_clean_run(
        world, swim, tmp_path, monkeypatch):
    import_students(world, tmp_path, 6)
    rows = [("Summer Swim", week, "Advanced 1", f"C{n}") for n in range(6) for week in (1, 2)]
    path = write_csv(tmp_path / "m.csv", MEMBERSHIP_HEADER, rows)
    crash_then_rerun(world, monkeypatch, "group-memberships", "import_group_memberships", path)
    exported = export("group-memberships", world.school, tmp_path / "out.csv")
    assert sorted((r["week_number"], r["customer_id"]) for r in exported) == sorted(
        (str(week), f"C{n}") for n in range(6) for week in (1, 2))
    manager = WeeklyGroups(school_context(SYSTEM, world.school.id))
    for week in (1, 2):
        groups = {g["base_name"]: g for g in manager.week_view(swim.id, week)["groups"]}
        assert groups["Advanced 1"]["capacity"] == "6/8"


def test_group_base_name_is_another_name_for_group(world, swim, tmp_path):
    """A nightly file naming the column `group_base_name` creates and fills a group like
    `group` does; running it again changes nothing."""
    import_students(world, tmp_path, 3)
    header = ("program", "week_number", "group_base_name", "customer_id", "max_size")
    path = write_csv(tmp_path / "nightly.csv", header, [
        ("Summer Swim", 1, "Dolphins", "C0", 3), ("Summer Swim", 1, "Dolphins", "C1", 3)])
    first = run("group-memberships", path, world.school)
    assert (first.code, first.count("created")) == (0, 2), first.reasons()
    manager = WeeklyGroups(school_context(SYSTEM, world.school.id))
    groups = {g["base_name"]: g for g in manager.week_view(swim.id, 1)["groups"]}
    assert groups["Dolphins"]["capacity"] == "2/3"
    state, events = manager.week_view(swim.id, 1), AuditEvent.objects.count()
    again = run("group-memberships", path, world.school)
    assert (again.code, again.count("unchanged")) == (0, 2)
    assert manager.week_view(swim.id, 1) == state and AuditEvent.objects.count() == events
    lines = write_json_lines(tmp_path / "nightly.jsonl", [
        {"program": "Summer Swim", "week_number": 1, "group_base_name": "Dolphins",
         "customer_id": "C2"}])
    joined = run("group-memberships", lines, world.school)
    assert (joined.code, joined.count("created")) == (0, 1), joined.reasons()
    groups = {g["base_name"]: g for g in manager.week_view(swim.id, 1)["groups"]}
    assert groups["Dolphins"]["capacity"] == "3/3"


def test_a_file_with_both_group_and_group_base_name_is_unusable(world, swim, tmp_path,
                                                                capsys):
    import_students(world, tmp_path, 1)
    both = write_csv(tmp_path / "both.csv",
                     ("program", "week_number", "group", "group_base_name", "customer_id"),
                     [("Summer Swim", 1, "Advanced 1", "Advanced 1", "C0")])
    mixed = write_json_lines(tmp_path / "mixed.jsonl", [
        {"program": "Summer Swim", "week_number": 1, "group": "Advanced 1",
         "customer_id": "C0"},
        {"program": "Summer Swim", "week_number": 2, "group_base_name": "Advanced 1",
         "customer_id": "C0"}])
    for path in (both, mixed):
        outcome = run("group-memberships", path, world.school)
        assert outcome.code == 2
        assert "columns group and group_base_name are the same column" in \
            capsys.readouterr().err
    assert export("group-memberships", world.school, tmp_path / "out.csv") == []
