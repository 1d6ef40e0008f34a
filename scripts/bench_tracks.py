"""Benchmark: enrol and balance thousands of students through the tracks manager.

    python -m scripts.bench_tracks [--students 10000] [--instructors 40]

Starts a throwaway embedded SecantusDB, enrols the students on one instructor of a track (so
that balancing has real work), balances them over all instructors, and prints per size the
database round trips (which must not grow with the number of students: each step is one
compare-and-set of the track document, which embeds its enrolments) and the time against raw
PyMongo doing the same writes (one `$push` of the same enrolment entries, one `$set` of the
same moves), as a ratio, and the size of the stored track document (it must stay
far below MongoDB's 16 MB). Takes about a minute on two cores.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from bson import BSON, ObjectId

from documents import all_documents
from documents.accounts import Company, ModuleSwitches, School, User
from documents.base import utcnow
from documents.connection import ROUND_TRIPS, connect, disconnect, ensure_indexes
from documents.tracks import Track
from scripts import embedded
from service.context import Actor, SchoolContext
from service.projects import Projects
from service.tracks import Tracks
from service.tracks_balancing import balance_moves, moved_update
from service.tracks_students import TrackStudents


@contextmanager
def measured():
    """Yields a dict that holds `round_trips` and `seconds` once the block is done."""
    result = {}
    with ROUND_TRIPS.record() as commands:
        started = time.perf_counter()
        yield result
        result["seconds"] = time.perf_counter() - started
    result["round_trips"] = len(commands)


def build_school(students: int, instructors: int):
    company = Company(name=f"Bench {ObjectId()}").save()
    school = School(company_id=company.id, name="Bench school", code=f"B-{ObjectId()}",
                    modules=ModuleSwitches(tracks=True)).save()
    admin = User(email=f"admin-{ObjectId()}@bench.test", name="Admin", role="school_admin",
                 company_id=company.id, school_id=school.id).save()
    people = [User(email=f"{role}-{i}-{ObjectId()}@bench.test", name=f"{role} {i:05d}",
                   role=role, company_id=company.id, school_id=school.id)
              for role, count in (("staff", instructors), ("student", students))
              for i in range(count)]
    User.objects.insert(people, load_bulk=False)
    users = User.objects(school_id=school.id).only("id", "role").batch_size(20000)
    staff = [u.id for u in users if u.role == "staff"]
    pupils = [u.id for u in users if u.role == "student"]
    actor = Actor(user_id=admin.id, role="school_admin", company_id=company.id,
                  school_id=school.id)
    ctx = SchoolContext(actor=actor, school_id=school.id, company_id=company.id,
                        modules=frozenset({"tracks"}))
    return ctx, staff, pupils


def run_size(ctx, staff, pupils, size: int) -> dict:
    tracks = Tracks(ctx)
    project = Projects(ctx).create(f"Bench {size}")
    track = tracks.create(f"Track {size}", project_id=project.id,
                          instructors=[{"user_id": instructor} for instructor in staff])
    students = pupils[:size]
    with measured() as enrol:
        TrackStudents(ctx).enrol(track.id, students, instructor_id=staff[0], pinned=False)
    # Everyone starts on the first instructor: these are the moves balancing will make.
    moves = balance_moves({i: (size if i == staff[0] else 0) for i in staff})
    with measured() as balance:
        TrackStudents(ctx).balance(track.id)
    loads = tracks.instructor_loads(track.id)
    stored = Track._get_collection().find_one({"school_id": ctx.school_id, "_id": track.id})
    raw_enrol, raw_balance = raw_pymongo(ctx, students, staff, moves)
    return {"size": size, "enrol": enrol, "balance": balance, "raw_enrol": raw_enrol,
            "raw_balance": raw_balance, "spread": loads["spread"], "students": loads["students"],
            "megabytes": len(BSON.encode(stored)) / 1e6}


def raw_pymongo(ctx, students, staff, moves) -> tuple[float, float]:
    """The same enrolment entries pushed into a track document with one `update_one`; the
    same moves as one `update_one` of what the manager's compare-and-set sends (`moved_update`),
    on a scratch collection."""
    scratch = Track._get_db()["bench_raw_tracks"]
    scratch.drop()
    now = utcnow()
    track_id = scratch.insert_one({"school_id": ctx.school_id, "enrolments": []}).inserted_id
    rows = [{"student_id": student, "instructor_id": staff[0], "enrolled_at": now,
             "assigned_by": ctx.actor.user_id, "pinned": False} for student in students]
    started = time.perf_counter()
    scratch.update_one({"_id": track_id}, {"$push": {"enrolments": {"$each": rows}}})
    insert_seconds = time.perf_counter() - started
    changes, offset = [], 0
    for _source, target, amount in moves:
        changes += [(index, target) for index in range(offset, offset + amount)]
        offset += amount
    track = scratch.find_one({"_id": track_id})
    started = time.perf_counter()
    if changes:
        scratch.update_one({"_id": track_id}, {"$set": moved_update(track, changes, now,
                                                                        ctx.actor.user_id)})
    move_seconds = time.perf_counter() - started
    scratch.drop()
    return insert_seconds, move_seconds


def print_table(results: list[dict], instructors: int) -> None:
    print(f"\nTracks bench: students enrolled on one instructor, then balanced over "
          f"{instructors} instructors (embedded SecantusDB)\n")
    header = (f"{'students':>9} | {'step':<8} | {'round trips':>11} | {'manager s':>9} | "
              f"{'raw pymongo s':>13} | {'ratio':>6}")
    print(header)
    print("-" * len(header))
    for row in results:
        for step, raw in (("enrol", "raw_enrol"), ("balance", "raw_balance")):
            seconds, base = row[step]["seconds"], row[raw]
            ratio = f"{seconds / base:6.1f}" if base > 0 else "   n/a"
            print(f"{row['size']:>9} | {step:<8} | {row[step]['round_trips']:>11} | "
                  f"{seconds:>9.2f} | {base:>13.2f} | {ratio}")
    print()
    for row in results:
        print(f"{row['size']:>9} students: final spread {row['spread']}, "
              f"{row['students']} enrolled, track document {row['megabytes']:.2f} MB")
    small, large = results[0], results[-1]
    for step in ("enrol", "balance"):
        same = small[step]["round_trips"] == large[step]["round_trips"]
        verdict = "constant" if same else "GROWS WITH STUDENTS"
        print(f"round trips for {step}: {small[step]['round_trips']} at {small['size']} vs "
              f"{large[step]['round_trips']} at {large['size']}: {verdict}")
    print("raw pymongo = one $push of the same enrolment entries (enrol) / one $set of the "
          "same moves (balance);\nratio = manager time / raw time (the manager "
          "also validates, reads the track to plan, audits and notifies).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=10000)
    parser.add_argument("--instructors", type=int, default=40)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="rota-bench-tracks-"))
    server = embedded.start(data_dir)
    try:
        connect(server.uri + "rota_bench")
        ensure_indexes(all_documents())
        ctx, staff, pupils = build_school(args.students, args.instructors)
        sizes = sorted({min(1000, args.students), args.students})
        results = [run_size(ctx, staff, pupils, size) for size in sizes]
        print_table(results, args.instructors)
    finally:
        disconnect()
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
