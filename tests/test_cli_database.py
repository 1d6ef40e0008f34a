"""Which database a `rota` command uses: never a second embedded server over var/db."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from scripts import cli, embedded


@pytest.fixture
def var(tmp_path, monkeypatch):
    """The CLI's var/ in a temporary directory, no MONGODB_URI, and no server may start."""
    monkeypatch.delenv("MONGODB_URI", raising=False)
    monkeypatch.setattr(cli, "var_dir", lambda: tmp_path)

    def start(*args, **kwargs):
        raise AssertionError("a second embedded server was started")

    monkeypatch.setattr(embedded, "start", start)
    (tmp_path / "db").mkdir()
    return tmp_path


def own_data_dir(var, pid: int, port: int) -> None:
    (var / "db" / embedded.LOCK_FILE).write_text(f"{pid} {port}\n")


def test_a_server_that_owns_var_db_but_does_not_answer_is_exit_3_not_a_second_server(var):
    port = embedded.free_port()
    own_data_dir(var, os.getpid(), port)  # a live process, and nothing answers on the port
    result = CliRunner().invoke(cli.main, ["export", "users", "--school", "S",
                                           "--db-port", str(embedded.free_port())])
    assert result.exit_code == 3
    assert result.output == (f"Error: No database: {var / 'db'} belongs to the embedded server "
                             f"with pid {os.getpid()}, which does not answer on port {port}; "
                             "wait for it or stop it\n")


def test_commands_connect_to_the_server_owning_var_db_whatever_port_they_are_given(
        var, database_server):
    if database_server is None:
        pytest.skip("needs --backend=embedded")
    own_data_dir(var, database_server.process.pid, database_server.port)
    with cli.database(embedded.free_port()) as uri:
        assert uri == f"mongodb://127.0.0.1:{database_server.port}/rota"


def test_import_and_export_use_the_server_on_db_port(var, database_server, tmp_path):
    if database_server is None:
        pytest.skip("needs --backend=embedded")
    port = str(database_server.port)
    exported = CliRunner().invoke(cli.main, ["export", "users", "--school", "NOPE",
                                             "--db-port", port])
    assert exported.exit_code == 2  # connected, and found no such school
    path = tmp_path / "u.csv"
    path.write_text("email,name,role\na@hr.test,A,staff\n")
    imported = CliRunner().invoke(cli.main, ["import", "users", str(path), "--school", "NOPE",
                                             "--db-port", port])
    assert imported.exit_code == 2
