"""The import throughput benchmark: `python -m scripts.bench_import` (or `make bench-import`).

Generates ROWS assignment rows (one class and one room each) for a school with enough staff
and periods, starts a throwaway embedded SecantusDB, imports the rows through `run_import` (the
code path of `rota import`), then inserts the same documents the import stored (the slot
documents with their assignments, and the audit events) with raw PyMongo `insert_many` into a
fresh database with the same indexes, and prints the times and the ratios. Target:
`assignments_ratio` (the import against the raw insert of its slot documents) <= 2.0.
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pymongo
from bson import ObjectId

from documents import all_documents
from documents.accounts import Company, ModuleSwitches, School, User
from documents.audit import AuditEvent
from documents.connection import connect, disconnect, ensure_indexes
from documents.timetable import TimetableSlot
from scripts import embedded
from scripts.importer import run_import
from service.context import SYSTEM
from service.import_timetable import ENTITY
from service.tenancy import school_context
from service.timetable import TimetableSetup

ROWS = 20_000
PERIODS = 8
DAYS = (0, 1, 2, 3, 4)
TARGET_RATIO = 2.0
SCHOOL_CODE = "BENCH"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    try:
        figures = measure(args.rows, args.batch_size, log=print)
    except (embedded.EmbeddedUnavailable, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_table(figures)
    return 0


def measure(rows: int = ROWS, batch_size: int = 1000, log=print) -> dict:
    """Import `rows` rows on a throwaway SecantusDB, then raw-insert the same documents."""
    data_dir = Path(tempfile.mkdtemp(prefix="rota-bench-import-"))
    server = embedded.start(data_dir / "db")
    try:
        return run(server.uri, data_dir, rows, batch_size, log)
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def run(server_uri: str, data_dir: Path, rows: int, batch_size: int, log) -> dict:
    connect(server_uri + "rota_bench")
    ensure_indexes(all_documents())
    rows_file = data_dir / "assignments.csv"
    staff_count = write_rows(rows_file, rows, *create_school())
    log(f"{rows:,} assignment rows for {staff_count} staff x {len(DAYS)} days x {PERIODS} "
        f"periods; batches of {batch_size}")
    started = time.perf_counter()
    code = run_import("assignments", rows_file, SCHOOL_CODE, batch_size=batch_size,
                      report_path=data_dir / "report.csv", out=io.StringIO())
    import_seconds = time.perf_counter() - started
    written = {document: list(document._get_collection().find(kept))
               for document, kept in ((TimetableSlot, {}),
                                      (AuditEvent, {"entity_type": ENTITY}))}
    disconnect()
    stored = sum(len(slot["assignments"]) for slot in written[TimetableSlot])
    if code != 0 or stored != rows:
        raise RuntimeError(f"the import answered {code} and stored {stored} assignments; see "
                           f"{data_dir / 'report.csv'}")
    raw = raw_insert(server_uri, "rota_bench_raw", written)
    raw_same = sum(raw.values())
    assignments_ratio = import_seconds / raw[TimetableSlot]
    return {"rows": rows, "import_seconds": import_seconds,
            "raw_seconds": {document.__name__: seconds for document, seconds in raw.items()},
            "raw_same_seconds": raw_same, "ratio": assignments_ratio,
            "assignments_ratio": assignments_ratio,
            "ratio_same_documents": import_seconds / raw_same,
            "written": {document.__name__: len(docs) for document, docs in written.items()}}


def create_school() -> tuple[ObjectId, ObjectId]:
    """A school with the timetable on and PERIODS periods: (school id, company id)."""
    company = Company(name="Bench Company").save()
    school = School(company_id=company.id, name="Bench School", code=SCHOOL_CODE,
                    modules=ModuleSwitches(timetable=True)).save()
    setup = TimetableSetup(school_context(SYSTEM, school.id))
    for number in range(1, PERIODS + 1):
        start = 8 * 60 + (number - 1) * 50
        setup.create_period(number, f"Period {number}", f"{start // 60:02d}:{start % 60:02d}",
                            f"{(start + 45) // 60:02d}:{(start + 45) % 60:02d}")
    return school.id, company.id


def write_rows(path: Path, rows: int, school_id: ObjectId, company_id: ObjectId) -> int:
    """The staff (inserted in bulk) and the rows: one class and room per slot, each staff
    member filling every slot of the week. Returns the number of staff."""
    slots_per_staff = len(DAYS) * PERIODS
    staff_count = -(-rows // slots_per_staff)
    User.objects.insert([User(email=f"teacher{n}@bench.test", name=f"Teacher {n}", role="staff",
                              company_id=company_id, school_id=school_id,
                              external_id=f"T{n:05d}") for n in range(staff_count)],
                        load_bulk=False)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("staff", "day_of_week", "period_number", "class_id", "subject",
                         "room_number", "student_count"))
        for n in range(rows):
            teacher, slot = divmod(n, slots_per_staff)
            day, period = DAYS[slot // PERIODS], slot % PERIODS + 1
            writer.writerow((f"T{teacher:05d}", day, period, f"C{teacher:05d}",
                             "Mathematics", f"R{teacher:05d}", 25))
    return staff_count


def raw_insert(server_uri: str, database: str, documents: dict) -> dict:
    """The same documents into a fresh database with the same indexes, batches as PyMongo
    cuts them: the seconds of each collection's inserts."""
    client = pymongo.MongoClient(server_uri)
    try:
        seconds = {}
        for document, docs in documents.items():
            collection = client[database][document._get_collection_name()]
            for spec in document._meta["indexes"]:
                fields = spec["fields"] if isinstance(spec, dict) else spec
                collection.create_index(
                    [(f.lstrip("-"), -1 if f.startswith("-") else 1) for f in fields],
                    unique=isinstance(spec, dict) and spec.get("unique", False))
            started = time.perf_counter()
            collection.insert_many(docs, ordered=False)
            seconds[document] = time.perf_counter() - started
        return seconds
    finally:
        client.close()


def print_table(figures: dict) -> None:
    rows, import_seconds, raw = figures["rows"], figures["import_seconds"], figures["raw_seconds"]
    ratio = figures["assignments_ratio"]
    verdict = "OK" if ratio <= TARGET_RATIO else f"MISSED by {ratio - TARGET_RATIO:.2f}"
    written = figures["written"]
    print()
    print(f"{'':<48}{'documents':>10}{'seconds':>10}{'rows/s':>10}")
    print(f"{'rota import':<48}{sum(written.values()):>10,}{import_seconds:>10.2f}"
          f"{rows / import_seconds:>10,.0f}")
    print(f"{'raw insert_many of the same documents':<48}{sum(written.values()):>10,}"
          f"{figures['raw_same_seconds']:>10.2f}{rows / figures['raw_same_seconds']:>10,.0f}")
    for name, seconds in raw.items():
        print(f"{'  of which ' + name:<48}{written[name]:>10,}{seconds:>10.2f}")
    print(f"\n{'assignments_ratio: to the slot documents (<= 2.0)':<48}{ratio:>10.2f}  {verdict}")
    print(f"{'ratio to the same documents (audit included)':<48}"
          f"{figures['ratio_same_documents']:>10.2f}")
    print("\nEvery assignment lives in its slot document (day, period: documents/timetable.py);\n"
          "each batch writes every slot it touches with one conditional update, in one bulk\n"
          "write, and one audit event for the assignments it created.")


# ---------------------------------------------------------------------------- students

STUDENT_ROWS = 20_000
GROUP_SIZE = 100


def measure_students(rows: int = STUDENT_ROWS, batch_size: int = 1000, log=print) -> float:
    """Rows per second of `rota import students` for `rows` generated students of one program
    on a throwaway SecantusDB (then of `group-memberships` placing them all in week 1,
    printed only)."""
    data_dir = Path(tempfile.mkdtemp(prefix="rota-bench-students-"))
    server = embedded.start(data_dir / "db")
    try:
        connect(server.uri + "rota_bench_students")
        ensure_indexes(all_documents())
        students_file, memberships_file = write_student_rows(data_dir, rows)
        log(f"{rows:,} student rows for one program; batches of {batch_size}")
        rates = {}
        for kind, path in (("students", students_file), ("group-memberships",
                                                          memberships_file)):
            started = time.perf_counter()
            code = run_import(kind, path, SCHOOL_CODE, batch_size=batch_size,
                              report_path=data_dir / f"{kind}.report.csv", out=io.StringIO())
            rates[kind] = rows / (time.perf_counter() - started)
            if code != 0:
                raise RuntimeError(f"the {kind} import answered {code}; see "
                                   f"{data_dir / f'{kind}.report.csv'}")
            log(f"  {kind}: {rates[kind]:,.0f} rows/s")
        disconnect()
        return rates["students"]
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def write_student_rows(data_dir: Path, rows: int) -> tuple[Path, Path]:
    """A school with the weekly groups on, one program with a group per GROUP_SIZE students,
    and the two files: every student, and every student's group in week 1."""
    from service.weekly_groups import WeeklyGroups

    company = Company(name="Bench Company").save()
    school = School(company_id=company.id, name="Bench School", code=SCHOOL_CODE,
                    modules=ModuleSwitches(weekly_groups=True)).save()
    groups = WeeklyGroups(school_context(SYSTEM, school.id))
    program = groups.create_program("Bench Program", max_weeks=4)
    for number in range(-(-rows // GROUP_SIZE)):
        groups.create_group(program.id, f"Group {number}", "Blue", max_size=GROUP_SIZE)
    students, memberships = data_dir / "students.csv", data_dir / "memberships.csv"
    with open(students, "w", newline="") as s_handle, \
            open(memberships, "w", newline="") as m_handle:
        s_writer, m_writer = csv.writer(s_handle), csv.writer(m_handle)
        s_writer.writerow(("program", "customer_id", "name", "ability_level", "birth_date",
                           "email"))
        m_writer.writerow(("program", "week_number", "group", "customer_id"))
        for n in range(rows):
            s_writer.writerow(("Bench Program", f"C{n:06d}", f"Student {n}", "Blue",
                               f"{2010 + n % 8}-{n % 12 + 1:02d}-{n % 28 + 1:02d}",
                               f"student{n}@bench.test"))
            m_writer.writerow(("Bench Program", 1, f"Group {n // GROUP_SIZE}", f"C{n:06d}"))
    return students, memberships


if __name__ == "__main__":
    sys.exit(main())
