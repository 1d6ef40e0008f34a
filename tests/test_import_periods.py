"""`rota import periods` through the framework (the importer lives in service/timetable.py)."""

from __future__ import annotations

import pytest

from documents.audit import AuditEvent
from documents.timetable import TimetableSettings
from service import timetable
from tests.test_import_support import crash_on_call, export, run, write_csv

HEADER = ("period_number", "period_name", "start_time", "end_time")
DAY = [(1, "First", "08:00", "08:45"), (2, "Second", "08:50", "09:35"),
       (3, "Third", "09:55", "10:40"), (4, "Fourth", "10:45", "11:30")]


def periods(world) -> list[tuple]:
    settings = TimetableSettings.objects.for_school(world.school.id).first()
    return sorted((p.period_number, p.period_name, p.start_time, p.end_time, p.duration_minutes)
                  for p in (settings.periods if settings else []) if p.is_active)


def test_create_rerun_update_and_round_trip(world, tmp_path):
    path = write_csv(tmp_path / "p.csv", HEADER, DAY)
    created = run("periods", path, world.school)
    assert (created.code, created.count("created")) == (0, 4)
    assert periods(world)[0] == (1, "First", "08:00", "08:45", 45)
    events = AuditEvent.objects(school_id=world.school.id, action="import_create").count()

    again = run("periods", path, world.school)
    assert (again.code, again.count("unchanged")) == (0, 4)
    assert AuditEvent.objects(school_id=world.school.id).filter(
        action__in=["import_create", "import_update"]).count() == events

    changed = write_csv(tmp_path / "q.csv", HEADER, [(1, "Registration", "08:00", "08:30")])
    updated = run("periods", changed, world.school)
    assert (updated.code, updated.count("updated")) == (0, 1)
    assert periods(world)[0] == (1, "Registration", "08:00", "08:30", 30)

    exported = export("periods", world.school, tmp_path / "out.csv")
    assert [r["period_number"] for r in exported] == ["1", "2", "3", "4"]
    assert run("periods", tmp_path / "out.csv", world.school).count("unchanged") == 4


def test_bad_times_and_overlaps_are_rejected_with_their_lines(world, tmp_path):
    path = write_csv(tmp_path / "p.csv", HEADER, [
        (1, "First", "08:00", "08:45"),
        (2, "Backwards", "10:00", "09:00"),
        (3, "Not a time", "25:00", "26:00"),
        (4, "Overlaps first", "08:30", "09:10"),
        ("five", "Bad number", "11:00", "11:45"),
        (1, "Repeated", "12:00", "12:45")])
    outcome = run("periods", path, world.school)
    assert outcome.code == 1
    reasons = outcome.reasons()
    assert sorted(reasons) == [3, 4, 5, 6, 7]
    assert "after start_time" in reasons[3]
    assert "25:00" in reasons[4]
    assert "overlaps period 1" in reasons[5]
    assert "duplicate key in file" in reasons[7]
    assert periods(world) == [(1, "First", "08:00", "08:45", 45)]


def test_dry_run_writes_nothing(world, tmp_path):
    outcome = run("periods", write_csv(tmp_path / "p.csv", HEADER, DAY), world.school,
                  dry_run=True)
    assert (outcome.code, outcome.count("created")) == (0, 4)
    assert periods(world) == []
    assert not AuditEvent.objects(school_id=world.school.id, action="import_create").count()


def test_a_run_killed_between_batches_then_rerun_ends_like_one_clean_run(world, tmp_path,
                                                                          monkeypatch):
    path = write_csv(tmp_path / "p.csv", HEADER, DAY)
    with monkeypatch.context() as patch:
        crash_on_call(patch, timetable, "import_periods", call_number=2)
        with pytest.raises(KeyboardInterrupt):
            run("periods", path, world.school, batch_size=2)
    assert len(periods(world)) == 2
    assert run("periods", path, world.school, batch_size=2).code == 0
    assert periods(world) == [(n, name, start, end, 45) for n, name, start, end in DAY]
