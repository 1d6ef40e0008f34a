"""The `students` and `group-memberships` kinds of `rota import` (see service/imports.py).
Programs are named by name (or id), groups by base name, students by customer_id.

Both are idempotent and safe to run twice at once on the same file: students are inserted
(a unique index on the customer key refuses the second writer, whose rows are then compared
with what the first wrote) or updated by id; memberships are applied to each week touched by
a batch in one compare-and-set of its document, with the move rules.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from functools import partial

from bson import ObjectId
from pymongo import UpdateOne

from documents.base import utcnow
from documents.connection import insert_unique
from documents.weekly_groups import Group, Program, ProgramStudent
from service import audit
from service.context import SchoolContext
from service.imports import CREATED, REJECTED, UNCHANGED, UPDATED, Row, RowResult
from service.weekly_groups_changes import record_change_set
from service.weekly_groups_weeks import (
    STUDENT_FIELDS,
    WEEK_FIELDS,
    WeekChange,
    WeeklyService,
    add_groups,
    group_snapshot,
    weeks,
)

ENTITY = "program_student"
IN_CHUNK = 100
MAX_GROUP_SIZE = 200

# ------------------------------------------------------------------------- students


def import_students(ctx: SchoolContext, rows: list[Row], dry_run: bool) -> list[RowResult]:
    """Upsert program students by customer_id. Every valid row is first inserted: the unique
    index on the customer key refuses those that exist (or that a parallel run inserted
    meanwhile), which are then read and compared, and updated by id when they differ. Round
    trips per batch: the programs, the insert, the audit; for rows that exist, the reads of
    them and one bulk update."""
    batch = StudentBatch(ctx, rows)
    if dry_run:
        batch.plan(students_by_key(ctx, [batch.key_of(row) for row in rows]))
        return batch.results()
    batch.plan({})
    refused = insert_unique(ProgramStudent._get_collection(), [d for _, d in batch.inserts])
    if refused:
        taken = [batch.inserts[index][0] for index in refused]
        batch.inserts = [entry for index, entry in enumerate(batch.inserts)
                         if index not in refused]
        batch.replan(taken)
    batch.write_updates()
    audit.record_many(batch.events())
    return batch.results()


def students_by_key(ctx: SchoolContext, keys: list[str], *fields: str) -> dict:
    """customer_key -> the stored student, for these keys. In chunks: the embedded server's
    `$in` costs grow with the square of the list (1,000 keys: 2 s; 10 x 100 keys: 0.3 s);
    MongoDB answers either way."""
    found = {}
    for start in range(0, len(keys), IN_CHUNK):
        query = ProgramStudent.objects.for_school(ctx.school_id).filter(
            customer_key__in=keys[start:start + IN_CHUNK])
        found.update((s["customer_key"], s) for s in (query.only(*fields) if fields else query)
                     .as_pymongo())
    return found


class StudentBatch:
    """One batch of student rows: planned against the stored students, written in bulk."""

    def __init__(self, ctx: SchoolContext, rows: list[Row]):
        self.ctx = ctx
        self.rows = rows
        self.programs = _programs_by_name(ctx)
        self.outcomes: dict[int, RowResult] = {}
        self.inserts: list[tuple[Row, dict]] = []
        self.updates: list[tuple[Row, dict, dict]] = []  # row, stored, changes

    @staticmethod
    def key_of(row: Row) -> str:
        return f"c:{row.values['customer_id']}"

    def plan(self, stored: dict, rows: list[Row] | None = None) -> None:
        seen: set[str] = set()
        for row in rows if rows is not None else self.rows:
            outcome = self._plan_row(row, stored, seen)
            if isinstance(outcome, RowResult):
                self.outcomes[row.line] = outcome

    def replan(self, taken: list[Row]) -> None:
        """The rows whose insert a unique index refused, against what is stored now."""
        inserted = len(self.inserts)
        self.plan(students_by_key(self.ctx, [self.key_of(row) for row in taken]), taken)
        for row, _ in self.inserts[inserted:]:  # refused, yet gone again: leave to a re-run
            self.outcomes[row.line] = RowResult(row.line, REJECTED, "customer_id taken "
                                                "meanwhile; re-run the file",
                                                row.values["customer_id"])
        del self.inserts[inserted:]

    def _plan_row(self, row: Row, stored: dict, seen: set):
        values, key = row.values, row.values["customer_id"]
        program = self.programs.get(values["program"])
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
        # An optional column the file does not have leaves the stored field as it is.
        wanted = {f: v for f, v in wanted.items() if f == "name" or row.gives(f)}
        before = stored.get(self.key_of(row))
        if before is None:
            self.inserts.append((row, {
                "_id": ObjectId(), "school_id": self.ctx.school_id, "program_id": program.id,
                "customer_id": key, "customer_key": self.key_of(row), **wanted,
                "created_at": utcnow()}))
            return None
        if before["program_id"] != program.id:
            return RowResult(row.line, REJECTED,
                             "customer_id belongs to a student of another program", key)
        changes = {f: v for f, v in wanted.items() if before.get(f) != v}
        if not changes:
            return RowResult(row.line, UNCHANGED, key=key)
        self.updates.append((row, before, changes))
        return None

    def write_updates(self) -> None:
        if self.updates:
            ProgramStudent._get_collection().bulk_write([
                UpdateOne({"_id": before["_id"], "school_id": self.ctx.school_id},
                          {"$set": changes}) for _, before, changes in self.updates],
                ordered=False)

    def events(self) -> list:
        """One event naming the students the batch created, one per student it updated."""
        actor, school_id = self.ctx.actor, self.ctx.school_id
        created = [audit.bulk_event(actor, school_id, "import_create", ENTITY,
                                    [document["_id"] for _, document in self.inserts])
                   ] if self.inserts else []
        return created + [audit.audit_event(
            actor, school_id, "import_update", ENTITY, before["_id"],
            before={f: before.get(f) for f in changes},
            after={"customer_id": before["customer_id"], **changes})
            for _, before, changes in self.updates]

    def results(self) -> list[RowResult]:
        outcomes = dict(self.outcomes)
        for row, _ in self.inserts:
            outcomes[row.line] = RowResult(row.line, CREATED, key=row.values["customer_id"])
        for row, _, _ in self.updates:
            outcomes[row.line] = RowResult(row.line, UPDATED, key=row.values["customer_id"])
        return [outcomes[row.line] for row in self.rows]


# ------------------------------------------------------------------------- memberships

def import_group_memberships(ctx: SchoolContext, rows: list[Row],
                             dry_run: bool) -> list[RowResult]:
    """Place students in groups per week with the move rules: a group is never overfilled
    and a student is never in two groups in a week. Capacity is checked on the week as the
    whole batch leaves it (all rows of a week come in one batch), so a file swapping two
    students between two full groups is applied as a swap; rows beyond a group's seats are
    rejected, the last first. An empty `group` takes the student out of their group; a
    `group` the program lacks is created when the row gives its `max_size`. Round trips per
    batch: the programs, the groups, the students (in chunks), the groups created, then per
    week one read and one compare-and-set, then the move log, the change set and the audit."""
    batch = MembershipBatch(ctx, rows)
    by_week: dict[tuple, list] = defaultdict(list)
    for row in rows:
        outcome = batch.resolve(row)
        if isinstance(outcome, RowResult):
            batch.results[row.line] = outcome
        else:
            by_week[(outcome[0], outcome[1])].append((row, *outcome[2:]))
    service = WeeklyService(ctx)
    if not dry_run:
        batch.create_groups(service)
    records: list[dict] = []
    for (program_id, week), placements in by_week.items():
        change, plan = WeekChange(service, program_id, week, "import"), partial(
            batch.apply, placements)
        if dry_run:
            change.plan_on(service.load_week(program_id, week), plan)
        else:
            change.run(plan)
            record_change_set(service, program_id, "import", [change])
            records += change.records
    if records:  # one event naming the students placed (the move log has each change)
        audit.record_many([audit.bulk_event(ctx.actor, ctx.school_id, "import", ENTITY,
                                            dict.fromkeys(r["student_id"] for r in records))])
    return [batch.results[row.line] for row in rows]


class MembershipBatch:
    """What one batch of membership rows names: its programs, groups and students."""

    def __init__(self, ctx: SchoolContext, rows: list[Row]):
        school = ctx.school_id
        self.results: dict[int, RowResult] = {}
        self.programs = _programs_by_name(ctx)
        self.groups = {(g["program_id"], g["base_name"]): g for g in Group.objects.for_school(
            school).filter(base_name__in=list({r.values.get("group", "") for r in rows}))
            .as_pymongo()}
        self.students = {s["customer_id"]: s for s in students_by_key(
            ctx, [f"c:{r.values['customer_id']}" for r in rows], "customer_key",
            *STUDENT_FIELDS).values()}
        self.new_groups: dict[tuple, dict] = {}  # (program id, base name) -> group to create

    def resolve(self, row: Row):
        """A RowResult (rejected), or (program id, week, group or None, student)."""
        values, key = row.values, _membership_key(row)
        program = self.programs.get(values["program"])
        if program is None:
            return RowResult(row.line, REJECTED, f"unknown program {values['program']!r}",
                             key)
        week = _week_number(values["week_number"], program)
        if week is None:
            return RowResult(row.line, REJECTED,
                             f"week_number must be 1 to {program.max_weeks}", key)
        student = self.students.get(values["customer_id"])
        if student is None or student["program_id"] != program.id:
            return RowResult(row.line, REJECTED, f"no student with customer_id "
                             f"{values['customer_id']!r} in the program", key)
        if (student.get("first_week") or 1) > week:
            return RowResult(row.line, REJECTED, f"the student is not yet enrolled in week "
                             f"{week} (joins in week {student['first_week']})", key)
        if not row.gives("group"):
            return RowResult(row.line, REJECTED, "the file has no group column", key)
        name = values.get("group")
        if not name:  # an empty group: out of their group that week
            return program.id, week, None, student["_id"]
        group = self.groups.get((program.id, name)) or self._new_group(program, row)
        if isinstance(group, RowResult):
            return group
        return program.id, week, group, student["_id"]

    def _new_group(self, program: Program, row: Row):
        """The group a row with `max_size` creates (once per batch), else a rejection."""
        name, size = row.values["group"], row.values.get("max_size")
        if not size:
            return RowResult(row.line, REJECTED, f"no group {name!r} in the program (give "
                             f"max_size to create it)", _membership_key(row))
        if not size.isdigit() or not 1 <= int(size) <= MAX_GROUP_SIZE:
            return RowResult(row.line, REJECTED, f"bad max_size {size!r}: 1 to "
                             f"{MAX_GROUP_SIZE}", _membership_key(row))
        return self.new_groups.setdefault((program.id, name), {
            "_id": ObjectId(), "school_id": program.school_id, "program_id": program.id,
            "base_name": name, "ability_level": None, "max_size": int(size),
            "generated": False, "created_at": utcnow(), "max_weeks": program.max_weeks,
            "new": True})

    def create_groups(self, service: WeeklyService) -> None:
        """The groups the batch names with a `max_size`, in every week of their program (a
        parallel run creating one first: its group is used). Before the week changes, as
        `POST groups` does: a crash in between leaves an empty group."""
        if not self.new_groups:
            return
        documents = [{k: v for k, v in g.items() if k not in ("max_weeks", "new")}
                     for g in self.new_groups.values()]
        insert_unique(Group._get_collection(), documents)
        stored = {(g["program_id"], g["base_name"]): g for g in Group.objects.for_school(
            service.school_id).filter(base_name__in=[g["base_name"] for g in documents])
            .as_pymongo()}
        for key, wanted in self.new_groups.items():
            wanted.update(_id=stored[key]["_id"], max_size=stored[key]["max_size"], new=False)
            add_groups(service.school_id, key[0], [stored[key]],
                       range(1, wanted["max_weeks"] + 1))
        audit.record_many([audit.bulk_event(service.actor, service.school_id, "import_create",
                                            "weekly_group", [g["_id"] for g in documents])])

    def apply(self, placements: list, week_doc: dict, change: WeekChange) -> None:
        """The week's rows on the document as read; their results (again when the
        compare-and-set lost a race and plans anew). Capacity is that of the week as the
        batch leaves it: seats freed by rows moving students out count for rows moving
        others in; while a group would end over its size, its last row in is rejected."""
        week = week_doc["week_number"]
        wanted = []  # (row, group id, student id) that move someone
        for row, group, student_id in placements:
            key = _membership_key(row)
            group_id = group["_id"] if group else None
            if group is not None and group.get("new"):
                change.add_group(group_snapshot(group))  # a dry run: it is not created yet
            if group is not None and group_id not in change.indexes:
                self.results[row.line] = RowResult(
                    row.line, REJECTED, f"group {row.values['group']!r} starts in a later "
                    f"week than week {week}", key)
            elif change.current.get(student_id) == group_id:
                self.results[row.line] = RowResult(row.line, UNCHANGED, key=key)
            else:
                wanted.append((row, group_id, student_id))
        for row, group_id, student_id in self._fitting(wanted, change, week):
            status = UPDATED if change.current.get(student_id) else CREATED
            change.place(student_id, group_id)
            self.results[row.line] = RowResult(row.line, status, key=_membership_key(row))

    def _fitting(self, wanted: list, change: WeekChange, week: int) -> list:
        """The rows that fit once the batch is applied; the others rejected (the last row
        into an overfilled group first, until every group fits)."""
        count = {g["group_id"]: len(g["members"]) for g in change.groups}
        entering = defaultdict(list)
        for entry in wanted:
            row, group_id, student_id = entry
            previous = change.current.get(student_id)
            if previous is not None:
                count[previous] -= 1
            if group_id is not None:
                count[group_id] += 1
                entering[group_id].append(entry)
        rejected = set()
        over = [g for g in count if count[g] > change.group(g)["max_size"]]
        while over:
            group_id = over.pop()
            while count[group_id] > change.group(group_id)["max_size"] and entering[group_id]:
                row, _, student_id = entering[group_id].pop()
                rejected.add(row.line)
                self.results[row.line] = RowResult(row.line, REJECTED, f"group "
                                                   f"{row.values['group']!r} is full in week "
                                                   f"{week}", _membership_key(row))
                count[group_id] -= 1
                stays_in = change.current.get(student_id)
                if stays_in is not None:
                    count[stays_in] += 1
                    if count[stays_in] > change.group(stays_in)["max_size"]:
                        over.append(stays_in)
        return [entry for entry in wanted if entry[0].line not in rejected]


# ------------------------------------------------------------------------- exports

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
    customers = {s["_id"]: s["customer_id"] for s in ProgramStudent.objects.for_school(
        ctx.school_id).filter(customer_id__ne=None).only("customer_id").as_pymongo()
        .batch_size(10000)}
    rows = [{"program": names[week_doc["program_id"]],
             "week_number": str(week_doc["week_number"]), "group": group["base_name"],
             "customer_id": customers[member["student_id"]]}
            for week_doc in weeks().find({"school_id": ctx.school_id},
                                         WEEK_FIELDS).batch_size(100)
            for group in week_doc["groups"] for member in group["members"]
            if member["student_id"] in customers]
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
