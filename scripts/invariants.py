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


def every_school(db: Database) -> dict:
    """A filter naming every school by its shard key: one query still, which a sharded
    cluster routes like the service's own (`$in` on school_id)."""
    return {"school_id": {"$in": [s["_id"] for s in db.schools.find({}, {"_id": 1})]}}


def timetable_slots(db: Database, **projection):
    """Every slot document, each with the school, day, period and the projected fields."""
    return db.timetable_slots.find(every_school(db), {"school_id": 1, "day_of_week": 1,
                                                      "period_id": 1, **projection})


def staff_double_bookings(db: Database) -> list[str]:
    slots = Counter((s["school_id"], a["staff_id"], s["day_of_week"], s["period_id"])
                    for s in timetable_slots(db, **{"assignments.staff_id": 1})
                    for a in s.get("assignments") or [])
    return [f"staff {slot[1]} has {n} assignments on day {slot[2]} period {slot[3]}"
            for slot, n in slots.items() if n > 1]


def class_and_room_double_bookings(db: Database) -> list[str]:
    overlapping = {s["school_id"] for s in db.timetable_settings.find(
        {**every_school(db), "allow_overlapping_assignments": True}, {"school_id": 1})}
    taken: dict[tuple, set] = defaultdict(set)
    for found in timetable_slots(db, **{"assignments.id": 1, "assignments.classes": 1}):
        if found["school_id"] in overlapping:
            continue
        slot = (found["school_id"], found["day_of_week"], found["period_id"])
        for assignment in found.get("assignments") or []:
            for taught in assignment.get("classes") or []:
                taken[slot + ("class", claim_key(taught["class_id"]))].add(assignment["id"])
                if taught.get("room_number"):
                    taken[slot + ("room", claim_key(taught["room_number"]))].add(
                        assignment["id"])
    return [f"{key[3]} {key[4]!r} taught by {len(ids)} assignments on day {key[1]} period "
            f"{key[2]}" for key, ids in taken.items() if len(ids) > 1]


def program_weeks(db: Database):
    """Every week document of the weekly groups, with its groups and their members."""
    return db.weekly_program_weeks.find(every_school(db), {
        "program_id": 1, "week_number": 1, "groups.group_id": 1, "groups.max_size": 1,
        "groups.members.student_id": 1, "groups.waitlist.student_id": 1})


def groups_over_capacity(db: Database) -> list[str]:
    return [f"group {g['group_id']} week {week['week_number']} has {len(g['members'])} "
            f"members, max {g['max_size']}"
            for week in program_weeks(db) for g in week.get("groups") or []
            if len(g.get("members") or []) > g["max_size"]]


def students_in_two_groups(db: Database) -> list[str]:
    problems = []
    for week in program_weeks(db):
        placed = Counter(m["student_id"] for g in week.get("groups") or []
                         for m in g.get("members") or [])
        problems += [f"student {student} is in {n} groups in week {week['week_number']} of "
                     f"program {week['program_id']}" for student, n in placed.items() if n > 1]
    return problems


def waitlists_beside_free_seats(db: Database) -> list[str]:
    """A student waiting for a group that has a free seat (a promotion lost) or that they
    are in already."""
    problems = []
    for week in program_weeks(db):
        for g in week.get("groups") or []:
            waiting = [w["student_id"] for w in g.get("waitlist") or []]
            members = {m["student_id"] for m in g.get("members") or []}
            where = f"group {g['group_id']} week {week['week_number']}"
            if waiting and len(members) < g["max_size"]:
                problems.append(f"{where}: {len(waiting)} waiting beside "
                                f"{g['max_size'] - len(members)} free seat(s)")
            problems += [f"{where}: student {s} waits for a group they are in"
                         for s in waiting if s in members]
    return problems


def accepted_swaps_not_executed_once(db: Database) -> list[str]:
    """An accepted request was accepted exactly once (one `accept` in the trail), and its
    assignment went to the acceptor unless a later request or override moved it on."""
    schools = every_school(db)
    accepted = {r["_id"]: r for r in db.timetable_alteration_requests.find(
        {**schools, "status": "accepted"})}
    accepts = Counter(e["entity_id"] for e in db.audit_events.find(
        {**schools, "entity_type": "timetable_alteration",
         "action": {"$in": ["accept", "repair"]}}, {"entity_id": 1}))
    problems = [f"request {rid} accepted {accepts[str(rid)]} times"
                for rid in accepted if accepts[str(rid)] != 1]
    wanted = {r["assignment_id"] for r in accepted.values()}
    assignments = {a["id"]: a for s in db.timetable_slots.find(
        {**schools, "assignments.id": {"$in": list(wanted)}}, {"assignments": 1})
        for a in s["assignments"] if a["id"] in wanted}
    for rid, request in accepted.items():
        assignment = assignments.get(request["assignment_id"])
        if assignment and assignment.get("swap_request_id") == rid \
                and assignment["staff_id"] != request.get("accepted_by"):
            problems.append(f"request {rid} accepted but its period is not the acceptor's")
    return problems


def lessons_in_two_slots(db: Database) -> list[str]:
    """A lesson is in one slot; two copies are a move a crash interrupted (`rota repair`)."""
    slots_of = Counter(a["id"] for s in timetable_slots(db, **{"assignments.id": 1})
                       for a in s.get("assignments") or [])
    return [f"lesson {lesson} is in {n} slots" for lesson, n in slots_of.items() if n > 1]


def failed_exchanges_that_moved_a_lesson(db: Database) -> list[str]:
    """A failed exchange handed neither lesson over: no lesson names it as how it came."""
    schools = every_school(db)
    failed = [r["_id"] for r in db.timetable_exchange_requests.find(
        {**schools, "status": "failed"}, {"_id": 1})]
    named = Counter(a["exchange_request_id"] for s in db.timetable_slots.find(
        {**schools, "assignments.exchange_request_id": {"$in": failed}},
        {"assignments.exchange_request_id": 1})
        for a in s["assignments"] if a.get("exchange_request_id") in failed)
    return [f"exchange {rid} failed but moved {n} lesson(s)" for rid, n in named.items()]


LINKED_RECORDS = ("evaluations", "project_assessments", "project_note_contexts")


def linked_rosters_not_frozen(db: Database, school_ids: list | None = None) -> list[str]:
    """A record linked to a project team recorded the roster of a locked version, and that
    version's roster has not changed since (no roster edit lands after the lock). Every
    school, or the ones named."""
    schools = {} if school_ids is None else {"school_id": {"$in": list(school_ids)}}
    fields = {"project_team_id": 1, "member_ids": 1, "members_version": 1}
    linked = [(name, record) for name in LINKED_RECORDS for record in db[name].find(
        {**schools, "project_team_id": {"$ne": None}}, fields)]
    teams = {team["_id"]: team for team in db.project_teams.find(
        {**schools, "_id": {"$in": list({record["project_team_id"] for _, record in linked})}},
        {"locked": 1, "member_ids": 1, "members_version": 1})}
    problems = []
    for name, record in linked:
        team = teams.get(record["project_team_id"])
        if team is None:
            problems.append(f"{name} {record['_id']} links a missing team")
        elif not team.get("locked"):
            problems.append(f"{name} {record['_id']} links team {team['_id']}, not locked")
        elif (record.get("member_ids"), record.get("members_version")) != (
                team.get("member_ids"), team.get("members_version")):
            problems.append(f"{name} {record['_id']} recorded another roster than locked "
                            f"team {team['_id']} has (members version "
                            f"{record.get('members_version')}, the team's "
                            f"{team.get('members_version')})")
    return problems


def track_students_not_placed_once_with_an_instructor(db: Database,
                                                      school_ids: list | None = None
                                                      ) -> list[str]:
    """Each student of a track is enrolled once and assigned to one of the track's own
    instructors (loads are not stored: they are counted from these enrolments). Every
    school, or the ones named."""
    schools = {} if school_ids is None else {"school_id": {"$in": list(school_ids)}}
    problems = []
    for track in db.tracks.find(schools, {"instructors.user_id": 1, "enrolments.student_id": 1,
                                          "enrolments.instructor_id": 1}):
        teaching = {i["user_id"] for i in track.get("instructors") or []}
        enrolments = track.get("enrolments") or []
        problems += [f"track {track['_id']}: student {s} enrolled {n} times"
                     for s, n in Counter(e["student_id"] for e in enrolments).items() if n > 1]
        problems += [f"track {track['_id']}: student {e['student_id']} assigned to "
                     f"{e['instructor_id']}, who does not teach it"
                     for e in enrolments if e["instructor_id"] not in teaching]
    return problems


CHECKS = (staff_double_bookings, class_and_room_double_bookings, groups_over_capacity,
          students_in_two_groups, waitlists_beside_free_seats,
          accepted_swaps_not_executed_once, linked_rosters_not_frozen,
          track_students_not_placed_once_with_an_instructor, lessons_in_two_slots,
          failed_exchanges_that_moved_a_lesson)


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
