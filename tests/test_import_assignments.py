"""`rota import assignments`: the timetable from a planning system, one conditional write per
slot and batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bson import ObjectId

from documents.audit import AuditEvent
from documents.base import utcnow
from documents.timetable import Assignment, ClassInfo, TimetableSlot, booking_keys
from service.context import SYSTEM
from service.import_timetable import (
    TimetableSnapshot,
    assignment_document,
    assignment_id_for,
    class_keys,
    slot_document,
)
from service.imports import IMPORTERS
from service.tenancy import school_context
from service.timetable import TimetableSetup
from service.timetable_assignments import Assignments
from service.timetable_slots import slots
from tests.test_import_support import crash_on_call, export, run, write_csv

HEADER = IMPORTERS["assignments"].columns
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def timetable(world):
    """Four periods, staff with external ids, and the managers (acting as the system)."""
    ctx = school_context(SYSTEM, world.school.id)
    setup = TimetableSetup(ctx)
    periods = {n: setup.create_period(n, f"P{n}", f"{7 + n:02d}:00", f"{7 + n:02d}:45")
               for n in range(1, 5)}
    staff = [world.add_user(world.school, "staff", department="Science") for _ in range(6)]
    for number, person in enumerate(staff):
        person.update(set__external_id=f"T{number}")
    return type("Timetable", (), {"ctx": ctx, "periods": periods, "staff": staff,
                                  "assignments": Assignments(ctx)})


def row(staff, day, period, class_id, subject="Maths", room="", count=""):
    return {"staff": staff, "day_of_week": day, "period_number": period, "class_id": class_id,
            "subject": subject, "room_number": room, "student_count": count}


def stored(world) -> list[Assignment]:
    found = [a for slot in TimetableSlot.objects.for_school(world.school.id)
             for a in slot.placed()]
    return sorted(found, key=lambda a: (a.day_of_week, a.staff_id))


def claims(world) -> set[tuple]:
    """(day, period id, kind, key, assignment id) of every class and room booked."""
    return {(a.day_of_week, a.period_id, kind, key, a.id)
            for a in stored(world) for kind, key in booking_keys(a.classes)}


def slot_snapshot(world) -> list:
    """The school's slot documents as stored, sorted."""
    return sorted(slots().find({"school_id": world.school.id}), key=repr)


def import_file(world, tmp_path, rows, name="a.csv", **options):
    return run("assignments", write_csv(tmp_path / name, HEADER, rows), world.school, **options)


def test_rows_of_one_slot_become_one_assignment_with_many_classes(world, timetable, tmp_path):
    t0 = timetable.staff[0]
    outcome = import_file(world, tmp_path, [
        row("T0", 0, 1, "7A", room="R1", count="24"),
        row("T1", 0, 1, "8A", subject="Science", room="Lab"),
        row("T0", 0, 1, "7B", room="R1")])
    assert outcome.code == 0, outcome.report
    assert outcome.count("created") == 3
    first, second = stored(world)
    assert first.staff_id == t0.id and first.assignment_type == "regular"
    assert [(c.class_id, c.room_number, c.student_count) for c in first.classes] == [
        ("7A", "R1", 24), ("7B", "R1", None)]
    period = timetable.periods[1].id
    assert claims(world) == {(0, period, "class", "7a", first.id),
                             (0, period, "class", "7b", first.id),
                             (0, period, "room", "r1", first.id),
                             (0, period, "class", "8a", second.id),
                             (0, period, "room", "lab", second.id)}
    (event,) = AuditEvent.objects(school_id=world.school.id, action="import_create",
                                  entity_type="timetable_assignment")
    assert sorted(event.entity_ids) == sorted([str(first.id), str(second.id)])
    assert (event.actor_role, event.after["count"]) == ("system", 2)


def test_rerun_is_unchanged_and_writes_nothing(world, timetable, tmp_path, roundtrips):
    rows = [row(f"T{n % 6}", n % 5, n // 5 % 4 + 1, f"C{n}", room=f"R{n}") for n in range(40)]
    assert import_file(world, tmp_path, rows).code == 0
    before = (slot_snapshot(world), AuditEvent.objects.count())
    with roundtrips() as commands:
        outcome = import_file(world, tmp_path, rows, batch_size=7)
    assert (outcome.code, outcome.count("unchanged")) == (0, 40)
    assert set(commands) <= {"find", "getMore"}, commands
    assert (slot_snapshot(world), AuditEvent.objects.count()) == before


def test_an_assignments_trail_shows_the_batch_that_created_it_and_each_change(
        client, world, timetable, tmp_path):
    assert import_file(world, tmp_path, [row("T0", 1, 2, "7A"), row("T1", 1, 2, "8A")]).code == 0
    assert import_file(world, tmp_path, [row("T0", 1, 2, "7A", room="R9")],
                       name="b.csv").code == 0
    first = next(a for a in stored(world) if a.staff_id == timetable.staff[0].id)
    trail = client.get(world.url(f"/audit?entity_type=timetable_assignment"
                                 f"&entity_id={first.id}"), headers=world.headers("admin")).json
    assert [e["action"] for e in trail["items"]] == ["import_update", "import_create"]
    created = trail["items"][1]
    assert (created["after"]["count"], len(created["entity_ids"])) == (2, 2)
    assert str(first.id) in created["entity_ids"]


def test_changed_classes_update_the_assignment_and_move_its_claims(world, timetable, tmp_path):
    assert import_file(world, tmp_path, [row("T0", 1, 2, "7A", room="R1"),
                                         row("T0", 1, 2, "7B", room="R1")]).code == 0
    outcome = import_file(world, tmp_path, [row("T0", 1, 2, "7A", room="R2", count="20"),
                                            row("T0", 1, 2, "9C", room="R2")], name="b.csv")
    assert (outcome.code, outcome.count("updated")) == (0, 2)
    (assignment,) = stored(world)
    assert [(c.class_id, c.room_number, c.student_count) for c in assignment.classes] == [
        ("7A", "R2", 20), ("9C", "R2", None)]
    assert assignment.version == 1
    assert {(kind, key) for _, _, kind, key, _ in claims(world)} == {
        ("class", "7a"), ("class", "9c"), ("room", "r2")}
    event = AuditEvent.objects.get(action="import_update", entity_id=str(assignment.id))
    assert [c["class_id"] for c in event.before["classes"]] == ["7A", "7B"]
    assert [c["class_id"] for c in event.after["classes"]] == ["7A", "9C"]


def test_a_slot_changed_after_the_file_was_read_is_never_overwritten(
        world, timetable, tmp_path, monkeypatch):
    """An API write lands between the import's read and its write: the slot's version no
    longer matches, the rows are rejected with their reason, the API's change stays, and a
    re-run afterwards applies the file."""
    assert import_file(world, tmp_path, [row("T0", 1, 2, "7A")]).code == 0
    (assignment,) = stored(world)
    write = TimetableSnapshot.write

    def api_write_first(snapshot, plans):
        timetable.assignments.add_class(assignment.id, class_id="API", subject="Art")
        return write(snapshot, plans)

    with monkeypatch.context() as patch:
        patch.setattr(TimetableSnapshot, "write", api_write_first)
        outcome = import_file(world, tmp_path, [row("T0", 1, 2, "8B")], name="b.csv")
    assert outcome.code == 1
    assert outcome.reasons() == {2: "the slot changed meanwhile; re-run the import"}
    assert [c.class_id for c in stored(world)[0].classes] == ["7A", "API"]
    assert not AuditEvent.objects(action="import_update").count()
    assert import_file(world, tmp_path, [row("T0", 1, 2, "8B")], name="c.csv").code == 0
    assert [c.class_id for c in stored(world)[0].classes] == ["8B"]


def test_each_rejection_has_its_line_and_reason(world, timetable, tmp_path):
    student = world.student
    timetable.assignments.create(timetable.staff[5].id, timetable.periods[1].id, 0,
                                 [{"class_id": "TAKEN", "subject": "X", "room_number": "R9"}])
    rows = [
        row("T0", 0, 2, "OK1"),                       # 2 fine
        row("nobody@hr.test", 0, 1, "A"),             # 3 unknown staff
        row(student.email, 0, 1, "A"),                # 4 not staff
        row("T1", 7, 1, "A"),                         # 5 bad day
        row("T1", "monday", 1, "A"),                  # 6 bad day
        row("T1", 5, 1, "A"),                         # 7 not a working day
        row("T1", 0, 9, "A"),                         # 8 unknown period
        row("T1", 1, 1, "A", count="-3"),             # 9 bad count
        row("T2", 0, 1, "taken"),                     # 10 class double booking
        row("T3", 0, 1, "FREE", room="r9"),           # 11 room double booking
        row("T4", 1, 3, "7A"),                        # 12 + 13: a class twice (case)
        row("T4", 1, 3, "7a"),
        row("T0", 0, 2, "OK1"),                       # 14 duplicate key in file
        row(timetable.staff[0].email.upper(), 0, 2, "OK2"),  # 15 same slot as line 2
    ]
    outcome = import_file(world, tmp_path, rows)
    assert outcome.code == 1
    assert (outcome.count("created"), outcome.count("rejected")) == (1, 13)
    reasons = outcome.reasons()
    assert reasons[3] == "unknown staff 'nobody@hr.test'"
    assert reasons[4] == f"{student.email} is not an active staff member"
    assert reasons[5].startswith("bad day '7'")
    assert reasons[6].startswith("bad day 'monday'")
    assert reasons[7].startswith("bad day 5: not a working day")
    assert reasons[8] == "unknown period '9'"
    assert reasons[9].startswith("bad student_count '-3'")
    assert reasons[10].startswith("double booking: class 'taken'")
    assert reasons[11].startswith("double booking: room 'r9'")
    assert reasons[13].startswith("class '7a' is listed twice in this assignment (line 12)")
    assert reasons[12].startswith("its assignment is rejected: line 13")
    assert reasons[14].startswith("duplicate key in file")
    assert reasons[15] == "the same staff slot is on line 2 (staff named differently)"
    assert len(stored(world)) == 2


def test_a_group_rejected_for_double_booking_writes_nothing(world, timetable, tmp_path):
    timetable.assignments.create(timetable.staff[5].id, timetable.periods[1].id, 0,
                                 [{"class_id": "9Z", "subject": "X"}])
    before = claims(world)
    outcome = import_file(world, tmp_path, [row("T0", 0, 1, "7A", room="R1"),
                                            row("T0", 0, 1, "7B", room="R2"),
                                            row("T0", 0, 1, "9Z", room="R3")])
    assert outcome.code == 1
    assert outcome.reasons()[4].startswith("double booking: class '9z'")
    assert outcome.reasons()[2].startswith("its assignment is rejected")
    assert claims(world) == before
    assert len(stored(world)) == 1


def test_slots_held_by_an_override_or_a_self_allocation_are_not_overwritten(
        world, timetable, tmp_path):
    assert import_file(world, tmp_path, [row("T0", 0, 1, "7A")]).code == 0
    (moved,) = stored(world)
    timetable.assignments.override(moved.id, timetable.staff[1].id, "cover")
    club = Assignment(id=ObjectId(), staff_id=timetable.staff[2].id, classes=[],
                      assignment_type="self_allocated", is_locked=True, activity_name="Club")
    slots().insert_one(slot_document(world.school.id, 0, timetable.periods[2].id,
                                     [club.to_mongo()], utcnow()))
    outcome = import_file(world, tmp_path, [row("T0", 0, 1, "7A"), row("T2", 0, 2, "8B")],
                          name="b.csv")
    assert outcome.reasons() == {
        2: "this slot's assignment was handed to another staff member (override or swap); "
           "import it under its current staff member",
        3: "the staff member holds a locked self-allocation in this slot"}
    exported = export("assignments", world.school, tmp_path / "out.csv")
    assert [(r["staff"], r["class_id"]) for r in exported] == [("T1", "7A")]
    assert import_file(world, tmp_path, exported, name="again.csv").count("unchanged") == 1


def test_dry_run_reports_double_bookings_and_writes_nothing(world, timetable, tmp_path):
    timetable.assignments.create(timetable.staff[5].id, timetable.periods[1].id, 0,
                                 [{"class_id": "TAKEN", "subject": "X"}])
    state = (slot_snapshot(world), AuditEvent.objects.count())
    outcome = import_file(world, tmp_path, [row("T0", 0, 1, "taken"), row("T1", 0, 2, "7A"),
                                            row("T2", 0, 2, "7A"), row("T3", 0, 3, "8A")],
                          dry_run=True, batch_size=2)
    assert outcome.code == 1
    assert (outcome.count("created"), outcome.count("rejected")) == (2, 2)
    assert outcome.reasons()[2].startswith("double booking: class 'taken'")
    assert outcome.reasons()[4].startswith("double booking: class '7a'")
    assert (slot_snapshot(world), AuditEvent.objects.count()) == state


def test_export_then_import_changes_nothing(world, timetable, tmp_path):
    rows = [row(f"T{n % 6}", n % 5, n // 6 % 4 + 1, f"C{n}", room=f"R{n}", count=str(n))
            for n in range(30)]
    rows.append(row(world.staff.email, 4, 4, "X1"))  # a staff member without external_id
    assert import_file(world, tmp_path, rows).code == 0
    exported = export("assignments", world.school, tmp_path / "out.csv")
    assert len(exported) == 31
    assert {r["staff"] for r in exported} == {f"T{n}" for n in range(6)} | {world.staff.email}
    assert exported[0]["student_count"] == "0" and exported[-1]["student_count"] == ""
    outcome = run("assignments", tmp_path / "out.csv", world.school)
    assert (outcome.code, outcome.count("unchanged")) == (0, 31)


def test_a_batch_costs_the_same_round_trips_whatever_its_size(world, timetable, tmp_path,
                                                              roundtrips):
    counts = []
    for day, size in ((0, 4), (1, 24)):
        rows = [row(f"T{n % 6}", day, n // 6 + 1, f"D{day}C{n}", room=f"D{day}R{n}")
                for n in range(size)]
        with roundtrips() as commands:
            assert import_file(world, tmp_path, rows, name=f"{day}.csv").code == 0
        counts.append(len(commands))
    assert counts[0] == counts[1] <= 10


def test_documents_built_as_dicts_match_the_documents_shapes(world, timetable):
    """The importer builds raw documents for speed; they must equal what MongoEngine stores."""
    now = utcnow()
    staff_id, period_id = timetable.staff[0].id, timetable.periods[1].id
    assignment_id = assignment_id_for(world.school.id, staff_id, 2, period_id)
    classes = [{"class_id": "7A", "subject": "Maths", "room_number": "R1"}]
    raw = assignment_document(assignment_id, staff_id, classes, now)
    modelled = Assignment(id=assignment_id, staff_id=staff_id, classes=classes, created_at=now,
                          updated_at=now)
    assert raw == modelled.to_mongo().to_dict()
    slot = slot_document(world.school.id, 2, period_id, [raw], now)
    assert slot == TimetableSlot(id=slot["_id"], school_id=world.school.id, created_at=now,
                                 day_of_week=2, period_id=period_id,
                                 assignments=[modelled]).to_mongo().to_dict()
    messy = [{"class_id": " 7a ", "subject": "M", "room_number": "Room  1"},
             {"class_id": "7B", "subject": "M", "room_number": "  "}, {"class_id": "8C",
                                                                      "subject": "M"}]
    assert class_keys(messy) == booking_keys([ClassInfo(**c) for c in messy])


def domain_state(world) -> list:
    """The slots without what differs between two runs that did the same: the slots' ids,
    versions (how many batches wrote them) and the timestamps."""
    return sorted(((slot["day_of_week"], slot["period_id"],
                    sorted(({k: v for k, v in a.items() if k not in ("created_at", "updated_at")}
                            for a in slot["assignments"]), key=repr))
                   for slot in slots().find({"school_id": world.school.id})), key=repr)


def clear(world) -> None:
    TimetableSlot.objects.for_school(world.school.id).delete()


@pytest.mark.parametrize("step,call", [("write", 2), ("_record_audit", 1)])
def test_a_run_killed_midway_then_rerun_ends_like_one_clean_run(world, timetable, tmp_path,
                                                              monkeypatch, step, call):
    first = [row(f"T{n % 6}", n % 5, n // 6 % 4 + 1, f"C{n}", room=f"R{n}") for n in range(24)]
    second = [dict(r, class_id=r["class_id"] + "x") for r in first]
    assert import_file(world, tmp_path, first).code == 0
    assert import_file(world, tmp_path, second, name="second.csv", batch_size=6).code == 0
    clean = domain_state(world)
    clear(world)

    assert import_file(world, tmp_path, first).code == 0
    with monkeypatch.context() as patch:
        crash_on_call(patch, TimetableSnapshot, step, call)
        with pytest.raises(KeyboardInterrupt):
            import_file(world, tmp_path, second, name="second.csv", batch_size=6)
    assert domain_state(world) != clean
    outcome = import_file(world, tmp_path, second, name="second.csv", batch_size=6)
    assert outcome.code == 0, outcome.report
    assert domain_state(world) == clean


@pytest.mark.integration
def test_a_killed_command_then_rerun_ends_like_one_clean_run(world, timetable, tmp_path,
                                                            database_uri):
    """The real thing: `rota import` in a subprocess, SIGKILLed while it writes."""
    rows = [row(f"T{n % 6}", n % 5, n // 30 + 1, f"C{n}", room=f"R{n}") for n in range(120)]
    path = write_csv(tmp_path / "big.csv", HEADER, rows)
    env = {**os.environ, "MONGODB_URI": database_uri}
    command = [sys.executable, "-m", "scripts.cli", "import", "assignments", str(path),
               "--school", world.school.code, "--batch-size", "5"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not TimetableSlot.objects.for_school(world.school.id).count():
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL  # killed while still importing
    assert run("assignments", path, world.school).code == 0
    recovered = domain_state(world)
    clear(world)
    assert run("assignments", path, world.school).code == 0
    assert domain_state(world) == recovered
    assert sum(len(assignments) for _, _, assignments in recovered) == 120


def test_a_file_without_room_or_count_columns_keeps_them(world, timetable, tmp_path):
    assert import_file(world, tmp_path, [row("T0", 0, 1, "7A", room="R1", count="24"),
                                         row("T0", 0, 1, "7B", room="R2")]).code == 0
    lean = write_csv(tmp_path / "lean.csv", ["staff", "day_of_week", "period_number",
                                             "class_id", "subject"],
                     [["T0", 0, 1, "7A", "Maths"], ["T0", 0, 1, "7B", "Maths"]])
    outcome = run("assignments", lean, world.school)
    assert (outcome.code, outcome.count("unchanged")) == (0, 2), outcome.report
    (kept,) = stored(world)
    assert [(c.class_id, c.room_number, c.student_count) for c in kept.classes] == [
        ("7A", "R1", 24), ("7B", "R2", None)]
    cleared = import_file(world, tmp_path, [row("T0", 0, 1, "7A"), row("T0", 0, 1, "7B")],
                          name="empty-cells.csv")
    assert (cleared.code, cleared.count("updated")) == (0, 2)
    assert [c.room_number for c in stored(world)[0].classes] == [None, None]
