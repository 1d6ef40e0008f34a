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
    entries = list(db.weekly_week_entries.find({}, {"kind": 1, "group_id": 1, "week_number": 1,
                                                    "max_size": 1}))
    members = Counter((e["group_id"], e["week_number"]) for e in entries if e["kind"] == "member")
    seats = {(e["group_id"], e["week_number"]): e["max_size"] for e in entries
             if e["kind"] == "group" and e.get("max_size")}
    return [f"group {group} week {week} has {members[(group, week)]} members, max {size}"
            for (group, week), size in seats.items() if members[(group, week)] > size]


def students_in_two_groups(db: Database) -> list[str]:
    placed = Counter((e["program_id"], e["week_number"], e["student_id"])
                     for e in db.weekly_week_entries.find({"kind": "member"},
                                                          {"program_id": 1, "week_number": 1,
                                                           "student_id": 1}))
    return [f"student {key[2]} is in {n} groups in week {key[1]}"
            for key, n in placed.items() if n > 1]


def accepted_swaps_not_executed_once(db: Database) -> list[str]:
    """An accepted request was accepted exactly once (one `accept` in the trail), and its
    assignment went to the acceptor unless a later request or override moved it on."""
    accepted = {r["_id"]: r for r in db.timetable_alteration_requests.find(
        {"status": "accepted"})}
    accepts = Counter(e["entity_id"] for e in db.audit_events.find(
        {"entity_type": "timetable_alteration", "action": {"$in": ["accept", "repair"]}},
        {"entity_id": 1}))
    problems = [f"request {rid} accepted {accepts[str(rid)]} times"
                for rid in accepted if accepts[str(rid)] != 1]
    assignments = {a["_id"]: a for a in db.timetable_assignments.find(
        {"_id": {"$in": [r["assignment_id"] for r in accepted.values()]}},
        {"staff_id": 1, "swap_request_id": 1})}
    for rid, request in accepted.items():
        assignment = assignments.get(request["assignment_id"])
        if assignment and assignment.get("swap_request_id") == rid \
                and assignment["staff_id"] != request.get("accepted_by"):
            problems.append(f"request {rid} accepted but its period is not the acceptor's")
    return problems


CHECKS = (staff_double_bookings, class_and_room_double_bookings, groups_over_capacity,
          students_in_two_groups, accepted_swaps_not_executed_once)


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
