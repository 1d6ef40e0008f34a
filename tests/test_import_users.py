"""`rota import users` / `rota export users`: HR's people of a school."""

from __future__ import annotations

import pytest

from documents.accounts import User
from documents.audit import AuditEvent
from service import import_users
from tests.helpers import parallel
from tests.test_import_support import (
    crash_on_call,
    export,
    replace_function,
    run,
    snapshot,
    write_csv,
    write_json_lines,
)

HEADER = ("email", "name", "role", "external_id", "department")


def people(n: int, prefix: str = "p") -> list[dict]:
    return [{"email": f"{prefix}{i}@hr.test", "name": f"Person {i}",
             "role": "student" if i % 3 == 0 else "staff", "external_id": f"{prefix.upper()}{i}",
             "department": "Science" if i % 2 else ""} for i in range(n)]


def imported(world, email: str) -> User:
    return User.objects.get(email=email, school_id=world.school.id)


def import_events(world, action: str):
    return AuditEvent.objects(school_id=world.school.id, action=action, entity_type="user")


def test_creates_staff_students_and_admins_with_department_and_audit(world, tmp_path):
    rows = [{"email": "Ada@HR.test", "name": "Ada", "role": "staff", "external_id": "E1",
             "department": "Mathematics"},
            {"email": "bo@hr.test", "name": "Bo", "role": "student"},
            {"email": "cy@hr.test", "name": "Cy", "role": "school_admin", "external_id": "E3"}]
    outcome = run("users", write_csv(tmp_path / "users.csv", HEADER, rows), world.school)
    assert outcome.code == 0, outcome.output
    assert (outcome.count("created"), outcome.count("rejected")) == (3, 0)
    ada = imported(world, "ada@hr.test")
    assert (ada.role, ada.department, ada.external_id, ada.company_id) == (
        "staff", "Mathematics", "E1", world.school.company_id)
    assert imported(world, "bo@hr.test").department is None
    assert imported(world, "cy@hr.test").role == "school_admin"
    events = import_events(world, "import_create")
    assert events.count() == 3
    assert {e.actor_role for e in events} == {"system"}
    assert events.filter(entity_id=str(ada.id)).first().after["email"] == "ada@hr.test"


def test_rerunning_the_same_file_changes_nothing_and_writes_nothing(world, tmp_path,
                                                                     roundtrips):
    path = write_csv(tmp_path / "users.csv", HEADER, people(30))
    assert run("users", path, world.school).code == 0
    before = snapshot(User, world.school.id, drop=())
    with roundtrips() as commands:
        outcome = run("users", path, world.school, batch_size=10)
    assert outcome.code == 0
    assert (outcome.count("unchanged"), outcome.count("created"), outcome.count("updated")) \
        == (30, 0, 0)
    assert not [c for c in commands if c in ("insert", "update", "delete", "bulk_write",
                                             "insert_many", "insert_one", "update_one")]
    assert snapshot(User, world.school.id, drop=()) == before
    assert import_events(world, "import_update").count() == 0


def test_changed_rows_are_updated_by_external_id_then_email_and_audited(world, tmp_path):
    path = write_csv(tmp_path / "users.csv", HEADER, [
        {"email": "old@hr.test", "name": "Old Name", "role": "staff", "external_id": "E1",
         "department": "Science"},
        {"email": world.staff.email, "name": world.staff.name, "role": "staff",
         "department": "Mathematics"}])
    assert run("users", path, world.school).code == 0
    changed = write_csv(tmp_path / "changed.csv", HEADER, [
        {"email": "new@hr.test", "name": "New Name", "role": "staff", "external_id": "E1"},
        {"email": world.staff.email, "name": "Renamed", "role": "staff",
         "department": "Mathematics"}])
    outcome = run("users", changed, world.school)
    assert (outcome.code, outcome.count("updated")) == (0, 2)
    moved = imported(world, "new@hr.test")
    assert (moved.name, moved.external_id, moved.department) == ("New Name", "E1", None)
    assert not User.objects(email="old@hr.test").count()
    assert imported(world, world.staff.email).name == "Renamed"
    event = import_events(world, "import_update").filter(entity_id=str(moved.id)).get()
    assert event.before == {"email": "old@hr.test", "name": "Old Name",
                            "department": "Science"}
    assert event.after == {"email": "new@hr.test", "name": "New Name", "department": None}
    assert event.actor_role == "system"


def test_each_bad_row_is_rejected_with_its_line_and_reason_and_the_rest_imported(
        world, tmp_path):
    rows = [
        {"email": "fine@hr.test", "name": "Fine", "role": "staff", "external_id": "F1"},
        {"email": "not-an-email", "name": "Bad Email", "role": "staff"},
        {"email": "role@hr.test", "name": "Bad Role", "role": "janitor"},
        {"email": world.other_staff.email, "name": "Elsewhere", "role": "staff"},
        {"email": world.staff2.email, "name": "Clash", "role": "staff", "external_id": "F1"},
        {"email": "fine@hr.test", "name": "Twice", "role": "staff"},
        {"email": "noname@hr.test", "name": "", "role": "staff"},
    ]
    path = write_csv(tmp_path / "users.csv", HEADER, rows)
    outcome = run("users", path, world.school)
    assert outcome.code == 1
    assert (outcome.count("created"), outcome.count("rejected")) == (1, 6)
    reasons = outcome.reasons()
    assert "bad email" in reasons[3]
    assert "bad role 'janitor'" in reasons[4]
    assert "used outside this school" in reasons[5]
    assert "duplicate key in file" in reasons[6] and "line 2" in reasons[6]
    assert "duplicate key in file" in reasons[7] and "email" in reasons[7]
    assert "missing value for name" in reasons[8]
    report_row = next(r for r in outcome.report if r["line"] == "4")
    assert (report_row["email"], report_row["role"], report_row["key"]) == (
        "role@hr.test", "janitor", "role@hr.test")
    assert imported(world, "fine@hr.test").name == "Fine"
    assert User.objects(email=world.other_staff.email).get().name == world.other_staff.name


def test_an_email_of_another_user_or_external_id_is_rejected(world, tmp_path):
    write = write_csv(tmp_path / "first.csv", HEADER, [
        {"email": "a@hr.test", "name": "A", "role": "staff", "external_id": "A1"},
        {"email": "b@hr.test", "name": "B", "role": "staff", "external_id": "B1"}])
    assert run("users", write, world.school).code == 0
    clash = write_csv(tmp_path / "clash.csv", HEADER, [
        {"email": "b@hr.test", "name": "A", "role": "staff", "external_id": "A1"},
        {"email": "a@hr.test", "name": "A", "role": "staff", "external_id": "Z9"}])
    outcome = run("users", clash, world.school)
    assert outcome.code == 1
    assert outcome.reasons() == {2: "email b@hr.test belongs to another user",
                                 3: "email a@hr.test belongs to the user with external_id A1"}
    assert imported(world, "a@hr.test").external_id == "A1"


def test_dry_run_reports_but_writes_nothing_not_even_audit(world, tmp_path):
    path = write_csv(tmp_path / "users.csv", HEADER, people(5) + [
        {"email": world.staff.email, "name": "Renamed", "role": "staff"},
        {"email": "bad", "name": "X", "role": "staff"}])
    users_before = snapshot(User, world.school.id, drop=())
    events_before = AuditEvent.objects.count()
    outcome = run("users", path, world.school, dry_run=True)
    assert outcome.code == 1
    assert (outcome.count("created"), outcome.count("updated"), outcome.count("rejected")) \
        == (5, 1, 1)
    assert "dry run" in outcome.output
    assert snapshot(User, world.school.id, drop=()) == users_before
    assert AuditEvent.objects.count() == events_before


def test_json_lines_are_read_like_csv(world, tmp_path):
    path = write_json_lines(tmp_path / "users.jsonl", [
        {"email": "j@hr.test", "name": "Jay", "role": "staff", "department": None},
        {"email": "k@hr.test", "name": "Kay", "role": "guest"}])
    outcome = run("users", path, world.school)
    assert outcome.code == 1
    assert imported(world, "j@hr.test").name == "Jay"
    assert outcome.reasons() == {2: "bad role 'guest': one of school_admin, staff, student"}


def test_export_then_import_changes_nothing(world, tmp_path):
    assert run("users", write_csv(tmp_path / "in.csv", HEADER, people(12)), world.school) \
        .code == 0
    rows = export("users", world.school, tmp_path / "out.csv")
    assert {r["email"] for r in rows} >= {"p1@hr.test", world.staff.email, world.admin.email}
    assert world.other_staff.email not in {r["email"] for r in rows}
    outcome = run("users", tmp_path / "out.csv", world.school)
    assert outcome.code == 0
    assert outcome.count("unchanged") == len(rows)


def test_a_batch_costs_the_same_round_trips_whatever_its_size(world, tmp_path, roundtrips):
    counts = []
    for size, prefix in ((5, "s"), (60, "l")):
        path = write_csv(tmp_path / f"{prefix}.csv", HEADER, people(size, prefix))
        with roundtrips() as commands:
            assert run("users", path, world.school, batch_size=1000).code == 0
        counts.append(len(commands))
    assert counts[0] == counts[1] <= 5


@pytest.mark.parametrize("step", ["_bulk_write", "audit_record_many"])
def test_a_run_killed_midway_then_rerun_ends_like_one_clean_run(world, tmp_path, monkeypatch,
                                                              step):
    rows = people(25)
    emails = [row["email"] for row in rows]
    path = write_csv(tmp_path / "users.csv", HEADER, rows)
    assert run("users", path, world.school, batch_size=10).code == 0
    clean = snapshot(User, world.school.id)
    User.objects(email__in=emails).delete()

    target = import_users.audit if step == "audit_record_many" else import_users
    name = "record_many" if step == "audit_record_many" else step
    with monkeypatch.context() as patch:
        crash_on_call(patch, target, name, call_number=2)
        with pytest.raises(KeyboardInterrupt):
            run("users", path, world.school, batch_size=10)
    assert 0 < User.objects(email__in=emails).count() < 25
    outcome = run("users", path, world.school, batch_size=10)
    assert outcome.code == 0
    assert snapshot(User, world.school.id) == clean


def test_users_another_writer_created_meanwhile_are_read_again_not_rejected(
        world, tmp_path, monkeypatch):
    """The other run of the same file wins the inserts between this batch's read and write."""
    rows = people(6)
    path = write_csv(tmp_path / "users.csv", HEADER, rows)
    other = write_csv(tmp_path / "other.csv", HEADER, rows[:4])
    winner = []

    def other_run_first(*args):
        if not winner:
            winner.append("running")
            winner[0] = run("users", other, world.school)

    replace_function(monkeypatch, import_users, "_bulk_write", other_run_first)
    outcome = run("users", path, world.school)
    assert winner[0].count("created") == 4
    assert (outcome.code, outcome.count("unchanged"), outcome.count("created")) == (0, 4, 2)
    assert import_events(world, "import_create").count() == 6


@pytest.mark.integration
def test_two_runs_of_one_file_at_once_both_end_well(world, tmp_path):
    rows = people(300)
    paths = [write_csv(tmp_path / f"users{i}.csv", HEADER, rows) for i in range(2)]
    outcomes = parallel(2, lambda i: run("users", paths[i], world.school, batch_size=50))
    assert [outcome.code for outcome in outcomes] == [0, 0]
    assert sum(outcome.count("created") for outcome in outcomes) == 300
    assert User.objects(email__in=[row["email"] for row in rows]).count() == 300
    assert import_events(world, "import_create").count() == 300
