"""Weekly groups: programs of a few weeks, their students, and the students' group each week.

Every week is its own snapshot (see documents/weekly_groups.py): a group's name, instructor and
size for week N, and the memberships of week N, are `WeekEntry` documents of week N. Nothing
written for one week touches another week's documents.

FerretDB v1 does not make conditional updates atomic (parallel `update_one`s whose filter
checks the state can all succeed), so moves rest on unique-index inserts only:
1. claim one seat per student on the target group and week (`SeatClaim`, seat numbers
   1..max_size, unique): at most max_size claims can exist, so a group is never overfilled;
2. replace each student's membership entry for the week: delete the entry the request read,
   insert the new one (unique per program, week and student: of two parallel moves of one
   student exactly one insert wins);
3. give back the seats of the groups they left.
If step 1 or 2 fails for any student, the request undoes exactly what it wrote (its documents
carry its `move_id`) and answers 409. Between steps a group may hold a claim with no member
(never the reverse): it looks fuller than it is, never overfilled. `WeeklyGroups.repair`
(admin route `POST S/programs/{pid}/repair`, also safe to run nightly) releases such claims
once they are older than any request could be, and restores snapshots a crash left out.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from bson import ObjectId
from mongoengine.errors import NotUniqueError
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from documents.accounts import User
from documents.base import utcnow
from documents.connection import DUPLICATE_KEY, insert_unique
from documents.weekly_groups import (
    Group,
    Program,
    ProgramStudent,
    SeatClaim,
    StudentMove,
    WeekEntry,
)
from service import audit
from service.base import SchoolService
from service.context import STAFF_ROLES, SchoolContext
from service.errors import Conflict, NotFound, ValidationFailed
from service.ids import field_object_id, object_id, unique_ids
from service.imports import CREATED, REJECTED, UNCHANGED, UPDATED, Row, RowResult
from service.leases import exclusive
from service.pagination import Page, paginate

INSTRUCTOR_ROLES = frozenset({"staff", "school_admin"})
UNKNOWN_LEVEL = "Unknown"
GROUP, MEMBER = "group", "member"
CLAIM_ATTEMPTS = 3
# A seat claim without a member older than this belongs to a request that died midway.
ORPHAN_CLAIM_AGE = timedelta(minutes=5)
STUDENT_FIELDS = ("program_id", "name", "ability_level", "birth_date", "customer_id", "email")


# ------------------------------------------------------------------------- small pieces

def group_slot(group_id) -> str:
    return f"group:{group_id}"


def student_slot(student_id) -> str:
    return f"student:{student_id}"


def age_on(birth_date: datetime | date | None, today: date) -> int | None:
    if birth_date is None:
        return None
    born = birth_date.date() if isinstance(birth_date, datetime) else birth_date
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


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
            "customer_id": student.get("customer_id"), "email": student.get("email")}


def natural(name: str) -> list:
    """Sort key putting "Group 2" before "Group 10"."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"(\d+)", name)]


def capacity(count: int, max_size: int) -> str:
    return f"{count}/{max_size}"


def generation_order(students: list[dict], today: date) -> list[dict]:
    """Youngest first; students without a birth date last; ties by name."""
    def key(student):
        age = age_on(student.get("birth_date"), today)
        return (age is None, age or 0, student["name"], str(student["_id"]))
    return sorted(students, key=key)


def _entries():
    return WeekEntry._get_collection()


def _claims():
    return SeatClaim._get_collection()


def _bulk(collection, operations: list) -> None:
    if operations:
        collection.bulk_write(operations, ordered=False)


@dataclass
class PlannedMove:
    """One student going to one group in one week; `current` is the membership entry the
    request read (None: unassigned)."""

    student_id: ObjectId
    week: int
    group_id: ObjectId
    current: dict | None

    @property
    def from_group_id(self):
        return self.current["group_id"] if self.current else None


# ------------------------------------------------------------------------- the manager

class WeeklyGroups(SchoolService):
    """Programs, their students and groups, and every week's snapshot of them."""

    # ---- programs

    def create_program(self, name: str, max_weeks: int = 6, start_date=None, end_date=None,
                       description: str | None = None) -> Program:
        self.require_admin()
        if start_date and end_date and end_date < start_date:
            raise ValidationFailed("end_date is before start_date.",
                                   {"end_date": ["Must not be before start_date."]})
        program = Program(school_id=self.school_id, name=name, max_weeks=max_weeks,
                          current_week=1, description=description,
                          start_date=_midnight(start_date), end_date=_midnight(end_date))
        try:
            program.save()
        except NotUniqueError:
            raise Conflict(f"A program named {name!r} already exists.", code="duplicate",
                           details={"name": name}) from None
        self.audit("create", "program", program.id,
                   after={"name": name, "max_weeks": max_weeks})
        return program

    def list_programs(self, page: int = 1, page_size: int = 50) -> Page:
        return paginate(Program.objects.for_school(self.school_id).order_by("name", "id"),
                        page, page_size)

    def get_program(self, program_id) -> Program:
        return self.get(Program, program_id, "program")

    def advance_week(self, program_id) -> Program:
        """One week on; 409 `final_week` at the last. Parallel calls advance one week each,
        in turn (the lease: FerretDB's conditional `$inc` alone would lose one)."""
        self.require_admin()
        program = self.get_program(program_id)
        with exclusive(self.school_id, f"program:{program.id}:week"):
            advanced = Program.objects.for_school(self.school_id).filter(
                id=program.id, current_week__lt=program.max_weeks).modify(
                inc__current_week=1, new=True)
        if advanced is None:
            raise Conflict(f"The program is already at its final week ({program.max_weeks}).",
                           code="final_week", details={"max_weeks": program.max_weeks})
        self.audit("advance_week", "program", program.id,
                   before={"current_week": advanced.current_week - 1},
                   after={"current_week": advanced.current_week})
        return advanced

    # ---- students

    def add_student(self, program_id, name: str, ability_level: str | None = None,
                    birth_date=None, customer_id: str | None = None,
                    email: str | None = None) -> dict:
        self.require_admin()
        program = self.get_program(program_id)
        student_id = ObjectId()
        student = ProgramStudent(
            id=student_id, school_id=self.school_id, program_id=program.id, name=name,
            ability_level=ability_level, birth_date=_midnight(birth_date),
            customer_id=customer_id, customer_key=customer_key(customer_id, student_id),
            email=email.strip().lower() if email else None)
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
        found = paginate(self._students_query(program.id), page, page_size)
        found.items = [student_summary(s) for s in found.items]
        return found

    def _students_query(self, program_id):
        return ProgramStudent.objects.for_school(self.school_id).filter(
            program_id=program_id).only(*STUDENT_FIELDS).order_by("name", "id").as_pymongo()

    # ---- groups

    def create_group(self, program_id, base_name: str, ability_level: str | None = None,
                     max_size: int = 8) -> Group:
        """A group with its snapshot in every week of the program (no members, no name)."""
        self.require_admin()
        program = self.get_program(program_id)
        group = Group(school_id=self.school_id, program_id=program.id, base_name=base_name,
                      ability_level=ability_level, max_size=max_size)
        try:
            group.save()
        except NotUniqueError:
            raise Conflict(f"The program already has a group named {base_name!r}.",
                           code="duplicate", details={"base_name": base_name}) from None
        self._add_group_weeks(program, [group])
        self.audit("create", "weekly_group", group.id,
                   after={"program_id": program.id, "base_name": base_name,
                          "ability_level": ability_level, "max_size": max_size})
        return group

    def list_groups(self, program_id, page: int = 1, page_size: int = 50) -> Page:
        program = self.get_program(program_id)
        return paginate(Group.objects.for_school(self.school_id).filter(
            program_id=program.id).order_by("ability_level", "base_name"), page, page_size)

    def _add_group_weeks(self, program: Program, groups: Iterable[Group],
                         first_week: int = 1) -> None:
        """A snapshot per group and week from `first_week` on (a group made for a later week
        does not appear in earlier ones); present ones are kept."""
        now = utcnow()
        insert_unique(_entries(), [
            {"school_id": self.school_id, "program_id": program.id, "week_number": week,
             "kind": GROUP, "slot": group_slot(group.id), "group_id": group.id,
             "base_name": group.base_name, "ability_level": group.ability_level,
             "max_size": group.max_size, "created_at": now, "updated_at": now}
            for group in groups for week in range(first_week, program.max_weeks + 1)])

    # ---- the week view

    def week_view(self, program_id, week: int) -> dict:
        """Three round trips whatever the size: the program, the week, the students."""
        program = self.get_program(program_id)
        self._require_week_in_url(program, week)
        entries = self._week_entries(program.id, week)
        groups = sorted((e for e in entries if e["kind"] == GROUP),
                        key=lambda e: (e.get("ability_level") or "", natural(e["base_name"])))
        placed = {e["student_id"]: e["group_id"] for e in entries if e["kind"] == MEMBER}
        today = date.today()
        members: dict[ObjectId, list[dict]] = defaultdict(list)
        unassigned = []
        for student in self._students_query(program.id).batch_size(10000):
            summary = student_summary(student, today)
            if student["_id"] in placed:
                members[placed[student["_id"]]].append(summary)
            else:
                unassigned.append(summary)
        return {"program_id": program.id, "week_number": week,
                "current_week": program.current_week,
                "groups": [_group_entry(g, members[g["group_id"]]) for g in groups],
                "unassigned_students": unassigned}

    def _week_entries(self, program_id, week: int, kind: str | None = None) -> list[dict]:
        query = WeekEntry.objects.for_school(self.school_id).filter(
            program_id=program_id, week_number=week)
        if kind:
            query = query.filter(kind=kind)
        return list(query.as_pymongo().batch_size(10000))

    def _require_week_in_url(self, program: Program, week: int) -> None:
        if not 1 <= week <= program.max_weeks:
            raise NotFound(f"The program has weeks 1 to {program.max_weeks}; no week {week}.")

    def _require_week_in_body(self, program: Program, week: int, field: str) -> None:
        if not 1 <= week <= program.max_weeks:
            raise ValidationFailed(
                f"{field} must be a week of the program (1 to {program.max_weeks}).",
                {field: [f"Must be between 1 and {program.max_weeks}."]})

    def _group_week(self, program: Program, week: int, group_id, in_body=False) -> dict:
        """The group's snapshot for the week: 404 for a group of the URL that is not one of
        this program, 422 (`group_not_in_program`) for one named in a body."""
        gid = field_object_id(group_id, "group_id") if in_body else object_id(group_id,
                                                                                "group")
        found = WeekEntry.objects.for_school(self.school_id).filter(
            program_id=program.id, week_number=week, slot=group_slot(gid)).as_pymongo().first()
        if found is None and in_body:
            raise ValidationFailed("group_id is not a group of this program.",
                                   {"group_id": ["Not a group of this program."]},
                                   code="group_not_in_program")
        if found is None:
            raise NotFound(f"No group with id {group_id!r} in this program.")
        return found

    # ---- names and instructors

    def rename_group(self, program_id, week: int, group_id, name: str) -> dict:
        """The group's name for this week only (other weeks keep theirs)."""
        self.require_admin()
        program = self.get_program(program_id)
        self._require_week_in_url(program, week)
        before = self._group_week(program, week, group_id)
        _entries().update_one({"_id": before["_id"], "school_id": self.school_id},
                              {"$set": {"name": name, "updated_at": utcnow()}})
        self.audit("rename", "weekly_group", before["group_id"],
                   before={"week_number": week, "name": before.get("name") or
                           before["base_name"]},
                   after={"week_number": week, "name": name})
        return self._group_week_summary({**before, "name": name})

    def set_instructor(self, program_id, week: int, group_id, instructor_id) -> dict:
        """The group's instructor for this week; the new and the previous instructor are
        notified. The instructor must be staff or a school admin of this school (else 422)."""
        self.require_admin()
        program = self.get_program(program_id)
        self._require_week_in_url(program, week)
        before = self._group_week(program, week, group_id)
        instructor = None
        if instructor_id is not None:
            user = self.member(instructor_id, "instructor_id", roles=INSTRUCTOR_ROLES)
            instructor = {"user_id": user.id, "name": user.name, "email": user.email}
        previous = (before.get("instructor") or {}).get("user_id")
        _entries().update_one({"_id": before["_id"], "school_id": self.school_id},
                              {"$set": {"instructor": instructor, "updated_at": utcnow()}})
        self.audit("set_instructor", "weekly_group", before["group_id"],
                   before={"week_number": week, "instructor_id": previous},
                   after={"week_number": week,
                          "instructor_id": instructor["user_id"] if instructor else None})
        after = {**before, "instructor": instructor}
        self._notify_instructors(program, after, previous, instructor)
        return self._group_week_summary(after)

    def _group_week_summary(self, entry: dict) -> dict:
        members = WeekEntry.objects.for_school(self.school_id).filter(
            program_id=entry["program_id"], week_number=entry["week_number"], kind=MEMBER,
            group_id=entry["group_id"]).count()
        summary = _group_entry(entry, None)
        summary.update(week_number=entry["week_number"],
                       capacity=capacity(members, entry["max_size"]))
        return summary

    def _notify_instructors(self, program: Program, entry: dict, previous,
                            instructor: dict | None) -> None:
        group_name = entry.get("name") or entry["base_name"]
        week = entry["week_number"]
        data = {"program_id": str(program.id), "group_id": str(entry["group_id"]),
                "week_number": week}
        new_id = instructor["user_id"] if instructor else None
        if new_id is not None and new_id != previous:
            self.notify(new_id, "weekly_group_instructor_assigned",
                        f"You teach {group_name} of {program.name} in week {week}.", data)
        if previous is not None and previous != new_id:
            self.notify(previous, "weekly_group_instructor_removed",
                        f"You no longer teach {group_name} of {program.name} in week "
                        f"{week}.", data)

    # ---- moves

    def move_students(self, program_id, week: int, student_ids: list, group_id) -> dict:
        """Move every student into the group for this week, or none: 409 `group_full` when
        they do not all fit, 409 `concurrent_move` when another request moved one of them
        meanwhile. Staff may move students too: instructors rebalance their own weeks."""
        self.require_role(STAFF_ROLES)
        program = self.get_program(program_id)
        self._require_week_in_url(program, week)
        target = self._group_week(program, week, group_id, in_body=True)
        students = self._students_of_program(program, student_ids)
        current = {e["student_id"]: e for e in WeekEntry.objects.for_school(
            self.school_id).filter(program_id=program.id, week_number=week, kind=MEMBER,
                                   student_id__in=students).as_pymongo()}
        staying = [s for s in students if (current.get(s) or {}).get("group_id")
                   == target["group_id"]]
        moves = [PlannedMove(s, week, target["group_id"], current.get(s))
                 for s in students if s not in staying]
        if moves:
            placer = Placer(self, program.id, "move")
            placer.claim_seats(target, moves)
            placed = placer.switch(moves)
            if len(placed) < len(moves):
                placer.undo(moves, placed)
                raise Conflict("Another request moved some of these students meanwhile; "
                               "nobody was moved. Reload the week and try again.",
                               code="concurrent_move")
            placer.finish(moves)
        return {"week_number": week, "group_id": target["group_id"],
                "moved_student_ids": [m.student_id for m in moves],
                "unchanged_student_ids": staying,
                "capacity": self._group_week_summary(target)["capacity"]}

    def _students_of_program(self, program: Program, student_ids: list) -> list[ObjectId]:
        wanted = unique_ids(student_ids, "student_ids")
        found = {s["_id"]: s["program_id"] for s in ProgramStudent.objects.for_school(
            self.school_id).filter(id__in=wanted).only("program_id").as_pymongo()}
        unknown = [str(s) for s in wanted if s not in found]
        if unknown:
            raise ValidationFailed("Some student_ids are not students of this school.",
                                   {"student_ids": [f"Unknown: {', '.join(unknown)}."]})
        elsewhere = [str(s) for s in wanted if found[s] != program.id]
        if elsewhere:
            raise ValidationFailed("Some students belong to another program.",
                                   {"student_ids": [f"Of another program: "
                                                    f"{', '.join(elsewhere)}."]},
                                   code="student_in_other_program")
        return wanted

    # ---- generation and copies

    def generate_groups(self, program_id, max_group_size: int = 8, week_number: int = 1) -> dict:
        """Groups by ability level, youngest first, in chunks of `max_group_size`, named
        "<level> Group <n>" (existing groups of that name are reused). Replaces this week's
        memberships and the size of the groups used; names and instructors are kept. An
        admin's wholesale action: moves into the same week at the same moment may be lost."""
        self.require_admin()
        program = self.get_program(program_id)
        self._require_week_in_body(program, week_number, "week_number")
        students = list(self._students_query(program.id).batch_size(10000))
        plan = _generation_plan(students, max_group_size, date.today())
        groups = self._ensure_groups(program, plan, max_group_size, week_number)
        targets = {s["_id"]: groups[name].id for name, members in plan.items() for s in members}
        sizes = {groups[name].id: max_group_size for name in plan}
        self._replace_week(program, week_number, targets, sizes, "generate")
        self.audit("generate_groups", "program", program.id,
                   after={"week_number": week_number, "max_group_size": max_group_size,
                          "groups": len(plan), "students": len(students)})
        return self.week_view(program.id, week_number)

    def _ensure_groups(self, program: Program, plan: dict[str, list], max_size: int,
                       week: int) -> dict:
        existing = {g.base_name: g for g in Group.objects.for_school(self.school_id).filter(
            program_id=program.id)}
        missing = [Group(school_id=self.school_id, program_id=program.id, base_name=name,
                         ability_level=members[0].get("ability_level") or UNKNOWN_LEVEL,
                         max_size=max_size)
                   for name, members in plan.items() if name not in existing]
        if missing:
            # a parallel generation may create some first: they are simply re-read
            insert_unique(Group._get_collection(), [g.to_mongo().to_dict() for g in missing])
            existing = {g.base_name: g for g in Group.objects.for_school(
                self.school_id).filter(program_id=program.id)}
        self._add_group_weeks(program, [existing[name] for name in plan], week)
        return existing

    def copy_week(self, program_id, to_week: int, from_week: int) -> dict:
        """Week `to_week` becomes a copy of `from_week`: names, instructors, sizes and
        memberships; whatever `to_week` held before is replaced."""
        self.require_admin()
        program = self.get_program(program_id)
        self._require_week_in_body(program, to_week, "to_week")
        self._require_week_in_body(program, from_week, "from_week")
        if to_week == from_week:
            raise ValidationFailed("A week cannot be copied onto itself.",
                                   {"from_week": ["Must differ from to_week."]})
        source = self._week_entries(program.id, from_week)
        groups = [e for e in source if e["kind"] == GROUP]
        self._add_group_weeks(program, Group.objects.for_school(self.school_id).filter(
            id__in=[g["group_id"] for g in groups]), to_week)
        _bulk(_entries(), [
            UpdateOne({"school_id": self.school_id, "program_id": program.id,
                       "week_number": to_week, "slot": g["slot"]},
                      {"$set": {"name": g.get("name"), "instructor": g.get("instructor"),
                                "updated_at": utcnow()}}) for g in groups])
        targets = {e["student_id"]: e["group_id"] for e in source if e["kind"] == MEMBER}
        self._replace_week(program, to_week, targets,
                           {g["group_id"]: g["max_size"] for g in groups}, "copy")
        self.audit("copy_week", "program", program.id,
                   after={"from_week": from_week, "to_week": to_week, "groups": len(groups),
                          "students": len(targets)})
        return self.week_view(program.id, to_week)

    def _replace_week(self, program: Program, week: int, targets: dict, sizes: dict,
                      reason: str) -> None:
        """The week's memberships become `targets` (student -> group) and the listed groups'
        sizes `sizes`: old memberships and seats out, new ones in, in bulk."""
        before = {e["student_id"]: e["group_id"]
                  for e in self._week_entries(program.id, week, MEMBER)}
        scope = {"school_id": self.school_id, "program_id": program.id, "week_number": week}
        _entries().delete_many({**scope, "kind": MEMBER})
        _claims().delete_many(scope)
        move_id, now = ObjectId(), utcnow()
        _bulk(_entries(), [UpdateOne({**scope, "slot": group_slot(group_id)},
                                     {"$set": {"max_size": size}})
                           for group_id, size in sizes.items()])
        seats = Counter()
        members, claims = [], []
        for student_id, group_id in targets.items():
            seats[group_id] += 1
            members.append({**scope, "kind": MEMBER, "slot": student_slot(student_id),
                            "student_id": student_id, "group_id": group_id, "joined_at": now,
                            "move_id": move_id, "created_at": now, "updated_at": now})
            claims.append({**scope, "group_id": group_id, "seat": seats[group_id],
                           "student_id": student_id, "move_id": move_id, "created_at": now})
        insert_unique(_claims(), claims)
        insert_unique(_entries(), members)
        moves = [_move_record(self, program.id, student_id, week, before.get(student_id),
                              targets.get(student_id), reason)
                 for student_id in set(before) | set(targets)
                 if before.get(student_id) != targets.get(student_id)]
        if moves:
            StudentMove.objects.insert(moves, load_bulk=False)

    # ---- history

    def history(self, program_id, student_id) -> dict:
        """The student's group in each week and every change, oldest first. Students may read
        only their own: the program student whose email is theirs (else 404)."""
        program = self.get_program(program_id)
        student = ProgramStudent.objects.for_school(self.school_id).filter(
            id=object_id(student_id, "student"), program_id=program.id).only(
            *STUDENT_FIELDS).as_pymongo().first()
        if student is None or not self._may_read_history(student):
            raise NotFound(f"No student with id {student_id!r} in this program.")
        memberships = sorted(WeekEntry.objects.for_school(self.school_id).filter(
            kind=MEMBER, student_id=student["_id"]).as_pymongo(),
            key=lambda e: e["week_number"])
        moves = list(StudentMove.objects.for_school(self.school_id).filter(
            student_id=student["_id"]).order_by("created_at", "id").as_pymongo())
        names = self._group_names(program, memberships, moves)
        weeks = {str(m["week_number"]): {
            "group_id": m["group_id"], "group_name": names.get((m["group_id"],
                                                                m["week_number"])),
            "joined_at": m.get("joined_at")} for m in memberships}
        return {"student": student_summary(student), "weeks": weeks,
                "moves": [_move_entry(m, names) for m in moves]}

    def _may_read_history(self, student: dict) -> bool:
        if self.actor.role in STAFF_ROLES or self.actor.role == "system":
            return True
        if self.actor.role != "student" or not student.get("email"):
            return False
        user = User.objects(id=self.actor.user_id, school_id=self.school_id).only(
            "email").first()
        return user is not None and user.email.lower() == student["email"]

    def _group_names(self, program: Program, memberships: list[dict],
                     moves: list[dict]) -> dict:
        """(group_id, week) -> that week's name of the group, in one query."""
        slots = {group_slot(m["group_id"]) for m in memberships}
        slots |= {group_slot(m[f]) for m in moves for f in ("from_group_id", "to_group_id")
                  if m.get(f)}
        if not slots:
            return {}
        snapshots = WeekEntry.objects.for_school(self.school_id).filter(
            program_id=program.id, slot__in=list(slots)).only(
            "group_id", "week_number", "name", "base_name").as_pymongo()
        return {(s["group_id"], s["week_number"]): s.get("name") or s["base_name"]
                for s in snapshots}

    # ---- repair

    def repair(self, program_id) -> dict:
        """Release seat claims that have had no member for longer than any request lasts,
        and add week snapshots a crash left out. Safe while moves run: a young claim may be
        a move between its steps and is left alone."""
        self.require_admin()
        program = self.get_program(program_id)
        self._add_missing_weeks(program)
        members = {(e["group_id"], e["week_number"], e["student_id"])
                   for e in WeekEntry.objects.for_school(self.school_id).filter(
                       program_id=program.id, kind=MEMBER).only(
                       "group_id", "week_number", "student_id").as_pymongo().batch_size(10000)}
        cutoff = utcnow() - ORPHAN_CLAIM_AGE
        orphans = [c for c in SeatClaim.objects.for_school(self.school_id).filter(
            program_id=program.id, created_at__lt=cutoff).as_pymongo().batch_size(10000)
            if (c["group_id"], c["week_number"], c["student_id"]) not in members]
        if orphans:
            _claims().delete_many({"_id": {"$in": [c["_id"] for c in orphans]},
                                   "school_id": self.school_id})
        released = Counter((c["group_id"], c["week_number"]) for c in orphans)
        fixed = [{"group_id": group_id, "week_number": week, "released_seats": seats}
                 for (group_id, week), seats in sorted(released.items(),
                                                       key=lambda i: (str(i[0][0]), i[0][1]))]
        if fixed:
            self.audit("repair", "program", program.id, after={"fixed": fixed})
        return {"program_id": program.id, "fixed": fixed}

    def _add_missing_weeks(self, program: Program) -> None:
        """Snapshots a crash left out: every week from a group's first one on."""
        first_weeks: dict = {}
        for entry in WeekEntry.objects.for_school(self.school_id).filter(
                program_id=program.id, kind=GROUP).only("group_id", "week_number").as_pymongo():
            group_id, week = entry["group_id"], entry["week_number"]
            first_weeks[group_id] = min(week, first_weeks.get(group_id, week))
        by_first_week = defaultdict(list)
        for group in Group.objects.for_school(self.school_id).filter(program_id=program.id):
            by_first_week[first_weeks.get(group.id, 1)].append(group)
        for first_week, groups in by_first_week.items():
            self._add_group_weeks(program, groups, first_week)


class Placer:
    """The three steps of a safe move (see the module docstring), shared by the move route
    and the membership import. Everything it writes carries its `move_id`."""

    def __init__(self, service: WeeklyGroups, program_id, reason: str):
        self.service = service
        self.school_id = service.school_id
        self.program_id = program_id
        self.reason = reason
        self.move_id = ObjectId()
        self.now = utcnow()

    def claim_seats(self, group_week: dict, moves: list[PlannedMove]) -> None:
        """One seat per move on the group's week, all or none, else 409 `group_full`."""
        scope = {"school_id": self.school_id, "group_id": group_week["group_id"],
                 "week_number": group_week["week_number"]}
        waiting = list(moves)
        for _ in range(CLAIM_ATTEMPTS):
            taken = {c["seat"] for c in _claims().find(scope, {"seat": 1})}
            free = [n for n in range(1, group_week["max_size"] + 1) if n not in taken]
            if len(free) < len(waiting):
                break
            refused = insert_unique(_claims(), [
                {**scope, "program_id": self.program_id, "seat": seat,
                 "student_id": move.student_id, "move_id": self.move_id,
                 "created_at": self.now}
                for seat, move in zip(free, waiting, strict=False)])
            waiting = [move for index, move in enumerate(waiting) if index in refused]
            if not waiting:
                return
        self.release_seats()
        raise Conflict(f"The group has not {len(moves)} free seat(s) left this week.",
                       code="group_full",
                       details={"max_size": group_week["max_size"], "seats": len(moves)})

    def release_seats(self, moves: list[PlannedMove] | None = None) -> None:
        """Give back this request's seats: all of them, or those taken for `moves`."""
        query = {"school_id": self.school_id, "move_id": self.move_id}
        if moves is not None:
            if not moves:
                return
            query["$or"] = [{"group_id": m.group_id, "week_number": m.week,
                             "student_id": m.student_id} for m in moves]
        _claims().delete_many(query)

    def release_seats_of(self, entries: list[dict]) -> None:
        """Give back the seats that backed these membership entries: the claims written with
        them (same move, student, group and week), never a seat another request holds now."""
        backing = [{"move_id": e.get("move_id"), "student_id": e["student_id"],
                    "group_id": e["group_id"], "week_number": e["week_number"]}
                   for e in entries]
        if backing:
            _claims().delete_many({"school_id": self.school_id, "$or": backing})

    def switch(self, moves: list[PlannedMove]) -> set[int]:
        """Replace each student's membership entry; answer the indexes of the moves whose new
        entry went in (another request's entry for the same student keeps it out)."""
        read = [m.current["_id"] for m in moves if m.current]
        if read:
            _entries().delete_many({"_id": {"$in": read}, "school_id": self.school_id})
        refused = insert_unique(_entries(), [
            {"school_id": self.school_id, "program_id": self.program_id,
             "week_number": m.week, "kind": MEMBER, "slot": student_slot(m.student_id),
             "student_id": m.student_id, "group_id": m.group_id, "joined_at": self.now,
             "move_id": self.move_id, "created_at": self.now, "updated_at": self.now}
            for m in moves])
        return {index for index in range(len(moves)) if index not in refused}

    def undo(self, moves: list[PlannedMove], placed: set[int]) -> None:
        """Put back what this request changed and give back its seats. A student another
        request placed meanwhile stays where that request put them."""
        _entries().delete_many({"school_id": self.school_id, "kind": MEMBER,
                                "move_id": self.move_id})
        insert_unique(_entries(), [moves[i].current for i in placed if moves[i].current])
        # The entries this request deleted but could not replace are gone for good (another
        # request placed the student): their seats go with them.
        self.release_seats_of([m.current for i, m in enumerate(moves)
                               if i not in placed and m.current])
        self.release_seats()

    def finish(self, moves: list[PlannedMove]) -> None:
        """Give back the seats of the groups left; record the moves and audit them."""
        self.release_seats_of([m.current for m in moves if m.current])
        records = [_move_record(self.service, self.program_id, m.student_id, m.week,
                                m.from_group_id, m.group_id, self.reason) for m in moves]
        if records:
            StudentMove.objects.insert(records, load_bulk=False)
        audit.record_many([audit.audit_event(
            self.service.actor, self.school_id, self.reason, "program_student", m.student_id,
            before={"week_number": m.week, "group_id": m.from_group_id},
            after={"week_number": m.week, "group_id": m.group_id}) for m in moves])


def _move_record(service: SchoolService, program_id, student_id, week: int, from_group,
                 to_group, reason: str) -> StudentMove:
    return StudentMove(school_id=service.school_id, program_id=program_id,
                       student_id=student_id, week_number=week, from_group_id=from_group,
                       to_group_id=to_group, reason=reason, actor_id=service.actor.user_id)


def _midnight(value):
    if value is None or isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day)


def _generation_plan(students: list[dict], max_group_size: int, today: date) -> dict:
    """"<level> Group <n>" -> its students, levels in alphabetical order."""
    by_level: dict[str, list[dict]] = defaultdict(list)
    for student in students:
        by_level[student.get("ability_level") or UNKNOWN_LEVEL].append(student)
    plan = {}
    for level in sorted(by_level):
        ordered = generation_order(by_level[level], today)
        for index in range(0, len(ordered), max_group_size):
            plan[f"{level} Group {index // max_group_size + 1}"] = \
                ordered[index:index + max_group_size]
    return plan


def _group_entry(entry: dict, students: list[dict] | None) -> dict:
    instructor = entry.get("instructor")
    return {"group_id": entry["group_id"], "base_name": entry["base_name"],
            "name": entry.get("name") or entry["base_name"],
            "ability_level": entry.get("ability_level"), "max_size": entry["max_size"],
            "instructor": {"id": instructor["user_id"], "name": instructor.get("name"),
                           "email": instructor.get("email")} if instructor else None,
            "students": students,
            "capacity": capacity(len(students or ()), entry["max_size"])}


def _move_entry(move: dict, names: dict) -> dict:
    week = move["week_number"]
    return {"week_number": week, "reason": move["reason"],
            "from_group_id": move.get("from_group_id"),
            "from_group_name": names.get((move.get("from_group_id"), week)),
            "to_group_id": move.get("to_group_id"),
            "to_group_name": names.get((move.get("to_group_id"), week)),
            "moved_by": move.get("actor_id"), "moved_at": move["created_at"]}


# ------------------------------------------------------------------------- imports, exports
#
# The `students` and `group-memberships` kinds of `rota import` (see service/imports.py).
# Programs are named by name (or id), groups by base name, students by customer_id.

def import_students(ctx: SchoolContext, rows: list[Row], dry_run: bool) -> list[RowResult]:
    """Upsert program students by customer_id: four round trips per batch (the programs,
    the students named, one bulk write, one audit insert)."""
    programs = _programs_by_name(ctx)
    stored = {s["customer_key"]: s for s in ProgramStudent.objects.for_school(
        ctx.school_id).filter(customer_key__in=[f"c:{r.values['customer_id']}" for r in rows])
        .as_pymongo().batch_size(10000)}
    results: dict[int, RowResult] = {}
    writes: list[tuple[Row, dict | None, UpdateOne, dict]] = []
    seen: set[str] = set()
    for row in rows:
        outcome = _plan_student_row(ctx, row, programs, stored, seen)
        if isinstance(outcome, RowResult):
            results[row.line] = outcome
        else:
            writes.append((row, *outcome))
    failed, created_ids = ({}, {}) if dry_run else _bulk_upsert(
        ProgramStudent._get_collection(), [op for _, _, op, _ in writes])
    events = []
    for index, (row, before, _, changes) in enumerate(writes):
        key = row.values["customer_id"]
        if index in failed:
            results[row.line] = RowResult(row.line, REJECTED, failed[index], key)
            continue
        results[row.line] = RowResult(row.line, UPDATED if before else CREATED, key=key)
        events.append(audit.audit_event(
            ctx.actor, ctx.school_id, "import_update" if before else "import_create",
            "program_student", before["_id"] if before else created_ids.get(index),
            before={f: before.get(f) for f in changes} if before else None,
            after={"customer_id": key, **changes}))
    if not dry_run:
        audit.record_many(events)
    return [results[row.line] for row in rows]


def _plan_student_row(ctx: SchoolContext, row: Row, programs: dict, stored: dict,
                      seen: set):
    """A RowResult (rejected or unchanged), or (stored or None, operation, changes)."""
    values, key = row.values, row.values["customer_id"]
    program = programs.get(values["program"])
    if program is None:
        return RowResult(row.line, REJECTED, f"unknown program {values['program']!r}", key)
    if key in seen:
        return RowResult(row.line, REJECTED, "customer_id repeated in this batch", key)
    seen.add(key)
    try:
        birth_date = _parse_date(values.get("birth_date"))
    except ValueError:
        return RowResult(row.line, REJECTED,
                         f"bad birth_date {values['birth_date']!r}: YYYY-MM-DD", key)
    email = values.get("email", "").lower() or None
    if email and ("@" not in email or " " in email):
        return RowResult(row.line, REJECTED, f"bad email {email!r}", key)
    wanted = {"name": values["name"], "ability_level": values.get("ability_level"),
              "birth_date": birth_date, "email": email}
    before = stored.get(f"c:{key}")
    if before is not None and before["program_id"] != program.id:
        return RowResult(row.line, REJECTED,
                         "customer_id belongs to a student of another program", key)
    changes = {f: v for f, v in wanted.items() if (before or {}).get(f) != v}
    if before is not None and not changes:
        return RowResult(row.line, UNCHANGED, key=key)
    operation = UpdateOne(
        {"school_id": ctx.school_id, "customer_key": f"c:{key}"},
        {"$set": wanted, "$setOnInsert": {"program_id": program.id, "customer_id": key,
                                          "created_at": utcnow()}},
        upsert=True)
    return before, operation, changes


def import_group_memberships(ctx: SchoolContext, rows: list[Row],
                             dry_run: bool) -> list[RowResult]:
    """Place students in groups per week with the move rules: a group is never overfilled
    (rows beyond its free seats are rejected; seats freed by students leaving it in the same
    batch count from the next run) and a student is never in two groups in a week. Round
    trips per batch: six reads, one seat claim per target group and week, then the
    placements, releases, move records and audit in bulk."""
    batch = MembershipBatch.load(ctx, rows)
    results: dict[int, RowResult] = {}
    planned: list[tuple[Row, PlannedMove, dict]] = []
    free = {key: snapshot["max_size"] - batch.seats_taken[key]
            for key, snapshot in batch.snapshots.items()}
    for row in rows:
        outcome = batch.plan(row)
        if isinstance(outcome, RowResult):
            results[row.line] = outcome
            continue
        move, snapshot = outcome
        if free[(move.group_id, move.week)] <= 0:
            results[row.line] = RowResult(
                row.line, REJECTED, f"group {snapshot['base_name']!r} is full in week "
                f"{move.week}", _membership_key(row))
            continue
        free[(move.group_id, move.week)] -= 1
        planned.append((row, move, snapshot))
    placed = {row.line for row, _, _ in planned} if dry_run else batch.place(planned)
    for row, move, _ in planned:
        if row.line in placed:
            status = UPDATED if move.current else CREATED
            results[row.line] = RowResult(row.line, status, key=_membership_key(row))
        else:
            results[row.line] = RowResult(row.line, REJECTED, "the group filled up or the "
                                          "student moved meanwhile; re-run the file",
                                          _membership_key(row))
    return [results[row.line] for row in rows]


class MembershipBatch:
    """What one batch of membership rows names, loaded in six queries."""

    def __init__(self, ctx: SchoolContext):
        self.ctx = ctx
        self.programs: dict = {}       # name or id -> Program
        self.groups: dict = {}         # (program_id, base_name) -> group id
        self.students: dict = {}       # customer_id -> student
        self.snapshots: dict = {}      # (group_id, week) -> the group's week entry
        self.memberships: dict = {}    # (student_id, week) -> the student's week entry
        self.seats_taken: Counter = Counter()  # (group_id, week) -> seats claimed

    @classmethod
    def load(cls, ctx: SchoolContext, rows: list[Row]) -> MembershipBatch:
        batch = cls(ctx)
        school = ctx.school_id
        batch.programs = _programs_by_name(ctx)
        batch.groups = {(g["program_id"], g["base_name"]): g["_id"]
                        for g in Group.objects.for_school(school).filter(
                            base_name__in=list({r.values["group"] for r in rows})).as_pymongo()}
        batch.students = {s["customer_id"]: s for s in ProgramStudent.objects.for_school(
            school).filter(customer_key__in=[f"c:{r.values['customer_id']}" for r in rows])
            .only(*STUDENT_FIELDS).as_pymongo().batch_size(10000)}
        group_ids = list(batch.groups.values())
        batch.snapshots = {(e["group_id"], e["week_number"]): e
                           for e in WeekEntry.objects.for_school(school).filter(
                               kind=GROUP, group_id__in=group_ids).as_pymongo()}
        batch.memberships = {(e["student_id"], e["week_number"]): e
                             for e in WeekEntry.objects.for_school(school).filter(
                                 kind=MEMBER, student_id__in=[
                                     s["_id"] for s in batch.students.values()]).as_pymongo()
                             .batch_size(10000)}
        batch.seats_taken = Counter(
            (c["group_id"], c["week_number"]) for c in SeatClaim.objects.for_school(
                school).filter(group_id__in=group_ids).only(
                "group_id", "week_number").as_pymongo().batch_size(10000))
        return batch

    def plan(self, row: Row):
        """A RowResult (rejected or unchanged), or (the move, the target's week entry)."""
        values, key = row.values, _membership_key(row)
        program = self.programs.get(values["program"])
        if program is None:
            return RowResult(row.line, REJECTED, f"unknown program {values['program']!r}",
                             key)
        week = _week_number(values["week_number"], program)
        if week is None:
            return RowResult(row.line, REJECTED,
                             f"week_number must be 1 to {program.max_weeks}", key)
        group_id = self.groups.get((program.id, values["group"]))
        snapshot = self.snapshots.get((group_id, week))
        if snapshot is None:
            return RowResult(row.line, REJECTED,
                             f"no group {values['group']!r} in week {week} of the program",
                             key)
        student = self.students.get(values["customer_id"])
        if student is None or student["program_id"] != program.id:
            return RowResult(row.line, REJECTED, f"no student with customer_id "
                             f"{values['customer_id']!r} in the program", key)
        current = self.memberships.get((student["_id"], week))
        if current is not None and current["group_id"] == group_id:
            return RowResult(row.line, UNCHANGED, key=key)
        return PlannedMove(student["_id"], week, group_id, current), snapshot

    def place(self, planned: list[tuple[Row, PlannedMove, dict]]) -> set[int]:
        """Claim the seats, switch the memberships, give back what failed: the lines
        placed."""
        service = WeeklyGroups(self.ctx)
        placed: set[int] = set()
        by_program = defaultdict(list)
        for entry in planned:
            by_program[entry[2]["program_id"]].append(entry)
        for program_id, entries in by_program.items():
            placer = Placer(service, program_id, "import")
            seated = self._claim(placer, entries)
            moves = [move for _, move, _ in seated]
            switched = placer.switch(moves)
            placer.release_seats([m for i, m in enumerate(moves) if i not in switched])
            placer.finish([m for i, m in enumerate(moves) if i in switched])
            placed |= {seated[i][0].line for i in switched}
        return placed

    def _claim(self, placer: Placer, entries: list) -> list:
        """The entries whose target group still had the seats (claimed per group)."""
        by_target = defaultdict(list)
        for entry in entries:
            by_target[(entry[1].group_id, entry[1].week)].append(entry)
        seated = []
        for target in by_target.values():
            try:
                placer.claim_seats(target[0][2], [move for _, move, _ in target])
            except Conflict:
                continue
            seated.extend(target)
        return seated


def export_students(ctx: SchoolContext) -> Iterator[dict[str, str]]:
    """Students with a customer_id (the others have no key to import back by)."""
    names = {p.id: p.name for p in Program.objects.for_school(ctx.school_id).only("name")}
    students = ProgramStudent.objects.for_school(ctx.school_id).filter(
        customer_id__ne=None).only(*STUDENT_FIELDS).order_by("customer_id").as_pymongo()
    for student in students.batch_size(10000):
        birth_date = student.get("birth_date")
        yield {"program": names[student["program_id"]], "customer_id": student["customer_id"],
               "name": student["name"], "ability_level": student.get("ability_level") or "",
               "birth_date": birth_date.date().isoformat() if birth_date else "",
               "email": student.get("email") or ""}


def export_group_memberships(ctx: SchoolContext) -> Iterator[dict[str, str]]:
    """Every week's group of every student with a customer_id, by customer_id and week."""
    names = {p.id: p.name for p in Program.objects.for_school(ctx.school_id).only("name")}
    groups = {g["_id"]: g["base_name"] for g in Group.objects.for_school(ctx.school_id).only(
        "base_name").as_pymongo()}
    customers = {s["_id"]: s["customer_id"] for s in ProgramStudent.objects.for_school(
        ctx.school_id).filter(customer_id__ne=None).only("customer_id").as_pymongo()
        .batch_size(10000)}
    memberships = WeekEntry.objects.for_school(ctx.school_id).filter(kind=MEMBER).only(
        "program_id", "week_number", "group_id", "student_id").as_pymongo().batch_size(10000)
    rows = [{"program": names[m["program_id"]], "week_number": str(m["week_number"]),
             "group": groups[m["group_id"]], "customer_id": customers[m["student_id"]]}
            for m in memberships if m["student_id"] in customers]
    yield from sorted(rows, key=lambda r: (r["customer_id"], int(r["week_number"])))


def _programs_by_name(ctx: SchoolContext) -> dict:
    programs = list(Program.objects.for_school(ctx.school_id))
    return {**{str(p.id): p for p in programs}, **{p.name: p for p in programs}}


def _parse_date(text: str | None) -> datetime | None:
    return datetime.strptime(text, "%Y-%m-%d") if text else None


def _week_number(text: str, program: Program) -> int | None:
    try:
        week = int(text)
    except ValueError:
        return None
    return week if 1 <= week <= program.max_weeks else None


def _membership_key(row: Row) -> str:
    values = row.values
    return f"{values['program']}/{values['week_number']}/{values['customer_id']}"


def _bulk_upsert(collection, operations: list) -> tuple[dict[int, str], dict[int, ObjectId]]:
    """Apply the batch of upserts: the operations that failed (by index) with the reason,
    and the ids of the documents it created (by index)."""
    if not operations:
        return {}, {}
    try:
        return {}, collection.bulk_write(operations, ordered=False).upserted_ids
    except BulkWriteError as exc:
        failed = {error["index"]: ("customer_id taken meanwhile"
                                   if error.get("code") == DUPLICATE_KEY
                                   else f"not written: {error.get('errmsg', 'database error')}")
                  for error in exc.details.get("writeErrors", [])}
        return failed, {u["index"]: u["_id"] for u in exc.details.get("upserted", [])}
    try:
        collection.bulk_write(operations, ordered=False)
    except BulkWriteError as exc:
        return {error["index"]: ("customer_id taken meanwhile"
                                 if error.get("code") == DUPLICATE_KEY
                                 else f"not written: {error.get('errmsg', 'database error')}")
                for error in exc.details.get("writeErrors", [])}
    return {}
