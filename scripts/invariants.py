"""Reads the database and reports every broken invariant: what the load test, the fault
tests and an operator after an incident run (`python -m scripts.invariants MONGODB_URI`).

Each check is a constant number of queries over raw collections, so it also works on data
written by another version of the service.
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict

from pymongo.database import Database


def claim_key(value: str) -> str:
    return " ".join(str(value).split()).casefold()


def staff_double_bookings(db: Database) -> list[str]:
    slots = Counter((a["school_id"], a["staff_id"], a["day_of_week"], a["period_id"])
                    for a in db.timetable_assignments.find({}, {"classes": 0}))
    return [f"staff {slot[1]} has {n} assignments on day {slot[2]} period {slot[3]}"
            for slot, n in slots.items() if n > 1]


def class_and_room_double_bookings(db: Database) -> list[str]:
    overlapping = {s["school_id"] for s in db.timetable_settings.find(
        {"allow_overlapping_assignments": True}, {"school_id": 1})}
    taken: dict[tuple, set] = defaultdict(set)
    for assignment in db.timetable_assignments.find({}, {"school_id": 1, "day_of_week": 1,
                                                         "period_id": 1, "classes": 1}):
        if assignment["school_id"] in overlapping:
            continue
        slot = (assignment["school_id"], assignment["day_of_week"], assignment["period_id"])
        for taught in assignment.get("classes") or []:
            taken[slot + ("class", claim_key(taught["class_id"]))].add(assignment["_id"])
            if taught.get("room_number"):
                taken[slot + ("room", claim_key(taught["room_number"]))].add(assignment["_id"])
    return [f"{key[3]} {key[4]!r} taught by {len(ids)} assignments on day {key[1]} period "
            f"{key[2]}" for key, ids in taken.items() if len(ids) > 1]


def groups_over_capacity(db: Database) -> list[str]:
    members: Counter = Counter()
    for student in db.weekly_program_students.find({}, {"weeks": 1}):
        for week, placement in (student.get("weeks") or {}).items():
            members[(placement["group_id"], int(week.lstrip("w")))] += 1
    problems = []
    for group_week in db.weekly_group_weeks.find({}, {"group_id": 1, "week_number": 1,
                                                      "max_size": 1, "members_count": 1}):
        actual = members[(group_week["group_id"], group_week["week_number"])]
        if actual > group_week["max_size"]:
            problems.append(f"group {group_week['group_id']} week {group_week['week_number']} "
                            f"has {actual} members, max {group_week['max_size']}")
        if group_week.get("members_count", 0) > group_week["max_size"]:
            problems.append(f"group {group_week['group_id']} week {group_week['week_number']} "
                            f"counts {group_week['members_count']} seats, max "
                            f"{group_week['max_size']}")
    return problems


def accepted_swaps_not_executed_once(db: Database) -> list[str]:
    accepted = list(db.timetable_alteration_requests.find({"status": "accepted"}))
    moved = Counter(a.get("swap_request_id") for a in db.timetable_assignments.find(
        {"swap_request_id": {"$in": [r["_id"] for r in accepted]}}, {"swap_request_id": 1}))
    problems = [f"accepted request {r['_id']} moved {moved[r['_id']]} assignments"
                for r in accepted if moved[r["_id"]] > 1]
    return problems


CHECKS = (staff_double_bookings, class_and_room_double_bookings, groups_over_capacity,
          accepted_swaps_not_executed_once)


def check_all(db: Database) -> dict[str, list[str]]:
    return {check.__name__: check(db) for check in CHECKS}


def report(results: dict[str, list[str]], echo=print) -> bool:
    ok = True
    for name, problems in results.items():
        echo(f"  {'ok  ' if not problems else 'FAIL'} {name.replace('_', ' ')}"
             + (f": {len(problems)}" if problems else ""))
        for problem in problems[:10]:
            echo(f"         {problem}")
        ok = ok and not problems
    return ok


def main(argv=None) -> int:
    import pymongo

    from documents.connection import database_name

    argv = argv if argv is not None else sys.argv[1:]
    if not argv:
        print("usage: python -m scripts.invariants MONGODB_URI", file=sys.stderr)
        return 2
    db = pymongo.MongoClient(argv[0])[database_name(argv[0])]
    return 0 if report(check_all(db)) else 1


if __name__ == "__main__":
    sys.exit(main())
