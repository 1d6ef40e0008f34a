"""The `assignments` import kind: the regular timetable from the school's planning system.

Rows are classes; the rows of one (staff, day_of_week, period_number) are the classes of one
assignment. Every row of a slot (day_of_week, period_number) arrives in the same batch
(ImportKind.group_by), so a slot is written once per file. The same rules as the API hold
(service/timetable_assignments.py): a staff member, a class or a room is booked once per slot
unless the school allows overlapping. A file is imported as:

  1. read, once for the whole file (ImportKind.preload), the settings, the school's staff
     (and whoever else the rows name) and the slots of the rows' days and periods (3 or 4
     queries);
  2. plan each group against the slot as the snapshot holds it (earlier groups and batches
     included): created, updated, unchanged or rejected;
  3. write every slot the batch changes in one unordered bulk_write: one conditional update
     per slot, filtered on the version read (`$push` of the new assignments, or `$set` of the
     whole list when one changed), or the insert of a slot that did not exist. Each update
     also sets `last_import` to the batch's id: the bulk result only counts matches, so that
     is how a missed filter is told apart. A slot written meanwhile by someone else fails its
     filter: its groups are rejected ("re-run") and the snapshot re-reads it;
  4. record the audit events in one insert: one for the batch's new assignments, one per
     changed assignment.

A new assignment's id is derived from its staff slot, so a re-run after a run killed midway
finds what that run wrote under the same ids and reports it unchanged: the end state is the
one of a single clean run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from bson import ObjectId
from pymongo import InsertOne, UpdateOne
from pymongo.errors import BulkWriteError

from documents.accounts import User
from documents.base import utcnow
from documents.timetable import TimetableSettings, booking_key
from service import audit
from service.context import SchoolContext
from service.imports import CREATED, UNCHANGED, UPDATED, Row, RowResult, rejected
from service.timetable import settings_for_reading
from service.timetable_slots import slots

ENTITY = "timetable_assignment"
IMPORTED_TYPES = ("regular", "admin_override", "peer_swap")
# A file without these columns leaves them as stored.
OPTIONAL_CLASS_COLUMNS = ("room_number", "student_count")


def preload_assignments(ctx: SchoolContext, rows: list[Row], dry_run: bool
                        ) -> TimetableSnapshot:
    """What every batch of the file needs, read once (see ImportKind.preload)."""
    return TimetableSnapshot.load(ctx, rows)


def import_assignments(ctx: SchoolContext, rows: list[Row], dry_run: bool,
                       snapshot: TimetableSnapshot | None = None) -> list[RowResult]:
    snapshot = snapshot or preload_assignments(ctx, rows, dry_run)
    now = utcnow()
    plans = [snapshot.plan(group, now) for group in _groups(rows)]
    if not dry_run:
        snapshot.write([p for p in plans if p.written])
    return [result for plan in plans for result in plan.results()]


def _groups(rows: list[Row]) -> list[list[Row]]:
    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        slot = (row.values["staff"].lower(), row.values["day_of_week"],
                row.values["period_number"])
        groups.setdefault(slot, []).append(row)
    return list(groups.values())


def assignment_id_for(school_id, staff_id, day_of_week: int, period_id) -> ObjectId:
    """The id of the assignment the import creates for a staff slot: the same on every run."""
    digest = hashlib.sha256(f"{school_id}:{staff_id}:{day_of_week}:{period_id}".encode())
    return ObjectId(digest.digest()[:12])


# Documents are built as plain dicts shaped like `Document.to_mongo()`: constructing a
# MongoEngine document per row costs more than writing it (tests compare the shapes).

def assignment_document(assignment_id, staff_id, classes: list[dict], now) -> dict:
    """A new regular assignment as `Assignment(...).to_mongo()` stores it in its slot."""
    return {"id": assignment_id, "staff_id": staff_id, "classes": classes,
            "assignment_type": "regular", "is_locked": False, "version": 0,
            "created_at": now, "updated_at": now}


def slot_document(school_id, day_of_week: int, period_id, assignments: list[dict],
                  now) -> dict:
    """A new slot as `TimetableSlot(...).to_mongo()` stores it."""
    return {"_id": ObjectId(), "school_id": school_id, "created_at": now,
            "day_of_week": day_of_week, "period_id": period_id, "assignments": assignments,
            "version": 0}


def class_keys(classes: list[dict]) -> set[tuple[str, str]]:
    """`booking_keys` of stored class dicts (the same keys; tests compare the two)."""
    keys = {("class", booking_key(c["class_id"])) for c in classes}
    rooms = {booking_key(c["room_number"]) for c in classes if c.get("room_number")}
    return keys | {("room", room) for room in rooms if room}


@dataclass
class SlotPlan:
    """One group of rows = one assignment: what is stored, what the file wants, and why not."""

    rows: list[Row]
    key: str
    reason: str | None = None
    reason_line: int | None = None
    slot: tuple | None = None  # (day_of_week, period_id)
    document: dict | None = None  # the wanted assignment
    keys: set[tuple[str, str]] = field(default_factory=set)  # the classes and rooms it books
    stored: dict | None = None
    status: str | None = None

    def reject(self, reason: str, line: int | None = None) -> None:
        if self.reason is None:
            self.reason, self.reason_line = reason, line

    def line_of(self, kind: str, key: str) -> int:
        """The first row naming this class or room."""
        column = "class_id" if kind == "class" else "room_number"
        return next(row.line for row in self.rows
                    if booking_key(row.values.get(column, "")) == key)

    @property
    def live(self) -> bool:
        return self.reason is None

    @property
    def written(self) -> bool:
        return self.live and self.status in (CREATED, UPDATED)

    def results(self) -> Iterator[RowResult]:
        for row in self.rows:
            if self.live:
                yield RowResult(row.line, self.status, key=self.key)
            elif self.reason_line in (None, row.line):
                yield rejected(row, self.reason, self.key)
            else:
                yield rejected(row, f"its assignment is rejected: line {self.reason_line}: "
                                    f"{self.reason}", self.key)


class PlannedSlot:
    """A slot as the file has planned it so far, with its assignments found by staff, by id
    and by the classes and rooms they book (a slot holds hundreds in a large school)."""

    def __init__(self, document: dict):
        self.document = document
        self.position: dict[ObjectId, int] = {}
        self.by_staff: dict[ObjectId, dict] = {}
        self.booked: dict[tuple[str, str], set] = {}
        for index, assignment in enumerate(document["assignments"]):
            self._index(index, assignment, class_keys(assignment.get("classes", [])))

    def _index(self, index: int, assignment: dict, keys: set[tuple[str, str]]) -> None:
        self.position[assignment["id"]] = index
        self.by_staff[assignment["staff_id"]] = assignment
        for key in keys:
            self.booked.setdefault(key, set()).add(assignment["id"])

    def held_by(self, staff_id, assignment_id) -> dict | None:
        """The staff member's assignment in the slot, or the one carrying this id."""
        found = self.by_staff.get(staff_id)
        if found is None and assignment_id in self.position:
            found = self.document["assignments"][self.position[assignment_id]]
        return found

    def clashes(self, assignment: dict, keys: set[tuple[str, str]]) -> list[tuple[str, str]]:
        """The classes and rooms (`keys`) of `assignment` that another assignment books."""
        return sorted(key for key in keys if self.booked.get(key, set()) - {assignment["id"]})

    def put(self, assignment: dict, keys: set[tuple[str, str]]) -> None:
        """Add an assignment booking `keys`, or replace the one with its id."""
        assignments = self.document["assignments"]
        index = self.position.get(assignment["id"])
        if index is None:
            assignments.append(assignment)
            index = len(assignments) - 1
        else:
            for key in class_keys(assignments[index].get("classes", [])):
                self.booked[key].discard(assignment["id"])
            assignments[index] = assignment
        self._index(index, assignment, keys)


class TimetableSnapshot:
    """The settings, the staff and the slots the rows name, read up front (3 or 4 queries).
    Planning applies each accepted group to the snapshot's copy of its slot, so later groups
    and batches are checked against it; every write is still a conditional update on the
    version read, so a change made meanwhile by someone else is refused, never overwritten."""

    def __init__(self, ctx: SchoolContext, settings: TimetableSettings, staff: list[dict]):
        self.ctx = ctx
        self.settings = settings
        self.periods = {p.period_number: p.id for p in settings.periods if p.is_active}
        self.working_days = set(settings.working_days)
        self.overlapping = settings.allow_overlapping_assignments
        self.staff_by_ref: dict[str, dict] = {}
        self._add_people(staff)
        # (day, period_id) -> the slot with the plans applied, and (its _id, its version in
        # the database) for the slots that are stored
        self.planned: dict[tuple, PlannedSlot] = {}
        self.stored: dict[tuple, tuple[ObjectId, int]] = {}
        self.first_line_of_slot: dict[tuple, int] = {}

    @classmethod
    def load(cls, ctx: SchoolContext, rows: list[Row]) -> TimetableSnapshot:
        snapshot = cls(ctx, settings_for_reading(ctx.school_id), _people(
            ctx.school_id, {"role": "staff"}))
        unknown = {row.values["staff"] for row in rows if snapshot._staff(
            row.values["staff"]) is None}
        if unknown:  # named, but not staff (a student, an admin) or no one: say which
            snapshot._add_people(_people(ctx.school_id, {"$or": [
                {"external_id": {"$in": sorted(unknown)}},
                {"email": {"$in": sorted(r.lower() for r in unknown)}}]}))
        snapshot._load_slots(rows)
        return snapshot

    def _add_people(self, people: list[dict]) -> None:
        self.staff_by_ref.update({p["email"]: p for p in people})
        self.staff_by_ref.update({p["external_id"]: p for p in people if p.get("external_id")})

    def _load_slots(self, rows: list[Row]) -> None:
        """The stored slots of the rows' days and periods."""
        days = {_int(row.values["day_of_week"]) for row in rows} - {None}
        numbers = {_int(row.values["period_number"]) for row in rows}
        periods = [self.periods[n] for n in numbers if n in self.periods]
        query = {"day_of_week": {"$in": sorted(days)}, "period_id": {"$in": periods}}
        for found in slots().find({"school_id": self.ctx.school_id, **query}).batch_size(10000):
            self._keep(found)

    def _keep(self, found: dict) -> None:
        key = (found["day_of_week"], found["period_id"])
        self.planned[key] = PlannedSlot(found)
        self.stored[key] = (found["_id"], found.get("version", 0))

    def _staff(self, ref: str) -> dict | None:
        return self.staff_by_ref.get(ref) or self.staff_by_ref.get(ref.lower())

    # planning

    def plan(self, rows: list[Row], now) -> SlotPlan:
        first = rows[0].values
        plan = SlotPlan(rows, f"{first['staff']}/{first['day_of_week']}/{first['period_number']}")
        staff_slot = self._check_slot(plan, first)
        classes = self._check_classes(plan)
        if not plan.live:
            return plan
        first_line = self.first_line_of_slot.setdefault(staff_slot, rows[0].line)
        if first_line != rows[0].line:
            plan.reject(f"the same staff slot is on line {first_line} (staff named differently)")
            return plan
        staff_id, day, period_id = staff_slot
        plan.slot = (day, period_id)
        if plan.slot not in self.planned:
            self.planned[plan.slot] = PlannedSlot(slot_document(
                self.ctx.school_id, day, period_id, [], now))
        slot = self.planned[plan.slot]
        derived = assignment_id_for(self.ctx.school_id, *staff_slot)
        plan.stored = slot.held_by(staff_id, derived)
        classes = _with_unsent_columns_kept(plan.rows, classes, plan.stored)
        plan.document = assignment_document(plan.stored["id"] if plan.stored else derived,
                                            staff_id, classes, now)
        plan.keys = class_keys(classes)
        self._check_stored(plan)
        if plan.live:
            self._check_free(plan, slot)
        if plan.live:
            plan.status = self._status(plan)
            self._apply(plan, slot)
        return plan

    def _check_slot(self, plan: SlotPlan, values: dict) -> tuple | None:
        staff = self._staff(values["staff"])
        day = _int(values["day_of_week"])
        number = _int(values["period_number"])
        if staff is None:
            plan.reject(f"unknown staff {values['staff']!r}")
        elif staff["role"] != "staff" or not staff.get("is_active", True):
            plan.reject(f"{values['staff']} is not an active staff member")
        elif day is None or not 0 <= day <= 6:
            plan.reject(f"bad day {values['day_of_week']!r}: 0 (Monday) to 6 (Sunday)")
        elif day not in self.working_days:
            plan.reject(f"bad day {day}: not a working day of the school "
                        f"(working days: {', '.join(map(str, self.settings.working_days))})")
        elif number is None or number not in self.periods:
            plan.reject(f"unknown period {values['period_number']!r}")
        else:
            return staff["_id"], day, self.periods[number]
        return None

    @staticmethod
    def _check_classes(plan: SlotPlan) -> list[dict]:
        """The classes as stored (ClassInfo.to_mongo: absent fields left out)."""
        classes, lines_by_class = [], {}
        for row in plan.rows:
            values = row.values
            count = values.get("student_count")
            number = None if count is None else _int(count)
            if count is not None and (number is None or number < 0):
                plan.reject(f"bad student_count {count!r}: a whole number >= 0", row.line)
            class_key = booking_key(values["class_id"])
            if class_key in lines_by_class:
                plan.reject(f"class {values['class_id']!r} is listed twice in this assignment "
                            f"(line {lines_by_class[class_key]})", row.line)
            lines_by_class.setdefault(class_key, row.line)
            entry = {"class_id": values["class_id"], "subject": values["subject"]}
            if values.get("room_number"):
                entry["room_number"] = values["room_number"]
            if number is not None:
                entry["student_count"] = number
            classes.append(entry)
        return classes

    def _check_stored(self, plan: SlotPlan) -> None:
        stored = plan.stored
        if stored is None:
            return
        if stored["staff_id"] != plan.document["staff_id"]:
            plan.reject("this slot's assignment was handed to another staff member (override "
                        "or swap); import it under its current staff member")
        elif stored.get("assignment_type") == "self_allocated" or stored.get("is_locked"):
            plan.reject("the staff member holds a locked self-allocation in this slot")

    def _check_free(self, plan: SlotPlan, slot: PlannedSlot) -> None:
        """No other assignment of the slot (stored, or planned earlier in the file) teaches
        one of the classes or uses one of the rooms, unless the school allows overlapping."""
        if self.overlapping:
            return
        clash = slot.clashes(plan.document, plan.keys)
        if clash:
            plan.reject(_double_booking(*clash[0]), plan.line_of(*clash[0]))

    @staticmethod
    def _status(plan: SlotPlan) -> str:
        if plan.stored is None:
            return CREATED
        if _class_tuples(plan.stored.get("classes", [])) == _class_tuples(
                plan.document["classes"]):
            return UNCHANGED
        return UPDATED

    @staticmethod
    def _apply(plan: SlotPlan, slot: PlannedSlot) -> None:
        """Put the plan into the snapshot's copy of its slot, for the groups after it."""
        if plan.status == CREATED:
            slot.put(plan.document, plan.keys)
        elif plan.status == UPDATED:
            slot.put({**plan.stored, "classes": plan.document["classes"],
                      "version": plan.stored.get("version", 0) + 1,
                      "updated_at": plan.document["updated_at"]}, plan.keys)

    # writing

    def write(self, plans: list[SlotPlan]) -> None:
        """One conditional write per slot the batch changes, all in one round trip."""
        by_slot: dict[tuple, list[SlotPlan]] = {}
        for plan in plans:
            by_slot.setdefault(plan.slot, []).append(plan)
        if not by_slot:
            return
        keys, batch = list(by_slot), ObjectId()
        operations = [self._operation(key, by_slot[key], batch) for key in keys]
        failed = self._bulk_write(operations, keys, batch)
        for key in keys:
            if key in failed:
                for plan in by_slot[key]:
                    plan.reject("the slot changed meanwhile; re-run the import")
            else:
                self._written(key)
        if failed:
            self._reload(failed)
        self._record_audit([p for p in plans if p.live])

    def _operation(self, key: tuple, plans: list[SlotPlan], batch: ObjectId):
        stored, planned = self.stored.get(key), self.planned[key].document
        if stored is None:
            return InsertOne(planned)
        guard = {"_id": stored[0], "school_id": self.ctx.school_id, "version": stored[1]}
        bump = {"$inc": {"version": 1}}
        if all(p.status == CREATED for p in plans):
            return UpdateOne(guard, {"$push": {"assignments": {
                "$each": [p.document for p in plans]}}, "$set": {"last_import": batch}, **bump})
        return UpdateOne(guard, {"$set": {"assignments": planned["assignments"],
                                          "last_import": batch}, **bump})

    def _bulk_write(self, operations: list, keys: list[tuple], batch: ObjectId) -> set[tuple]:
        """The slots whose write failed: a duplicate insert, or an update whose version
        filter matched nothing (found by reading back which slots this batch wrote)."""
        try:
            result = slots().bulk_write(operations, ordered=False)
            errors, matched = [], result.matched_count
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            matched = exc.details.get("nMatched", 0)
        failed = {keys[error["index"]] for error in errors}
        updates = [key for key, op in zip(keys, operations, strict=True)
                   if isinstance(op, UpdateOne)]
        if matched < len(updates):
            ours = {(s["day_of_week"], s["period_id"]) for s in slots().find(
                {"school_id": self.ctx.school_id, "last_import": batch,
                 "_id": {"$in": [self.stored[k][0] for k in updates]}},
                {"day_of_week": 1, "period_id": 1})}
            failed |= set(updates) - ours
        return failed

    def _written(self, key: tuple) -> None:
        planned = self.planned[key].document
        if key in self.stored:
            planned["version"] = self.stored[key][1] + 1
        self.stored[key] = (planned["_id"], planned["version"])

    def _reload(self, keys: set[tuple]) -> None:
        """Forget the snapshot's copy of slots written meanwhile by someone else and read
        them again, for the batches after this one."""
        for key in keys:
            self.stored.pop(key, None)
            self.planned.pop(key, None)
        found = slots().find({"school_id": self.ctx.school_id, "$or": [
            {"day_of_week": day, "period_id": period} for day, period in keys]})
        for slot in found:
            self._keep(slot)

    def _record_audit(self, plans: list[SlotPlan]) -> None:
        """One import_create event naming every assignment the batch created, and one
        import_update event per changed assignment, inserted in one round trip."""
        created = [p.document["id"] for p in plans if p.status == CREATED]
        events = [audit.bulk_event(self.ctx.actor, self.ctx.school_id, "import_create", ENTITY,
                                   created)] if created else []
        events += [audit.audit_event(
            self.ctx.actor, self.ctx.school_id, "import_update", ENTITY, plan.document["id"],
            before={"classes": plan.stored.get("classes", [])},
            after={"classes": plan.document["classes"]})
            for plan in plans if plan.status == UPDATED]
        audit.record_many(events)


def _people(school_id, query: dict) -> list[dict]:
    """The school's users matching `query`, as the import reads them. The staff are read
    by role: an `$in` over hundreds of references costs seconds on the embedded server."""
    return list(User.objects.for_school(school_id).filter(__raw__=query).only(
        "email", "external_id", "role", "is_active").as_pymongo().batch_size(10000))


def _double_booking(kind: str, key: str) -> str:
    return f"double booking: {kind} {key!r} is already taught in this slot by someone else"


def _with_unsent_columns_kept(rows: list[Row], classes: list[dict],
                              stored: dict | None) -> list[dict]:
    """A class column the file lacks (not an empty cell: no column) keeps the stored class's
    value, so a planning system that sends no rooms does not clear them."""
    if stored is None:
        return classes
    before = {booking_key(c["class_id"]): c for c in stored.get("classes", [])}
    kept = []
    for row, entry in zip(rows, classes, strict=True):
        old = before.get(booking_key(entry["class_id"]), {})
        unsent = {column: old[column] for column in OPTIONAL_CLASS_COLUMNS
                  if not row.gives(column) and column in old}
        kept.append({**entry, **unsent})
    return kept


def _class_tuples(classes: list[dict]) -> list[tuple]:
    return [(c.get("class_id"), c.get("subject"), c.get("room_number"), c.get("student_count"))
            for c in classes]


def _int(text: str | None) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def export_assignments(ctx: SchoolContext) -> Iterator[dict[str, str]]:
    """One row per class of every imported-kind assignment on an active period, with the
    staff member's external_id (or email when none). Self-allocations are not exported."""
    settings = settings_for_reading(ctx.school_id)
    numbers = {p.id: p.period_number for p in settings.periods if p.is_active}
    assignments = [{**a, "day_of_week": s["day_of_week"], "period_id": s["period_id"]}
                   for s in slots().find({"school_id": ctx.school_id,
                                          "period_id": {"$in": list(numbers)}}).batch_size(10000)
                   for a in s["assignments"] if a.get("assignment_type") in IMPORTED_TYPES]
    staff = {u["_id"]: u.get("external_id") or u["email"]
             for u in User.objects.for_school(ctx.school_id).filter(
                 id__in=list({a["staff_id"] for a in assignments})).only(
                 "email", "external_id").as_pymongo().batch_size(10000)}
    assignments.sort(key=lambda a: (staff.get(a["staff_id"], ""), a["day_of_week"],
                                    numbers[a["period_id"]]))
    for assignment in assignments:
        if assignment["staff_id"] not in staff:
            continue
        for entry in assignment.get("classes", []):
            count = entry.get("student_count")
            yield {"staff": staff[assignment["staff_id"]],
                   "day_of_week": str(assignment["day_of_week"]),
                   "period_number": str(numbers[assignment["period_id"]]),
                   "class_id": entry["class_id"], "subject": entry["subject"],
                   "room_number": entry.get("room_number") or "",
                   "student_count": "" if count is None else str(count)}
