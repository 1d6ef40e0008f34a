"""The `rota` command: serve, the embedded database, bootstrap users, demo data, imports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import click

from scripts import embedded

DEFAULT_DB_PORT = 27117
DB_PORT_HELP = "port of the embedded SecantusDB (ignored with MONGODB_URI)"


def var_dir() -> Path:
    from api.config import var_dir as configured

    return configured()


def warn(message: str) -> None:
    click.secho(message, fg="yellow", err=True)


class BadConfiguration(click.ClickException):
    """A wrong ROTA_* variable: one line naming it and exit code 2, before anything starts."""

    exit_code = 2


GUNICORN = [sys.executable, "-m", "gunicorn", "--config", "python:scripts.gunicorn_config"]


class NoDatabase(click.ClickException):
    """No database to work on: one line and exit code 3, the code of every command for it."""

    exit_code = 3

    def __init__(self, message: str):
        super().__init__(f"No database: {message}")


@contextmanager
def database(db_port: int = DEFAULT_DB_PORT):
    """The database URI for a command: MONGODB_URI when set, else the embedded SecantusDB:
    the one answering on `db_port`, or the one owning var/db on the port its lock file names,
    or one started for the command's span. Never a second server over a directory in use."""
    uri = os.environ.get("MONGODB_URI")
    if uri:
        yield uri
        return
    running = _running_embedded(db_port, var_dir() / "db")
    if running:
        yield running
        return
    try:
        server = embedded.start(var_dir() / "db", port=db_port, log=warn)
    except embedded.EmbeddedUnavailable as exc:
        raise NoDatabase(str(exc)) from None
    try:
        yield server.uri + "rota"
    finally:
        server.stop()


def _running_embedded(db_port: int, data_dir: Path) -> str | None:
    """The URI of the embedded server already running on `db_port` or over `data_dir`."""
    if _answers(f"mongodb://127.0.0.1:{db_port}/rota"):
        return f"mongodb://127.0.0.1:{db_port}/rota"
    owner = embedded.owner_of(data_dir)
    if not owner:
        return None
    port = _lock_port(data_dir)
    if port and _answers(f"mongodb://127.0.0.1:{port}/rota"):
        return f"mongodb://127.0.0.1:{port}/rota"
    raise NoDatabase(f"{data_dir} belongs to the embedded server with pid {owner}, which does "
                     f"not answer on port {port or db_port}; wait for it or stop it")


def _lock_port(data_dir: Path) -> int | None:
    """The port in the lock file of `scripts/embedded.py` ("pid port")."""
    try:
        return int((data_dir / embedded.LOCK_FILE).read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _answers(uri: str) -> bool:
    import pymongo

    try:
        client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=300)
        client.admin.command("ping")
        client.close()
        return True
    except pymongo.errors.PyMongoError:
        return False


def connect(uri: str) -> None:
    """Connect and create the indexes; NoDatabase (exit code 3) when the database fails."""
    from pymongo.errors import PyMongoError

    from documents import all_documents
    from documents.connection import connect as connect_db
    from documents.connection import ensure_indexes, failure_reason

    try:
        connect_db(uri)
        ensure_indexes(all_documents())
    except PyMongoError as exc:
        host = urlparse(uri).netloc.rpartition("@")[2]  # never print a password
        raise NoDatabase(f"{host} does not answer ({failure_reason(exc)})") from None


@click.group()
def main():
    """Rota: timetables, weekly groups, tracks and team rosters for multi-school portals.

    The database is MONGODB_URI when set, else the embedded SecantusDB (var/db). Every command
    exits with code 3 and one line when the database is unreachable.
    """


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--workers", default=4, show_default=True, help="gunicorn worker processes")
@click.option("--db-port", default=DEFAULT_DB_PORT, show_default=True, help=DB_PORT_HELP)
def serve(host, port, workers, db_port):
    """Serve the API with gunicorn; starts the embedded database unless MONGODB_URI is set.
    Logs are JSON lines on standard error; /metrics adds up every worker."""
    from api.config import ConfigError, jwt_secret, rota_env, validate

    try:
        validate()
        jwt_secret(rota_env())
    except ConfigError as exc:
        raise BadConfiguration(str(exc)) from None
    with database(db_port) as uri:
        connect(uri)
        _seed_demo_when_empty()
        env = {**os.environ, "MONGODB_URI": uri, "ROTA_CREATE_INDEXES": "0",
               # emptied by gunicorn's on_starting hook: each run counts from zero
               "PROMETHEUS_MULTIPROC_DIR": str(var_dir() / "metrics")}
        cmd = [*GUNICORN, "--bind", f"{host}:{port}", "--workers", str(workers),
               "--timeout", "60", "--graceful-timeout", "10", "api:create_app()"]
        click.echo(f"Rota API on http://{host}:{port}/api/v1 (docs: /api/v1/docs); "
                   f"database {uri}. Ctrl-C stops it.")
        _run_until_stopped(cmd, env)


def _seed_demo_when_empty() -> None:
    """A new database gets the demo data once, here, before any worker starts."""
    from documents.accounts import Company
    from scripts.seed_demo import PASSWORD, seed

    if Company.objects.first() is not None:
        return
    logins = seed(log=click.echo)
    click.echo(f"Demo logins (password {PASSWORD}): " + ", ".join(email for _, email in logins))


def _run_until_stopped(cmd, env) -> None:
    """Run gunicorn until it exits or this process gets SIGINT or SIGTERM; then stop it
    gracefully, so the caller's `finally` stops the embedded database after it."""
    process = subprocess.Popen(cmd, env=env)

    def forward(signum, _frame):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if process.returncode not in (0, -signal.SIGTERM, None):
        raise SystemExit(process.returncode)


@main.command()
@click.option("--db-port", default=DEFAULT_DB_PORT, show_default=True)
def db(db_port):
    """Run the embedded SecantusDB alone (data under var/db) until Ctrl-C."""
    try:
        server = embedded.start(var_dir() / "db", port=db_port, log=warn)
    except embedded.EmbeddedUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    connect(server.uri + "rota")
    click.echo(f"SecantusDB on {server.uri}rota. Ctrl-C stops it.")
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@main.command("create-user")
@click.option("--role", type=click.Choice(["company_admin", "school_admin", "staff", "student"]),
              required=True)
@click.option("--email", required=True)
@click.option("--password", required=True, help="at least 8 characters")
@click.option("--name", default=None, help="display name (defaults to the email's local part)")
@click.option("--company", "company_name", help="company name (company_admin; created if new)")
@click.option("--school", "school_code", help="school code (other roles)")
@click.option("--department", default=None)
def create_user(role, email, password, name, company_name, school_code, department):
    """Create a user. The first company admin bootstraps everything else."""
    from service import errors
    from service.schools import create_company_admin, create_school_user

    if len(password) < 8:
        raise click.BadParameter("must be at least 8 characters", param_hint="--password")
    name = name or email.split("@")[0]
    with database() as uri:
        connect(uri)
        try:
            if role == "company_admin":
                if not company_name:
                    raise click.UsageError("--company is required for a company_admin")
                user = create_company_admin(company_name, email, password, name)
            else:
                if not school_code:
                    raise click.UsageError("--school CODE is required for this role")
                user = create_school_user(school_code, email, password, name, role, department)
        except errors.DomainError as exc:
            raise click.ClickException(exc.message) from None
    click.echo(f"Created {role} {user.email} (id {user.id}).")


@main.command("seed-demo")
def seed_demo():
    """Create a demo company with two schools, people and sample data; print the logins."""
    from scripts.seed_demo import seed

    with database() as uri:
        connect(uri)
        logins = seed(log=click.echo)
    click.echo("\nLogins (password for all: demo-password):")
    for role, email in logins:
        click.echo(f"  {role:<14} {email}")


@main.command("import")
@click.argument("kind")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--school", "school_code", required=True, help="code of the school to import into")
@click.option("--dry-run", is_flag=True, help="check and report every row, write nothing")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="where to write the rejected rows (default: FILE.report.csv)")
@click.option("--batch-size", default=1000, show_default=True)
@click.option("--db-port", default=DEFAULT_DB_PORT, show_default=True, help=DB_PORT_HELP)
def import_command(kind, file, school_code, dry_run, report_path, batch_size, db_port):
    """Import KIND rows (users, periods, assignments, students, group-memberships) from FILE
    (CSV with a header row, or .jsonl). Exit code: 0 all rows
    taken, 1 some rejected (see the report), 2 unusable input, 3 the database is unreachable
    or failed midway (re-run the same file). See docs/IMPORT.md."""
    from scripts.importer import run_import

    with database(db_port) as uri:
        connect(uri)
        code = run_import(kind, file, school_code, dry_run=dry_run, report_path=report_path,
                          batch_size=batch_size)
    sys.exit(code)


@main.command("export")
@click.argument("kind")
@click.option("--school", "school_code", required=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="file to write (default: standard output)")
@click.option("--bom", is_flag=True, help="start with a UTF-8 byte order mark (for Excel)")
@click.option("--db-port", default=DEFAULT_DB_PORT, show_default=True, help=DB_PORT_HELP)
def export_command(kind, school_code, output, bom, db_port):
    """Export KIND as CSV that `rota import` reads back to no change. Cells starting with
    =, +, -, @ get a leading ' (spreadsheets must not run them), which the import removes.
    Exit code: 0 written, 2 unknown kind or school, 3 the database is unreachable or failed."""
    from scripts.importer import run_export

    with database(db_port) as uri:
        connect(uri)
        code = run_export(kind, school_code, output, bom)
    sys.exit(code)


@main.command("import-worker")
@click.option("--once", is_flag=True, help="run the jobs due now, then exit (for cron)")
@click.option("--db-port", default=DEFAULT_DB_PORT, show_default=True, help=DB_PORT_HELP)
def import_worker(once, db_port):
    """Run the import jobs queued over HTTP (POST /schools/{id}/imports), resuming those a
    stopped worker left. For deployments that run them apart from the web workers (set
    ROTA_RUNNERS=0 there); several workers may run at once: each job is claimed by one."""
    from service import import_runner

    _run_runner("import-worker", import_runner.run_next_job, import_runner.IDLE_SECONDS,
                once, db_port)


@main.command("deliver-webhooks")
@click.option("--once", is_flag=True, help="send the deliveries due now, then exit (for cron)")
@click.option("--db-port", default=DEFAULT_DB_PORT, show_default=True, help=DB_PORT_HELP)
def deliver_webhooks(once, db_port):
    """Send the webhook deliveries waiting in the outbox, with their retries. For deployments
    that run them apart from the web workers (set ROTA_RUNNERS=0 there)."""
    from service import webhook_delivery

    _run_runner("deliver-webhooks", webhook_delivery.deliver_next,
                webhook_delivery.IDLE_SECONDS, once, db_port)


def _run_runner(name, step, idle_seconds, once, db_port) -> None:
    from service.runners import run_forever, run_until_idle

    with database(db_port) as uri:
        connect(uri)
        if once:
            click.echo(f"{name}: {run_until_idle(step)} done")
            return
        try:
            run_forever(name, step, idle_seconds)
        except KeyboardInterrupt:
            click.echo(f"{name}: stopped")


@main.command("backfill-project-teams")
@click.option("--dry-run", is_flag=True, help="report what would change, write nothing")
@click.option("--school", "school_code", default=None, help="only this school (default: all)")
def backfill_project_teams(dry_run, school_code):
    """Create project teams for old evaluations and assessments that name only a group."""
    from scripts.backfill import run_backfill

    with database() as uri:
        connect(uri)
        code = run_backfill(dry_run=dry_run, school_code=school_code, echo=click.echo)
    sys.exit(code)


@main.command()
@click.option("--school", "school_code", default=None, help="only this school (default: all)")
def repair(school_code):
    """Settle what crashed requests left half-done (safe any time; run it nightly)."""
    from scripts.repair import run_repair

    with database() as uri:
        connect(uri)
        code = run_repair(school_code, echo=click.echo)
    sys.exit(code)


@main.command()
@click.option("--dry-run", is_flag=True, help="print the commands, run none")
def shard(dry_run):
    """Shard every school-owned collection on school_id (MONGODB_URI names a mongos).

    Safe to repeat: collections already sharded are left alone. Exit code: 0 done, 2 not a
    mongos (a single server or a replica set; nothing changed), 3 the database is unreachable
    or refused a command (re-run it).
    """
    from documents.connection import connect as connect_db
    from documents.connection import database_name
    from scripts.shard import EXIT_NOT_MONGOS, run_shard

    uri = os.environ.get("MONGODB_URI")
    if not uri:
        click.echo("rota shard needs a mongos: set MONGODB_URI to the cluster's mongos")
        sys.exit(EXIT_NOT_MONGOS)
    client = connect_db(uri)
    sys.exit(run_shard(client.get_database(database_name(uri)), dry_run, click.echo))


if __name__ == "__main__":
    main()
