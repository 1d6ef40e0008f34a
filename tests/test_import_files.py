"""Reading import files, in `rota import` and over HTTP alike: encodings, delimiters, and
optional columns left out of a file leaving their fields as they are."""

from __future__ import annotations

import io

import pytest

from documents.accounts import User
from documents.imports import ImportJob
from scripts.importer import EXIT_OK, EXIT_UNUSABLE, run_import
from service import import_runner
from service.context import SYSTEM
from service.import_files import UnusableInput, decode, parse, sniff_delimiter
from service.imports import registry
from service.tenancy import school_context
from service.weekly_groups import WeeklyGroups
from tests.test_import_support import run, write_csv

STUDENT_HEADER = ("program", "customer_id", "name", "ability_level", "birth_date", "email")
CP1252_TEXT = "email;name;role;department\r\nzoe@hr.test;Zoë Müller – Señora;staff;Café\r\n"


@pytest.fixture
def swim(world):
    return WeeklyGroups(school_context(SYSTEM, world.school.id)).create_program(
        "Summer Swim", max_weeks=4)


def users_by_email(world) -> dict[str, User]:
    return {u.email: u for u in User.objects(school_id=world.school.id)}


def test_a_cp1252_file_with_semicolons_is_read_as_the_spreadsheet_wrote_it(world, tmp_path):
    path = tmp_path / "users.csv"
    path.write_bytes(CP1252_TEXT.encode("cp1252"))
    outcome = run("users", path, world.school)
    assert outcome.code == EXIT_OK, outcome.report
    user = users_by_email(world)["zoe@hr.test"]
    assert (user.name, user.department) == ("Zoë Müller – Señora", "Café")


def test_a_latin1_file_and_a_utf8_file_with_a_bom_are_read(world, tmp_path):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("email,name,role\nrene@hr.test,René Ångström,staff\n".encode("latin-1"))
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffemail,name,role\nnoe@hr.test,Noé,staff\n".encode())
    assert run("users", latin, world.school).code == EXIT_OK
    assert run("users", bom, world.school).code == EXIT_OK
    people = users_by_email(world)
    assert (people["rene@hr.test"].name, people["noe@hr.test"].name) == ("René Ångström", "Noé")


def test_a_tab_separated_file_is_read(world, tmp_path):
    path = tmp_path / "users.csv"
    path.write_text("email\tname\trole\ntab@hr.test\tTab, Person\tstaff\n")
    assert run("users", path, world.school).code == EXIT_OK
    assert users_by_email(world)["tab@hr.test"].name == "Tab, Person"


def test_the_delimiter_is_the_one_the_header_uses_most():
    assert sniff_delimiter("email,name,role") == ","
    assert sniff_delimiter("email;name;role") == ";"
    assert sniff_delimiter("email\tname\trole") == "\t"


def test_an_undecodable_file_is_unusable_with_a_message_not_a_traceback(world, tmp_path,
                                                                        capsys):
    path = tmp_path / "users.csv"
    path.write_bytes("email,name,role\na@hr.test,Ä,staff\n".encode("utf-16"))
    assert run_import("users", path, world.school.code, out=io.StringIO()) == EXIT_UNUSABLE
    error = capsys.readouterr().err
    assert "not a text file" in error and "save it as CSV UTF-8" in error
    assert "Traceback" not in error
    with pytest.raises(UnusableInput, match="neither UTF-8 nor Windows-1252"):
        decode(bytes(range(0x80, 0x100)) * 4 + "中文字符".encode("gb18030") * 50, "x.csv")


def test_a_students_file_without_the_optional_columns_keeps_them(world, swim, tmp_path):
    full = write_csv(tmp_path / "full.csv", STUDENT_HEADER, [
        ("Summer Swim", "C1", "Mia", "Beginner", "2015-04-12", "mia@parents.test")])
    assert run("students", full, world.school).code == EXIT_OK
    renamed = write_csv(tmp_path / "names.csv", ("program", "customer_id", "name"),
                        [("Summer Swim", "C1", "Mia Jones")])
    outcome = run("students", renamed, world.school)
    assert outcome.code == EXIT_OK and outcome.count("updated") == 1
    from documents.weekly_groups import ProgramStudent

    stored = ProgramStudent.objects.for_school(world.school.id).get(customer_id="C1")
    assert (stored.name, stored.email, stored.ability_level) == (
        "Mia Jones", "mia@parents.test", "Beginner")
    assert stored.birth_date is not None
    cleared = write_csv(tmp_path / "cleared.csv", STUDENT_HEADER,
                        [("Summer Swim", "C1", "Mia Jones", "Beginner", "2015-04-12", "")])
    assert run("students", cleared, world.school).count("updated") == 1
    assert ProgramStudent.objects.for_school(world.school.id).get(
        customer_id="C1").email is None  # an empty cell of a column the file has clears it


def test_a_users_file_without_department_keeps_departments(world, tmp_path):
    first = write_csv(tmp_path / "a.csv", ("email", "name", "role", "department"),
                      [("dep@hr.test", "Dee", "staff", "Science")])
    assert run("users", first, world.school).code == EXIT_OK
    second = write_csv(tmp_path / "b.csv", ("email", "name", "role"),
                       [("dep@hr.test", "Dee Dee", "staff")])
    assert run("users", second, world.school).count("updated") == 1
    user = users_by_email(world)["dep@hr.test"]
    assert (user.name, user.department) == ("Dee Dee", "Science")


def test_json_lines_leave_absent_keys_and_clear_null_ones():
    parsed = parse(b'{"email": "a@b.test", "name": "A", "role": "staff", "department": null}\n'
                   b'{"email": "c@b.test", "name": "C", "role": "staff"}\n',
                   "u.jsonl", registry()["users"])
    first, second = parsed.rows
    assert first.gives("department") and "department" not in first.values
    assert not second.gives("department")


# ---------------------------------------------------------------------------- over HTTP

def upload(client, world, name: str, data: bytes, kind: str = "users"):
    return client.post(world.url("/imports"), headers=world.headers("admin"),
                       data={"kind": kind, "file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def test_http_reads_cp1252_and_refuses_an_undecodable_file_with_422(world, client):
    accepted = upload(client, world, "users.csv", CP1252_TEXT.encode("cp1252"))
    assert accepted.status_code == 202, accepted.json
    assert accepted.json["encoding"] == "cp1252"
    assert import_runner.run_next_job()
    assert users_by_email(world)["zoe@hr.test"].department == "Café"
    refused = upload(client, world, "users.csv", "email,name,role\n".encode("utf-16"))
    assert refused.status_code == 422, refused.json
    assert refused.json["error"]["code"] == "unusable_file"
    assert "save it as CSV UTF-8" in refused.json["error"]["details"]["file"][0]
    assert ImportJob.objects(school_id=world.school.id).count() == 1
