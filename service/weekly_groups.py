"""Weekly groups: programs of a few weeks, their students and groups, each week's view, the
week's names and instructors, a student's history, and the nightly repair.

A program has one `ProgramWeek` document per week (see documents/weekly_groups.py) holding
that week's groups and members; changes of the memberships are in
service/weekly_groups_moves.py, the importers in service/weekly_groups_import.py.

Writes that span documents are ordered so that a crash in between leaves nothing wrong that
`repair` (run by `rota repair`) does not settle: a program is saved before its week
documents, a group before its snapshots in the weeks, a week change before its move log.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime

from bson import ObjectId
from mongoengine.errors import NotUniqueError

from documents.accounts import User
from documents.connection import insert_unique
from documents.weekly_groups import ChangeSet, Group, Program, ProgramStudent, StudentMove
from service.aggregates import change
from service.context import STAFF_ROLES
from service.errors import Conflict, NotFound, ValidationFailed
from service.ids import object_id
from service.pagination import Page, paginate
from service.weekly_groups_generation import age_on
from service.weekly_groups_weeks import (
    STUDENT_FIELDS,
    WEEK_FIELDS,
    WeeklyService,
    add_groups,
    create_weeks,
    group_at,
    group_summary,
    log_moves,
    logged_change,
    natural,
    weeks,
)

INSTRUCTOR_ROLES = frozenset({"staff", "school_admin"})


def customer_key(customer_id: str | None, student_id: ObjectId) -> str:
    """The unique natural key: the customer id when there is one, else the student's own id
    (never empty, so the unique index holds without a sparse index)."""
    return f"c:{customer_id}" if customer_id else f"s:{student_id}"


def student_summary(student: dict, today: date | None = None) -> dict:
    """A program student as the API shows them, with the age computed today."""
    return {"id": student["_id"], "program_id": student.get("program_id"),
            "name": student["name"], "ability_level": student.get("ability_level"),
            "birth_date": student.get("birth_date"),
            "age": age_on(student.get("birth_date"), today or date.today()),
            "customer_id": student.get("customer_id"), "email": student.get("email"),
            "first_week": student.get("first_week") or 1}


def midnight(value):
    if value is None or isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day)


class WeeklyGroups(WeeklyService):
    """Programs, their students and groups, and every week's view of them."""

    # ---- programs

    def create_program(self, name: str, max_weeks: int = 6, start_date=None, end_date=None,
                       description: str | None = None, carry_forward: bool = False) -> Program:
        self.require_admin()
        if start_date and end_date and end_date < start_date:
            raise ValidationFailed("end_date is before start_date.",
                                   {"end_date": ["Must not be before start_date."]})
        program = Program(school_id=self.school_id, name=name, max_weeks=max_weeks,
                          current_week=1, description=description,
                          carry_forward=carry_forward,
                          start_date=midnight(start_date), end_date=midnight(end_date))
        try:
            program.save()
        except NotUniqueError:
            raise Conflict(f"A program named {name!r} already exists.", code="duplicate",
                           details={"name": name}) from None
        create_weeks(self.school_id, program.id, range(1, max_weeks + 1))
        self.audit("create", "program", program.id,
                   after={"name": name, "max_weeks": max_weeks})
        return program

    def list_programs(self, page: int = 1, page_size: int = 50) -> Page:
        return paginate(Program.objects.for_school(self.school_id).order_by("name", "id"),
                        page, page_size)

    # ---- students

    def add_student(self, program_id, name: str, ability_level: str | None = None,
                    birth_date=None, customer_id: str | None = None,
                    email: str | None = None, first_week: int | None = None) -> dict:
        """A student of the program from week 1, or from `first_week` on (before it they
        are "not yet enrolled")."""
        self.require_admin()
        program = self.get_program(program_id)
        if first_week is not None:
            self.require_week_in_body(program, first_week, "first_week")
        student_id = ObjectId()
        student = ProgramStudent(
            id=student_id, school_id=self.school_id, program_id=program.id, name=name,
            ability_level=ability_level, birth_date=midnight(birth_date),
            customer_id=customer_id, customer_key=customer_key(customer_id, student_id),
            email=email.strip().lower() if email else None, first_week=first_week)
        try:
            student.save(force_insert=True)
        except NotUniqueError:
            raise Conflict(f"customer_id {customer_id!r} is already used in this school.",
                           code="duplicate", details={"customer_id": customer_id}) from None
        self.audit("create", "program_student", student.id,
                   after={"program_id": program.id, "name": name, "customer_id": customer_id})
        return student_summary(student.to_mongo().to_dict())

    def list_students(self, program_id, page: int = 1, page_size: int = 50) -> Page:
        program = self.get_program(program_id)
        found = paginate(self.students_query(program.id), page, page_size)
        found.items = [student_summary(s) for s in found.items]
        return found

    # ---- groups

    def create_group(self, program_id, base_name: str, ability_level: str | None = None,
                     max_size: int = 8) -> Group:
        """A group in every week of the program (no members, no name of its own)."""
        self.require_admin()
        program = self.get_program(program_id)
        group = Group(school_id=self.school_id, program_id=program.id, base_name=base_name,
                      ability_level=ability_level, max_size=max_size)
        try:
            group.save()
        except NotUniqueError:
            raise Conflict(f"The program already has a group named {base_name!r}.",
                           code="duplicate", details={"base_name": base_name}) from None
        add_groups(self.school_id, program.id, [group.to_mongo().to_dict()],
                   range(1, program.max_weeks + 1))
        self.audit("create", "weekly_group", group.id,
                   after={"program_id": program.id, "base_name": base_name,
                          "ability_level": ability_level, "max_size": max_size})
        return group

    def list_groups(self, program_id, page: int = 1, page_size: int = 50) -> Page:
        program = self.get_program(program_id)
        return paginate(Group.objects.for_school(self.school_id).filter(
            program_id=program.id).order_by("ability_level", "base_name"), page, page_size)

    # ---- the week view

    def week_view(self, program_id, week: int) -> dict:
        """Three round trips whatever the size: the program, the week, the students.
        Students joining in a later week are "not yet enrolled", not unassigned."""
        program = self.get_program(program_id)
        self.require_week_in_url(program, week)
        groups = sorted(self.load_week(program.id, week)["groups"],
                        key=lambda g: (g.get("ability_level") or "", natural(g["base_name"])))
        placed = {m["student_id"]: g["group_id"] for g in groups for m in g["members"]}
        today = date.today()
        members: dict[ObjectId, list[dict]] = defaultdict(list)
        unassigned, not_yet = [], []
        for student in self.students_query(program.id).batch_size(10000):
            summary = student_summary(student, today)
            if student["_id"] in placed:
                members[placed[student["_id"]]].append(summary)
            elif (student.get("first_week") or 1) > week:
                not_yet.append(summary)
            else:
                unassigned.append(summary)
        return {"program_id": program.id, "week_number": week,
                "current_week": program.current_week,
                "groups": [{**group_summary(g), "students": members[g["group_id"]]}
                           for g in groups],
                "unassigned_students": unassigned, "not_yet_enrolled_students": not_yet}

    def waitlist(self, program_id, week: int, group_id) -> dict:
        """Who waits for a seat in the group that week, first first. Three round trips and
        one per 100 waiting: the program, the week, the students."""
        program = self.get_program(program_id)
        self.require_week_in_url(program, week)
        found = group_at(self.load_week(program.id, week), object_id(group_id, "group"))
        if found is None:
            raise NotFound(f"No group with id {group_id!r} in week {week} of this program.")
        group = found[1]
        waiting = group.get("waitlist") or []
        ids = [w["student_id"] for w in waiting]
        students = {}
        for start in range(0, len(ids), 100):  # the embedded server's `$in` cost: chunks
            students.update((s["_id"], s) for s in self.students_query(program.id).filter(
                id__in=ids[start:start + 100]))
        return {**group_summary(group), "week_number": week,
                "students": [{**student_summary(students[w["student_id"]]),
                              "position": position, "since": w["since"]}
                             for position, w in enumerate(waiting, 1)
                             if w["student_id"] in students]}

    # ---- names and instructors

    def rename_group(self, program_id, week: int, group_id, name: str) -> dict:
        """The group's name for this week only (other weeks keep theirs)."""
        self.require_admin()
        program = self.get_program(program_id)
        before, after = self._change_group(program, week, group_id, name=name)
        self.audit("rename", "weekly_group", after["group_id"],
                   before={"week_number": week, "name": before.get("name") or
                           before["base_name"]},
                   after={"week_number": week, "name": name})
        return {**group_summary(after), "week_number": week}

    def set_instructor(self, program_id, week: int, group_id, instructor_id) -> dict:
        """The group's instructor for this week; the new and the previous instructor are
        notified. The instructor must be staff or a school admin of this school (else 422)."""
        self.require_admin()
        program = self.get_program(program_id)
        instructor = None
        if instructor_id is not None:
            user = self.member(instructor_id, "instructor_id", roles=INSTRUCTOR_ROLES)
            instructor = {"user_id": user.id, "name": user.name, "email": user.email}
        before, after = self._change_group(program, week, group_id, instructor=instructor)
        previous = (before.get("instructor") or {}).get("user_id")
        new_id = instructor["user_id"] if instructor else None
        self.audit("set_instructor", "weekly_group", after["group_id"],
                   before={"week_number": week, "instructor_id": previous},
                   after={"week_number": week, "instructor_id": new_id})
        self._notify_instructors(program, after, week, previous, new_id)
        return {**group_summary(after), "week_number": week}

    def _change_group(self, program: Program, week: int, group_id,
                      **fields) -> tuple[dict, dict]:
        """Set the group's fields for the week (one compare-and-set): the group before and
        after. 404 for a group that is not one of this program's that week."""
        self.require_week_in_url(program, week)
        gid = object_id(group_id, "group")

        def set_fields(week_doc: dict) -> dict:
            found = group_at(week_doc, gid)
            if found is None:
                raise NotFound(f"No group with id {group_id!r} in this program.")
            return {"$set": {f"groups.{found[0]}.{k}": v for k, v in fields.items()}}

        before, after = change(weeks(), self.school_id,
                               {"program_id": program.id, "week_number": week}, set_fields,
                               what="program week")
        return group_at(before, gid)[1], group_at(after, gid)[1]

    def _notify_instructors(self, program: Program, group: dict, week: int, previous,
                            new_id) -> None:
        group_name = group.get("name") or group["base_name"]
        data = {"program_id": str(program.id), "group_id": str(group["group_id"]),
                "week_number": week}
        if new_id is not None and new_id != previous:
            self.notify(new_id, "weekly_group_instructor_assigned",
                        f"You teach {group_name} of {program.name} in week {week}.", data)
        if previous is not None and previous != new_id:
            self.notify(previous, "weekly_group_instructor_removed",
                        f"You no longer teach {group_name} of {program.name} in week "
                        f"{week}.", data)

    # ---- history

    def history(self, program_id, student_id) -> dict:
        """The student's group in each week and every change, oldest first. Students may read
        only their own: the program student whose email is theirs (else 404). Three round
        trips: the student (by id and program: a student of this program means the program
        exists; the program is read only when no student answers, to say which is missing),
        the moves, the weeks they name."""
        program_oid = object_id(program_id, "program")
        student = ProgramStudent.objects.for_school(self.school_id).filter(
            id=object_id(student_id, "student"), program_id=program_oid).only(
            *STUDENT_FIELDS).as_pymongo().first()
        if student is None:
            self.get_program(program_id)
        if student is None or not self._may_read_history(student):
            raise NotFound(f"No student with id {student_id!r} in this program.")
        moves = list(StudentMove.objects.for_school(self.school_id).filter(
            student_id=student["_id"]).order_by("created_at", "id").as_pymongo())
        week_docs = weeks().find(
            {"school_id": self.school_id, "program_id": program_oid,
             "$or": [{"groups.members.student_id": student["_id"]},
                     {"week_number": {"$in": sorted({m["week_number"] for m in moves})}}]},
            WEEK_FIELDS)
        names, placed = {}, {}
        for week_doc in week_docs:
            number = week_doc["week_number"]
            for group in week_doc["groups"]:
                names[(group["group_id"], number)] = group.get("name") or group["base_name"]
                for member in group["members"]:
                    if member["student_id"] == student["_id"]:
                        placed[number] = (group["group_id"], member["joined_at"])
        weeks_of = {str(number): {"group_id": group_id, "group_name": names[(group_id, number)],
                                  "joined_at": joined_at}
                    for number, (group_id, joined_at) in sorted(placed.items())}
        return {"student": student_summary(student), "weeks": weeks_of,
                "moves": [_move_entry(m, names) for m in moves]}

    def _may_read_history(self, student: dict) -> bool:
        if self.actor.role in STAFF_ROLES or self.actor.role == "system":
            return True
        if self.actor.role != "student" or not student.get("email"):
            return False
        user = User.objects(id=self.actor.user_id, school_id=self.school_id).only(
            "email").first()
        return user is not None and user.email.lower() == student["email"]

    # ---- repair

    def repair(self) -> list[str]:
        """What a crash between two writes left behind, for every program of the school:
        week documents not created, groups missing from weeks, the move log of a week's last
        change not written. Lines saying what was fixed; safe at any time (it only adds what
        is missing)."""
        programs = {p["_id"]: p for p in Program.objects.for_school(self.school_id).only(
            "max_weeks").as_pymongo()}
        stored = list(weeks().find({"school_id": self.school_id},
                                   {"program_id": 1, "week_number": 1, "groups.group_id": 1,
                                    "last_change": 1, "closed": 1}).batch_size(1000))
        fixed = self._settle_closed_weeks(programs, stored)
        stored = [w for w in stored if not w.get("closed")]
        fixed += self._restore_weeks(programs, stored)
        fixed += self._restore_group_weeks(programs, stored)
        fixed += self._restore_move_log(stored)
        fixed += self._restore_change_sets(stored)
        if fixed:
            self.audit("repair", "weekly_groups", None, after={"fixed": fixed})
        return fixed

    def _settle_closed_weeks(self, programs: dict, stored: list[dict]) -> list[str]:
        """Weeks a shrinking program closed: dropped when the program no longer has them,
        reopened when the shrink never landed."""
        fixed = []
        for week_doc in stored:
            if not week_doc.get("closed"):
                continue
            program = programs.get(week_doc["program_id"])
            kept = program is not None and week_doc["week_number"] <= program["max_weeks"]
            if kept:
                weeks().update_one({"_id": week_doc["_id"], "school_id": self.school_id},
                                   {"$set": {"closed": False}, "$inc": {"version": 1}})
                week_doc["closed"] = False
            else:
                weeks().delete_one({"_id": week_doc["_id"], "school_id": self.school_id,
                                    "closed": True})
            fixed.append(f"program {week_doc['program_id']}: closed week "
                         f"{week_doc['week_number']} {'reopened' if kept else 'dropped'}")
        return fixed

    def _restore_weeks(self, programs: dict, stored: list[dict]) -> list[str]:
        present = defaultdict(set)
        for week_doc in stored:
            present[week_doc["program_id"]].add(week_doc["week_number"])
        fixed = []
        for program_id, program in programs.items():
            missing = set(range(1, program["max_weeks"] + 1)) - present[program_id]
            if missing and create_weeks(self.school_id, program_id, sorted(missing)):
                fixed.append(f"program {program_id}: week(s) {sorted(missing)} restored")
        return fixed

    def _restore_group_weeks(self, programs: dict, stored: list[dict]) -> list[str]:
        """Each group in every week from the first it appears in (week 1 when in none)."""
        weeks_of = defaultdict(set)
        for week_doc in stored:
            for group in week_doc.get("groups") or []:
                weeks_of[group["group_id"]].add(week_doc["week_number"])
        fixed = []
        for group in Group.objects.for_school(self.school_id).as_pymongo():
            program = programs.get(group["program_id"])
            if program is None:
                continue
            first = min(weeks_of[group["_id"]], default=1)
            missing = sorted(set(range(first, program["max_weeks"] + 1))
                             - weeks_of[group["_id"]])
            if missing:
                add_groups(self.school_id, group["program_id"], [group], missing)
                fixed.append(f"program {group['program_id']}: group {group['base_name']!r} "
                             f"added to week(s) {missing}")
        return fixed

    def _restore_move_log(self, stored: list[dict]) -> list[str]:
        records = [record for week_doc in stored for record in logged_change(week_doc)]
        logged = {r["_id"] for r in StudentMove._get_collection().find(
            {"_id": {"$in": [r["_id"] for r in records]}, "school_id": self.school_id},
            {"_id": 1})}
        missing = [r for r in records if r["_id"] not in logged]
        log_moves(missing)
        by_week = defaultdict(int)
        for record in missing:
            by_week[(record["program_id"], record["week_number"])] += 1
        return [f"program {program_id}: {count} move log record(s) of week {week} restored"
                for (program_id, week), count in sorted(by_week.items(), key=str)]


    def _restore_change_sets(self, stored: list[dict]) -> list[str]:
        """The change set of each week's last change, when its writer died before writing
        it (rebuilt for that week from the records the week keeps)."""
        kept = {w["last_change"]["change_id"]: w for w in stored
                if (w.get("last_change") or {}).get("change_id")}
        present = {c["_id"] for c in ChangeSet._get_collection().find(
            {"_id": {"$in": list(kept)}, "school_id": self.school_id}, {"_id": 1})}
        missing = [ChangeSet(id=change_id, school_id=self.school_id,
                             program_id=week_doc["program_id"],
                             reason=week_doc["last_change"]["reason"],
                             actor_id=week_doc["last_change"].get("actor_id"),
                             created_at=week_doc["last_change"]["created_at"],
                             weeks=[{"week_number": week_doc["week_number"],
                                     "week_version": week_doc["last_change"]["week_version"],
                                     "moves": [[r["student_id"], r["from_group_id"],
                                                r["to_group_id"]]
                                               for r in logged_change(week_doc)]}]
                             ).to_mongo().to_dict()
                   for change_id, week_doc in kept.items() if change_id not in present]
        insert_unique(ChangeSet._get_collection(), missing)
        return [f"program {c['program_id']}: change set {c['_id']} ({c['reason']}) restored"
                for c in missing]


def _move_entry(move: dict, names: dict) -> dict:
    week = move["week_number"]
    return {"week_number": week, "reason": move["reason"],
            "from_group_id": move.get("from_group_id"),
            "from_group_name": names.get((move.get("from_group_id"), week)),
            "to_group_id": move.get("to_group_id"),
            "to_group_name": names.get((move.get("to_group_id"), week)),
            "moved_by": move.get("actor_id"), "moved_at": move["created_at"]}
