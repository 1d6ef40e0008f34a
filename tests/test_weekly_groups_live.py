"""Weekly groups under real concurrency: gunicorn with 4 workers on SecantusDB, and two
runs of `rota import` at once."""

from __future__ import annotations

import io
import threading
from collections import Counter

import pytest
import requests
from bson import ObjectId

from documents.weekly_groups import ProgramStudent, ProgramWeek, StudentMove
from scripts.importer import run_import
from scripts.invariants import (
    groups_over_capacity,
    students_in_two_groups,
    waitlists_beside_free_seats,
)
from service import weekly_groups_import
from tests.helpers import parallel
from tests.test_import_support import replace_function, snapshot, write_csv
from tests.test_weekly_groups import birth, manager, movers

pytestmark = pytest.mark.integration


def _post_move(live, headers, program, students, group_id, week=1):
    students = students if isinstance(students, list) else [students]
    return requests.post(
        live.url(live.world.url(f"/programs/{program.id}/weeks/{week}/moves")),
        json={"student_ids": [str(s["id"]) for s in students], "group_id": str(group_id)},
        headers=headers, timeout=60)


def _members(program, week=1) -> dict:
    """group id -> its members' ids, as stored."""
    stored = ProgramWeek.objects.get(program_id=program.id, week_number=week)
    return {g.group_id: [m.student_id for m in g.members] for g in stored.groups}


def _invariants_hold():
    from mongoengine.connection import get_db

    db = get_db()
    assert groups_over_capacity(db) == []
    assert students_in_two_groups(db) == []
    assert waitlists_beside_free_seats(db) == []


def _codes(responses) -> set:
    return {r.json()["error"]["code"] for r in responses if r.status_code == 409}


def test_thirty_parallel_moves_into_the_last_seat_give_one_success(live):
    world = live.world
    wg, moves = manager(world), movers(world)
    program = wg.create_program(name="Race", max_weeks=2)
    group = wg.create_group(program.id, "Almost full", "Blue", max_size=4)
    seated = [wg.add_student(program.id, f"Seated {i}") for i in range(3)]
    moves.move_students(program.id, 1, [s["id"] for s in seated], group.id)
    racers = [wg.add_student(program.id, f"Racer {i:02d}") for i in range(30)]
    headers = world.headers("staff")

    responses = parallel(30, lambda i: _post_move(live, headers, program, racers[i], group.id))

    assert Counter(r.status_code for r in responses) == {200: 1, 409: 29}
    assert _codes(responses) == {"group_full"}
    winner = next(r for r in responses if r.status_code == 200).json()
    assert winner["capacity"] == "4/4"
    assert _members(program)[group.id] == [s["id"] for s in seated] \
        + [ObjectId(winner["moved_student_ids"][0])]
    week = wg.week_view(program.id, 1)
    assert week["groups"][0]["capacity"] == "4/4"
    assert len(week["unassigned_students"]) == 29
    _invariants_hold()


def test_one_student_moved_into_two_groups_at_once_ends_in_the_last_writers(live):
    world = live.world
    wg = manager(world)
    program = wg.create_program(name="Tug of war", max_weeks=2)
    left = wg.create_group(program.id, "Left", "Blue", max_size=8)
    right = wg.create_group(program.id, "Right", "Blue", max_size=8)
    headers = world.headers("admin")
    targets = [left, right] * 4
    students = []
    for attempt in range(5):
        student = wg.add_student(program.id, f"Pulled {attempt}")
        students.append(student["id"])
        responses = parallel(8, lambda i, student=student: _post_move(
            live, headers, program, student, targets[i].id))
        # every move is valid in any order: all succeed, one after the other
        assert Counter(r.status_code for r in responses) == {200: 8}
        log = sorted(StudentMove.objects(student_id=student["id"]),
                     key=lambda m: m.week_version)
        final = wg.history(program.id, student["id"])["weeks"]["1"]["group_id"]
        assert final == log[-1].to_group_id  # the last write in the week's order
        assert all(a.to_group_id == b.from_group_id for a, b in zip(log, log[1:], strict=False))
    members = _members(program)
    assert sorted(members[left.id] + members[right.id]) == sorted(students)
    _invariants_hold()


def test_parallel_group_moves_are_all_or_nothing(live):
    world = live.world
    wg = manager(world)
    program = wg.create_program(name="Pairs", max_weeks=2)
    group = wg.create_group(program.id, "Five seats", "Blue", max_size=5)
    pairs = [[wg.add_student(program.id, f"Pair {i} {side}") for side in "ab"]
             for i in range(8)]
    headers = world.headers("admin")

    responses = parallel(8, lambda i: _post_move(live, headers, program, pairs[i], group.id))

    assert Counter(r.status_code for r in responses) == {200: 2, 409: 6}
    assert _codes(responses) == {"group_full"}
    moved = [i for i, r in enumerate(responses) if r.status_code == 200]
    assert sorted(_members(program)[group.id]) == sorted(
        s["id"] for i in moved for s in pairs[i])  # whole pairs only
    _invariants_hold()


def test_generate_racing_moves_keeps_every_group_within_capacity(live):
    """Week 1 generated into three full groups of four, and a spare group. Then at once: the
    same generation again, 8 moves into the first generated group (always full: nobody
    leaves it), 6 moves of students of the other groups into the spare group (always room)."""
    world = live.world
    wg, moves = manager(world), movers(world)
    program = wg.create_program(name="Generated", max_weeks=2)
    for i in range(12):
        wg.add_student(program.id, f"Kid {i:02d}", "Blue", birth_date=birth(6 + i))
    first, *others = moves.generate_groups(program.id, max_group_size=4)["groups"]
    spare = wg.create_group(program.id, "Spare", "Blue", max_size=20)
    others = [s for g in others for s in g["students"]]
    into_full, into_spare = others, others[:6]
    before = ProgramWeek.objects.get(program_id=program.id, week_number=1).version
    headers = world.headers("admin")
    url = live.url(world.url(f"/programs/{program.id}/groups/generate"))

    def call(i):
        if i == 0:
            return requests.post(url, json={"max_group_size": 4, "week_number": 1},
                                 headers=headers, timeout=60)
        if i <= 8:
            return _post_move(live, headers, program, into_full[i - 1], first["group_id"])
        return _post_move(live, headers, program, into_spare[i - 9], spare.id)

    responses = parallel(15, call)

    assert Counter(r.status_code for r in responses) == {200: 7, 409: 8}
    assert [r.status_code for r in responses[1:9]] == [409] * 8
    assert _codes(responses) == {"group_full"}
    _invariants_hold()
    # a move is in the stored week unless the generation came after it (and moved the
    # student back): the week's version orders its changes
    generated = StudentMove.objects(program_id=program.id, reason="generate",
                                    week_version__gt=before).distinct("week_version")
    generation = max(generated, default=0)  # 0: it changed nothing, so it came first
    members = _members(program)
    for student in into_spare:
        [moved] = StudentMove.objects(student_id=student["id"], reason="move")
        assert (student["id"] in members[spare.id]) == (moved.week_version > generation)
    assert sorted(members[first["group_id"]]) == sorted(s["id"] for s in first["students"])


STUDENT_HEADER = ("program", "customer_id", "name", "ability_level", "birth_date", "email")


def test_two_parallel_student_imports_of_one_file_end_like_one_run(live, tmp_path,
                                                                   monkeypatch):
    """`rota import students` twice at once on one file, each batch of the two runs released
    at the same instant: both finish with a report and exit 0, every row created by exactly
    one of them, and the students stored are those of one run alone."""
    world = live.world
    manager(world).create_program(name="Imported", max_weeks=2)
    rows = [("Imported", f"C{n:05d}", f"Kid {n}", "Blue" if n % 2 else "Red",
             f"201{n % 10}-0{n % 9 + 1}-1{n % 9}", f"kid{n}@example.test")
            for n in range(3000)]
    path = write_csv(tmp_path / "students.csv", STUDENT_HEADER, rows)
    together = threading.Barrier(2, timeout=120)
    replace_function(monkeypatch, weekly_groups_import, "import_students",
                     lambda *args: together.wait())

    def run(i):
        out = io.StringIO()
        code = run_import("students", path, world.school.code, batch_size=200,
                          report_path=tmp_path / f"report{i}.csv", out=out)
        return code, out.getvalue()

    outcomes = parallel(2, run)

    assert [code for code, _ in outcomes] == [0, 0], outcomes
    assert all((tmp_path / f"report{i}.csv").exists() for i in range(2))
    counts = [{name: int(n) for name, n in (part.split() for part in summary(out).split(" / "))}
              for _, out in outcomes]
    assert sum(c["created"] for c in counts) == 3000, counts
    assert sum(c["unchanged"] for c in counts) == 3000, counts
    assert sum(c["updated"] + c["rejected"] for c in counts) == 0, counts
    stored = snapshot(ProgramStudent, world.school.id)
    monkeypatch.undo()
    ProgramStudent.objects(school_id=world.school.id).delete()
    assert run_import("students", path, world.school.code, out=io.StringIO()) == 0
    assert snapshot(ProgramStudent, world.school.id) == stored
    assert len(stored) == 3000


def test_two_parallel_membership_imports_of_one_file_end_like_one_run(live, tmp_path,
                                                                      monkeypatch):
    """The same for `group-memberships`: both runs change the same week documents at the
    same instant; the loser of each compare-and-set finds its rows done."""
    world = live.world
    wg = manager(world)
    program = wg.create_program(name="Placed", max_weeks=2)
    for number in range(4):
        wg.create_group(program.id, f"G{number}", "Blue", max_size=60)
    for n in range(200):
        wg.add_student(program.id, f"Kid {n}", customer_id=f"K{n:03d}")
    rows = [("Placed", week, f"G{n % 4}", f"K{n:03d}") for n in range(200) for week in (1, 2)]
    path = write_csv(tmp_path / "memberships.csv",
                     ("program", "week_number", "group", "customer_id"), rows)
    together = threading.Barrier(2, timeout=120)
    replace_function(monkeypatch, weekly_groups_import, "import_group_memberships",
                     lambda *args: together.wait())

    def run(i):
        out = io.StringIO()
        code = run_import("group-memberships", path, world.school.code, batch_size=50,
                          report_path=tmp_path / f"report{i}.csv", out=out)
        return code, out.getvalue()

    outcomes = parallel(2, run)

    assert [code for code, _ in outcomes] == [0, 0], outcomes
    counts = [{name: int(n) for name, n in (part.split() for part in summary(out).split(" / "))}
              for _, out in outcomes]
    assert [sum(c[status] for c in counts) for status in ("created", "unchanged")] \
        == [400, 400], counts
    _invariants_hold()
    for week in (1, 2):
        assert sorted(len(members) for members in _members(program, week).values()) \
            == [50, 50, 50, 50]
    assert StudentMove.objects(program_id=program.id).count() == 400


def summary(output: str) -> str:
    """"created 3 / updated 0 / unchanged 1 / rejected 0" of a run's output."""
    line = next(line for line in output.splitlines() if line.startswith("created "))
    return line.split("(")[0].strip()


def test_parallel_advances_move_one_week_each(live):
    world = live.world
    program = manager(world).create_program(name="Calendar", max_weeks=6)
    url = live.url(world.url(f"/programs/{program.id}/advance-week"))
    headers = world.headers("admin")
    responses = parallel(3, lambda _: requests.post(url, headers=headers))
    assert sorted(r.json()["current_week"] for r in responses) == [2, 3, 4]


def _post_swap(live, headers, program, a, b, week=1):
    return requests.post(live.url(live.world.url(f"/programs/{program.id}/weeks/{week}/swaps")),
                         json={"student_a": str(a["id"]), "student_b": str(b["id"])},
                         headers=headers, timeout=60)


def test_parallel_swaps_between_two_full_groups_never_overfill_them(live):
    world = live.world
    wg, moves = manager(world), movers(world)
    program = wg.create_program(name="Swaps", max_weeks=1)
    left = wg.create_group(program.id, "Left", "Blue", max_size=4)
    right = wg.create_group(program.id, "Right", "Blue", max_size=4)
    lefts = [wg.add_student(program.id, f"Left {i}") for i in range(4)]
    rights = [wg.add_student(program.id, f"Right {i}") for i in range(4)]
    outsiders = [wg.add_student(program.id, f"Outside {i}") for i in range(4)]
    moves.move_students(program.id, 1, [s["id"] for s in lefts], left.id)
    moves.move_students(program.id, 1, [s["id"] for s in rights], right.id)
    headers = world.headers("staff")

    def call(i):
        if i < 4:  # distinct pairs between the two full groups
            return _post_swap(live, headers, program, lefts[i], rights[i])
        return _post_move(live, headers, program, outsiders[i - 4], (left, right)[i % 2].id)

    responses = parallel(8, call)

    assert Counter(r.status_code for r in responses[:4]) == {200: 4}
    assert Counter(r.status_code for r in responses[4:]) == {409: 4}
    assert _codes(responses[4:]) == {"group_full"}
    members = _members(program)
    assert set(members[left.id]) == {s["id"] for s in rights}
    assert set(members[right.id]) == {s["id"] for s in lefts}
    changes = requests.get(live.url(world.url(f"/programs/{program.id}/changes")),
                           headers=headers, timeout=60).json()["items"]
    assert [c["reason"] for c in changes] == ["swap"] * 4 + ["move"] * 2
    _invariants_hold()


def test_parallel_waitlisting_then_seats_freed_seat_the_first_waiting(live):
    world = live.world
    wg, moves = manager(world), movers(world)
    program = wg.create_program(name="Queue", max_weeks=1)
    full = wg.create_group(program.id, "Full", "Blue", max_size=3)
    spare = wg.create_group(program.id, "Spare", "Blue", max_size=20)
    seated = [wg.add_student(program.id, f"Seated {i}") for i in range(3)]
    waiting = [wg.add_student(program.id, f"Waiting {i:02d}") for i in range(10)]
    moves.move_students(program.id, 1, [s["id"] for s in seated], full.id)
    headers = world.headers("staff")

    queued = parallel(10, lambda i: requests.post(
        live.url(world.url(f"/programs/{program.id}/weeks/1/moves")),
        json={"student_ids": [str(waiting[i]["id"])], "group_id": str(full.id),
              "waitlist": True}, headers=headers, timeout=60))
    assert Counter(r.status_code for r in queued) == {202: 10}
    url = live.url(world.url(f"/programs/{program.id}/weeks/1/groups/{full.id}/waitlist"))
    order = [s["id"] for s in requests.get(url, headers=headers, timeout=60).json()["students"]]
    assert sorted(order) == sorted(str(s["id"]) for s in waiting)

    freed = parallel(3, lambda i: _post_move(live, headers, program, seated[i], spare.id))
    assert Counter(r.status_code for r in freed) == {200: 3}
    assert [str(s) for s in _members(program)[full.id]] == order[:3]
    left = [s["id"] for s in requests.get(url, headers=headers, timeout=60).json()["students"]]
    assert left == order[3:]
    _invariants_hold()
