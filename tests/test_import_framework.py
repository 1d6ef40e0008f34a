"""The `rota import` framework: input checks, exit codes, batching, progress, report, CLI."""

from __future__ import annotations

import io
from contextlib import contextmanager

import pytest
from click.testing import CliRunner
from pymongo.errors import AutoReconnect, ServerSelectionTimeoutError

from documents.accounts import User
from scripts import cli
from scripts.importer import EXIT_UNUSABLE, Progress, batches_of, run_export, run_import
from service import import_users
from service.imports import Row
from tests.test_import_support import replace_function, run, write_csv, write_json_lines

USER_HEADER = ("email", "name", "role")


def unusable(capsys, kind, path, school_code) -> str:
    """Run an import that must be refused as a whole; the error it printed."""
    before = User.objects.count()
    assert run_import(kind, path, school_code, out=io.StringIO()) == EXIT_UNUSABLE
    assert User.objects.count() == before
    return capsys.readouterr().err


def test_unknown_school_kind_file_and_file_type_are_unusable(world, tmp_path, capsys):
    good = write_csv(tmp_path / "u.csv", USER_HEADER, [["a@hr.test", "A", "staff"]])
    assert "no school with code 'NOPE'" in unusable(capsys, "users", good, "NOPE")
    assert "unknown kind 'pets'" in unusable(capsys, "pets", good, world.school.code)
    assert "no such file" in unusable(capsys, "users", tmp_path / "missing.csv",
                                      world.school.code)
    xlsx = tmp_path / "u.xlsx"
    xlsx.write_text("email,name,role\n")
    assert "unknown file type '.xlsx'" in unusable(capsys, "users", xlsx, world.school.code)


def test_a_wrong_header_names_the_missing_and_unknown_columns(world, tmp_path, capsys):
    path = write_csv(tmp_path / "u.csv", ("email", "full_name", "role", "dept"),
                     [["a@hr.test", "A", "staff", "X"]])
    error = unusable(capsys, "users", path, world.school.code)
    assert "missing column(s): name" in error
    assert "unknown column(s): dept, full_name" in error
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert "first line must name the columns" in unusable(capsys, "users", empty,
                                                          world.school.code)


def test_json_lines_with_an_unknown_key_or_no_line_with_a_column_are_unusable(
        world, tmp_path, capsys):
    path = write_json_lines(tmp_path / "u.jsonl", [
        {"email": "a@hr.test", "name": "A", "role": "staff", "shoe_size": 9}])
    assert "unknown column(s): shoe_size" in unusable(capsys, "users", path, world.school.code)
    path = write_json_lines(tmp_path / "v.jsonl", [{"email": "a@hr.test", "name": "A"}])
    assert "missing column(s): role" in unusable(capsys, "users", path, world.school.code)


def test_malformed_lines_are_rejected_rows_not_unusable_input(world, tmp_path):
    path = tmp_path / "u.jsonl"
    path.write_text('{"email": "a@hr.test", "name": "A", "role": "staff"}\n'
                    "{not json\n"
                    '["a list"]\n'
                    '{"email": "b@hr.test", "name": {"first": "B"}, "role": "staff"}\n')
    outcome = run("users", path, world.school)
    assert outcome.code == 1
    reasons = outcome.reasons()
    assert reasons[2].startswith("not valid JSON")
    assert reasons[3] == "not a JSON object"
    assert reasons[4] == "name must be a plain value"
    csv_path = tmp_path / "u.csv"
    csv_path.write_text("email,name,role\nc@hr.test,C,staff,extra\n")
    assert run("users", csv_path, world.school).reasons() == {2: "4 cells but 3 columns"}


def test_a_switched_off_module_makes_its_kinds_unusable(world, tmp_path, capsys):
    world.set_modules(world.school, timetable=False)
    path = write_csv(tmp_path / "p.csv", ("period_number", "period_name", "start_time",
                                          "end_time"), [[1, "First", "08:00", "08:45"]])
    error = unusable(capsys, "periods", path, world.school.code)
    assert "timetable module is switched off" in error


def test_line_numbers_count_the_header_blank_lines_and_multiline_cells(world, tmp_path):
    path = tmp_path / "u.csv"
    path.write_text('email,name,role\n\n"x@hr.test","Multi\nLine",staff\nbad,B,staff\n')
    outcome = run("users", path, world.school)
    assert outcome.reasons() == {5: "bad email 'bad'"}
    assert User.objects.get(email="x@hr.test").name == "Multi\nLine"


def test_batches_keep_groups_together_and_respect_the_size():
    rows = [Row(line, {"g": group}) for line, group in
            enumerate(["a", "b", "a", "c", "c", "d", "a"], start=2)]
    batches = list(batches_of(rows, ("g",), size=3))
    assert [[r.values["g"] for r in batch] for batch in batches] == [
        ["a", "a", "a"], ["b", "c", "c"], ["d"]]
    plain = list(batches_of(rows, (), size=3))
    assert [len(b) for b in plain] == [3, 3, 1]


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_a_progress_bar_and_a_log_gets_plain_lines(monkeypatch):
    terminal = Terminal()
    bar = Progress(200, terminal)
    bar.advance(100)
    bar.close()
    assert "\r[###############---------------] 100/200 rows (50%)" in terminal.getvalue()
    monkeypatch.setattr("scripts.importer.PROGRESS_INTERVAL_SECONDS", 0)
    log = io.StringIO()
    lines = Progress(200, log)
    lines.advance(100)
    lines.advance(100)
    lines.close()
    assert log.getvalue().startswith("progress: 100/200 rows (50%)")
    assert "\r" not in log.getvalue()


def test_summary_has_counts_and_rate_and_the_default_report_sits_next_to_the_file(
        world, tmp_path):
    path = write_csv(tmp_path / "u.csv", USER_HEADER, [["a@hr.test", "A", "staff"],
                                                       ["bad", "B", "staff"]])
    out = io.StringIO()
    assert run_import("users", path, world.school.code, out=out) == 1
    summary = out.getvalue()
    assert "created 1 / updated 0 / unchanged 0 / rejected 1" in summary
    assert "rows/s" in summary
    report = tmp_path / "u.csv.report.csv"
    assert report.read_text().splitlines() == [
        "line,key,reason,email,name,role,external_id,department",
        "3,bad,bad email 'bad',bad,B,staff,,"]


@pytest.fixture
def cli_database(monkeypatch, database_uri):
    """The CLI's `database()` and `connect()` pointed at the test app's open connection."""
    @contextmanager
    def database(*args, **kwargs):
        yield database_uri

    monkeypatch.setattr(cli, "database", database)
    monkeypatch.setattr(cli, "connect", lambda uri: None)


def test_cli_exit_codes(world, tmp_path, cli_database):
    good = write_csv(tmp_path / "good.csv", USER_HEADER, [["g@hr.test", "G", "staff"]])
    mixed = write_csv(tmp_path / "mixed.csv", USER_HEADER, [["m@hr.test", "M", "staff"],
                                                            ["bad", "B", "staff"]])
    runner = CliRunner()
    ok = runner.invoke(cli.main, ["import", "users", str(good), "--school", world.school.code])
    assert ok.exit_code == 0, ok.output
    assert "created 1" in ok.output
    rejected = runner.invoke(cli.main, ["import", "users", str(mixed), "--school",
                                        world.school.code, "--report", str(tmp_path / "r.csv")])
    assert rejected.exit_code == 1
    assert "bad email" in (tmp_path / "r.csv").read_text()
    unknown = runner.invoke(cli.main, ["import", "users", str(good), "--school", "NOPE"])
    assert unknown.exit_code == 2
    exported = runner.invoke(cli.main, ["export", "users", "--school", world.school.code])
    assert exported.exit_code == 0
    assert exported.output.splitlines()[0] == "email,name,role,external_id,department"
    assert "g@hr.test" in exported.output


@pytest.mark.parametrize("failure, reason", [
    (AutoReconnect("connection reset"), "connection reset"),
    # What a driver raised when it could not read a reply of the server, under two parallel
    # imports of one file: still one line and exit code 3, never a traceback.
    (KeyError("nModified"), "KeyError: 'nModified'"),
])
def test_a_failure_midway_stops_with_exit_code_3_and_a_rerun_completes(
        world, tmp_path, monkeypatch, capsys, failure, reason):
    path = write_csv(tmp_path / "u.csv", USER_HEADER,
                     [[f"u{n}@hr.test", f"U{n}", "staff"] for n in range(6)])
    calls = []

    def fail_second_batch(ctx, rows, dry_run, known):
        calls.append(rows)
        if len(calls) == 2:
            raise failure

    replace_function(monkeypatch, import_users, "import_users", fail_second_batch)
    assert run_import("users", path, world.school.code, batch_size=2,
                      out=io.StringIO()) == 3
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert f"stopped at line 4 ({reason})" in error
    assert "Re-run the same file" in error
    assert User.objects(email__in=[f"u{n}@hr.test" for n in range(6)]).count() == 2
    monkeypatch.undo()
    outcome = run("users", path, world.school, batch_size=2)
    assert (outcome.code, outcome.count("unchanged"), outcome.count("created")) == (0, 2, 4)


def test_a_database_failing_before_the_first_batch_is_exit_code_3_and_one_line(
        world, tmp_path, monkeypatch, capsys):
    path = write_csv(tmp_path / "u.csv", USER_HEADER, [["a@hr.test", "A", "staff"]])

    def unreachable(*args):
        raise ServerSelectionTimeoutError("db:27017: [Errno 111] Connection refused, "
                                          "Timeout: 2.0s, Topology Description: <...>")

    monkeypatch.setattr("scripts.importer._school", unreachable)
    assert run_import("users", path, "ANY", out=io.StringIO()) == 3
    assert run_export("users", "ANY", tmp_path / "out.csv") == 3
    errors = capsys.readouterr().err.splitlines()
    assert errors == [
        "error: the database is unreachable or failed (db:27017: [Errno 111] Connection "
        "refused); nothing was imported",
        "error: the database is unreachable or failed (db:27017: [Errno 111] Connection "
        "refused); the export is incomplete"]


def test_an_unreachable_database_is_exit_code_3_and_one_line_from_the_cli(
        tmp_path, monkeypatch):
    monkeypatch.setenv("MONGODB_URI", "mongodb://hr:secret@127.0.0.1:1/rota")
    path = write_csv(tmp_path / "u.csv", USER_HEADER, [["a@hr.test", "A", "staff"]])
    result = CliRunner().invoke(cli.main, ["import", "users", str(path), "--school", "S"])
    assert result.exit_code == 3
    assert result.output.startswith("Error: No database: 127.0.0.1:1 does not answer (")
    assert result.output.count("\n") == 1
    assert "secret" not in result.output


def test_the_registry_names_each_kind_with_the_functions_of_its_module():
    from service import import_users
    from service.imports import registry

    kinds = registry()
    assert sorted(kinds) == ["assignments", "course-groups", "group-memberships", "periods",
                             "project-teams", "students", "users"]
    assert kinds["users"].importer is import_users.import_users
    assert kinds["users"].preload is import_users.preload_users
    for kind in kinds.values():
        assert callable(kind.importer) and callable(kind.exporter), kind.name
        assert kind.preload is None or callable(kind.preload), kind.name
