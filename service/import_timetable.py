"""The `assignments` import kind: the regular timetable from the school's planning system.

Rows are classes; the rows of one (staff, day_of_week, period_number) are the classes of one
assignment and arrive in the same batch (ImportKind.group_by). A batch is written with the
claim protocol of documents/timetable.py, in bulk:

  1. read, once for the whole file (ImportKind.preload), the settings, the staff, the stored
     assignments of the rows' slots and their claims (4 queries);
  2. insert every missing class/room claim of the batch in one unordered insert_many; a
     duplicate is someone else's class or room in that slot (a stale one left by a crash
     older than CLAIM_GRACE_SECONDS is released and retried once);
  3. write the assignments in one unordered bulk_write (version-guarded updates);
  4. delete, in one round trip, the claims of rejected assignments inserted in step 2 and the
     claims no longer backed by a written assignment;
  5. record the audit events in one insert: one for the batch's new assignments, one per
     changed assignment.

A new assignment's id is derived from its staff slot, so claims inserted by a run that was
killed before step 3 carry the id the re-run uses: the re-run adopts them instead of seeing a
double booking, and the end state is the one of a single clean run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from types import SimpleNamespace

from bson import ObjectId
from pymongo import InsertOne, UpdateOne
from pymongo.errors import BulkWriteError

from documents.accounts import User
from documents.base import utcnow
from documents.connection import insert_unique
from documents.timetable import (
    CLAIM_GRACE_SECONDS,
    Assignment,
    RevisionLock,
    SlotClaim,
    TimetableSettings,
    claim_id,
    claim_ids,
    claim_key,
    claim_keys,
)
from service import audit
from service.context import SchoolContext
from service.imports import CREATED, UNCHANGED, UPDATED, Row, RowResult, rejected
from service.timetable import settings_for_reading

ENTITY = "timetable_assignment"
IMPORTED_TYPES = ("regular", "admin_override", "peer_swap")


def preload_assignments(ctx: SchoolContext, rows: list[Row], dry_run: bool
                        ) -> TimetableSnapshot:
    """What every batch of the file needs, read once (see ImportKind.preload)."""
    return TimetableSnapshot.load(ctx, rows, dry_run)


def import_assignments(ctx: SchoolContext, rows: list[Row], dry_run: bool,
                       snapshot: TimetableSnapshot | None = None) -> list[RowResult]:
    snapshot = snapshot or preload_assignments(ctx, rows, dry_run)
    plans = [snapshot.plan(group) for group in _groups(rows)]
    if dry_run:
        snapshot.check_claims_read_only(plans)
    else:
        snapshot.write(plans)
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

def assignment_document(school_id, assignment_id, slot: tuple, classes: list[dict],
                        now) -> dict:
    """A new regular assignment as `Assignment(...).to_mongo()` stores it."""
    staff_id, day, period_id = slot
    return {"_id": assignment_id, "school_id": school_id, "created_at": now,
            "staff_id": staff_id, "period_id": period_id, "day_of_week": day,
            "classes": classes, "assignment_type": "regular", "is_locked": False,
            "version": 0, "updated_at": now}


def claim_document(assignment: dict, kind: str, key: str, now) -> dict:
    """A claim as `claims_for(assignment)` builds it."""
    return {"_id": _claim_id_of(assignment, kind, key), "school_id": assignment["school_id"],
            "created_at": now, "kind": kind, "key": key, "assignment_id": assignment["_id"]}


def class_keys(classes: list[dict]) -> set[tuple[str, str]]:
    """`claim_keys` of stored class dicts."""
    return claim_keys(_class_infos(classes))


def _class_infos(classes: list[dict]) -> list[SimpleNamespace]:
    """Stored class dicts shaped like ClassInfo, for the claim helpers of documents/."""
    return [SimpleNamespace(class_id=c["class_id"], room_number=c.get("room_number"))
            for c in classes]


@dataclass
class SlotPlan:
    """One group of rows = one assignment: what is stored, what the file wants, and why not."""

    rows: list[Row]
    key: str
    reason: str | None = None
    reason_line: int | None = None
    document: dict | None = None  # the wanted assignment (a new one's whole document)
    stored: dict | None = None
    held: dict[tuple[str, str], dict] = field(default_factory=dict)  # our claims by (kind, key)
    status: str | None = None
    inserted_claim_ids: list[str] = field(default_factory=list)

    def reject(self, reason: str, line: int | None = None) -> None:
        if self.reason is None:
            self.reason, self.reason_line = reason, line

    def line_of(self, kind: str, key: str) -> int:
        """The first row naming this class or room."""
        column = "class_id" if kind == "class" else "room_number"
        return next(row.line for row in self.rows
                    if claim_key(row.values.get(column, "")) == key)

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


class TimetableSnapshot:
    """The stored state the rows name, read up front in four queries (five in a dry run):
    the settings, the staff, their assignments in the rows' slots and those assignments'
    claims. Each slot belongs to one group of rows, so a batch never needs what another
    batch wrote; every write is still guarded (unique claims, versions), so a change made
    meanwhile by someone else is refused, never overwritten."""

    def __init__(self, ctx: SchoolContext, settings: TimetableSettings, staff: list[dict]):
        self.ctx = ctx
        self.settings = settings
        self.periods = {p.period_number: p for p in settings.periods if p.is_active}
        self.staff_by_ref = {s["email"]: s for s in staff}
        self.staff_by_ref.update({s["external_id"]: s for s in staff if s.get("external_id")})
        self.stored_by_slot: dict[tuple, dict] = {}
        self.stored_by_id: dict[ObjectId, dict] = {}
        self.claims_by_assignment: dict[ObjectId, list[dict]] = {}
        self.taken: set[str] = set()  # dry run: the id of every claim
        self.first_line_of_slot: dict[tuple, int] = {}

    @classmethod
    def load(cls, ctx: SchoolContext, rows: list[Row], dry_run: bool) -> TimetableSnapshot:
        refs = {row.values["staff"] for row in rows}
        staff = User.objects.for_school(ctx.school_id).filter(
            __raw__={"$or": [{"external_id": {"$in": list(refs)}},
                             {"email": {"$in": [r.lower() for r in refs]}}]}).only(
            "email", "external_id", "role", "is_active").as_pymongo()
        snapshot = cls(ctx, settings_for_reading(ctx.school_id), list(staff.batch_size(10000)))
        snapshot._load_assignments(rows)
        if dry_run:
            snapshot.taken = {c["_id"] for c in SlotClaim._get_collection().find(
                {"school_id": ctx.school_id}, {"_id": 1}).batch_size(10000)}
        return snapshot

    def _load_assignments(self, rows: list[Row]) -> None:
        """The stored assignments of the rows' staff (or carrying the ids the import would
        give new ones), and every claim of those assignments."""
        slots = {slot for slot in map(self._slot_of, rows) if slot}
        if not slots:
            return
        derived = [assignment_id_for(self.ctx.school_id, *slot) for slot in slots]
        found = Assignment._get_collection().find(
            {"school_id": self.ctx.school_id,
             "$or": [{"staff_id": {"$in": list({s[0] for s in slots})}},
                     {"_id": {"$in": derived}}]}).batch_size(10000)
        for stored in found:
            self.stored_by_id[stored["_id"]] = stored
            self.stored_by_slot[(stored["staff_id"], stored["day_of_week"],
                                 stored["period_id"])] = stored
        claims = SlotClaim._get_collection().find(
            {"school_id": self.ctx.school_id,
             "assignment_id": {"$in": list(self.stored_by_id) + derived}}).batch_size(10000)
        for claim in claims:
            self.claims_by_assignment.setdefault(claim["assignment_id"], []).append(claim)

    def _slot_of(self, row: Row) -> tuple | None:
        staff = self._staff(row.values["staff"])
        period = self.periods.get(_int(row.values["period_number"]))
        day = _int(row.values["day_of_week"])
        if staff is None or period is None or day is None:
            return None
        return staff["_id"], day, period.id

    def _staff(self, ref: str) -> dict | None:
        return self.staff_by_ref.get(ref) or self.staff_by_ref.get(ref.lower())

    # planning

    def plan(self, rows: list[Row]) -> SlotPlan:
        first = rows[0].values
        plan = SlotPlan(rows, f"{first['staff']}/{first['day_of_week']}/{first['period_number']}")
        slot = self._check_slot(plan, first)
        classes = self._check_classes(plan)
        if not plan.live:
            return plan
        first_line = self.first_line_of_slot.setdefault(slot, rows[0].line)
        if first_line != rows[0].line:
            plan.reject(f"the same staff slot is on line {first_line} (staff named differently)")
            return plan
        plan.stored = self.stored_by_slot.get(slot)
        assignment_id = (plan.stored["_id"] if plan.stored
                         else assignment_id_for(self.ctx.school_id, *slot))
        plan.document = assignment_document(self.ctx.school_id, assignment_id, slot, classes,
                                            utcnow())
        self._check_stored(plan)
        if plan.live:
            plan.held = {(c["kind"], c["key"]): c
                         for c in self.claims_by_assignment.get(assignment_id, [])}
            plan.status = self._status(plan)
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
        elif day not in self.settings.working_days:
            plan.reject(f"bad day {day}: not a working day of the school "
                        f"(working days: {', '.join(map(str, self.settings.working_days))})")
        elif number is None or number not in self.periods:
            plan.reject(f"unknown period {values['period_number']!r}")
        else:
            return staff["_id"], day, self.periods[number].id
        return None

    @staticmethod
    def _check_classes(plan: SlotPlan) -> list[dict]:
        """The classes as stored (ClassInfo.to_mongo: absent fields left out)."""
        classes, lines_by_class = [], {}
        for row in plan.rows:
            values = row.values
            count = values.get("student_count")
            if count is not None and (_int(count) is None or _int(count) < 0):
                plan.reject(f"bad student_count {count!r}: a whole number >= 0", row.line)
            class_key = claim_key(values["class_id"])
            if class_key in lines_by_class:
                plan.reject(f"class {values['class_id']!r} is listed twice in this assignment "
                            f"(line {lines_by_class[class_key]})", row.line)
            lines_by_class.setdefault(class_key, row.line)
            entry = {"class_id": values["class_id"], "subject": values["subject"]}
            if values.get("room_number"):
                entry["room_number"] = values["room_number"]
            if count is not None and _int(count) is not None:
                entry["student_count"] = _int(count)
            classes.append(entry)
        return classes

    def _check_stored(self, plan: SlotPlan) -> None:
        stored = plan.stored or self.stored_by_id.get(plan.document["_id"])
        if stored is None:
            return
        if stored["staff_id"] != plan.document["staff_id"]:
            plan.reject("this slot's assignment was handed to another staff member (override "
                        "or swap); import it under its current staff member")
        elif stored.get("assignment_type") == "self_allocated" or stored.get("is_locked"):
            plan.reject("the staff member holds a locked self-allocation in this slot")

    @staticmethod
    def _status(plan: SlotPlan) -> str:
        if plan.stored is None:
            return CREATED
        if _class_tuples(plan.stored.get("classes", [])) == _class_tuples(
                plan.document["classes"]):
            return UNCHANGED
        return UPDATED

    def wanted_keys(self, plan: SlotPlan) -> set[tuple[str, str]]:
        if self.settings.allow_overlapping_assignments:
            return set(plan.held)  # no claims are written or checked: leave them as they are
        return class_keys(plan.document["classes"])

    # writing

    def write(self, plans: list[SlotPlan]) -> None:
        ClaimWriter(self.ctx.school_id).insert_missing([p for p in plans if p.live],
                                                       self.wanted_keys)
        self._write_assignments([p for p in plans if p.written])
        self._delete_released_claims(plans)
        self._record_audit([p for p in plans if p.written])

    def _write_assignments(self, plans: list[SlotPlan]) -> None:
        if not plans:
            return
        locks = self._lock_updates([p for p in plans if p.status == UPDATED])
        plans = [p for p in plans if p.live]
        try:
            self._bulk_write(plans)
        finally:
            RevisionLock._get_collection().delete_many({"_id": {"$in": locks}})

    def _lock_updates(self, updates: list[SlotPlan]) -> list[ObjectId]:
        """Take the revision lock of every assignment the batch updates, as the API does
        (see documents/timetable.py); an update whose lock is held elsewhere is rejected."""
        locks = [{"_id": ObjectId(), "school_id": self.ctx.school_id,
                  "target_id": plan.document["_id"], "version": plan.stored.get("version", 0) + 1,
                  "created_at": utcnow()} for plan in updates]
        if not locks:
            return []
        refused = insert_unique(RevisionLock._get_collection(), locks)
        for index in refused:
            updates[index].reject("the assignment is being changed right now; re-run the import")
        return [lock["_id"] for index, lock in enumerate(locks) if index not in refused]

    def _bulk_write(self, plans: list[SlotPlan]) -> None:
        if not plans:
            return
        try:
            result = Assignment._get_collection().bulk_write(
                [self._operation(p) for p in plans], ordered=False)
            failed, updated = set(), result.matched_count
        except BulkWriteError as exc:
            failed = {error["index"] for error in exc.details.get("writeErrors", [])}
            updated = exc.details.get("nMatched", 0)
        for index in failed:
            plans[index].reject("the staff member's slot was booked meanwhile; re-run the import")
        updates = [p for p in plans if p.live and p.status == UPDATED]
        if updated < len(updates):
            self._reject_lost_updates(updates)

    @staticmethod
    def _operation(plan: SlotPlan):
        document = plan.document
        if plan.status == CREATED:
            return InsertOne(document)
        return UpdateOne(
            {"_id": document["_id"], "school_id": document["school_id"],
             "staff_id": document["staff_id"], "version": plan.stored.get("version", 0)},
            {"$set": {"classes": document["classes"], "updated_at": document["updated_at"]},
             "$inc": {"version": 1}})

    def _reject_lost_updates(self, updates: list[SlotPlan]) -> None:
        """Some version-guarded update matched nothing: find which, by reading them back."""
        now = {a["_id"]: a for a in Assignment._get_collection().find(
            {"_id": {"$in": [p.document["_id"] for p in updates]}}, {"version": 1, "classes": 1})}
        for plan in updates:
            current = now.get(plan.document["_id"], {})
            ours = (current.get("version") == plan.stored.get("version", 0) + 1
                    and _class_tuples(current.get("classes", []))
                    == _class_tuples(plan.document["classes"]))
            if not ours:
                plan.reject("the assignment changed meanwhile; re-run the import")

    def _delete_released_claims(self, plans: list[SlotPlan]) -> None:
        """Claims this run inserted for rejected plans, and claims a written (or unchanged)
        assignment no longer holds; the assignments are written first, so no claim goes
        before its assignment stopped needing it."""
        doomed = []
        for plan in plans:
            if not plan.live:
                ids = plan.inserted_claim_ids
            elif plan.document is not None:
                ids = [plan.held[key]["_id"] for key in set(plan.held) - self.wanted_keys(plan)]
            else:
                continue
            if ids:
                doomed.append({"assignment_id": plan.document["_id"], "_id": {"$in": ids}})
        if doomed:
            SlotClaim._get_collection().delete_many(
                {"school_id": self.ctx.school_id, "$or": doomed})

    def _record_audit(self, plans: list[SlotPlan]) -> None:
        """One import_create event naming every assignment the batch created, and one
        import_update event per changed assignment, inserted in one round trip."""
        created = [p.document["_id"] for p in plans if p.status == CREATED]
        events = [audit.bulk_event(self.ctx.actor, self.ctx.school_id, "import_create", ENTITY,
                                   created)] if created else []
        events += [audit.audit_event(
            self.ctx.actor, self.ctx.school_id, "import_update", ENTITY, plan.document["_id"],
            before={"classes": plan.stored.get("classes", [])},
            after={"classes": plan.document["classes"]})
            for plan in plans if plan.status == UPDATED]
        audit.record_many(events)

    # dry run

    def check_claims_read_only(self, plans: list[SlotPlan]) -> None:
        """Dry run: report the double bookings against the stored claims and the rows seen
        so far, writing nothing."""
        for plan in plans:
            if not plan.live:
                continue
            missing = {_claim_id_of(plan.document, *k): k
                       for k in self.wanted_keys(plan) - set(plan.held)}
            clash = sorted(k for claim, k in missing.items() if claim in self.taken)
            if clash:
                plan.reject(_double_booking(*clash[0]), plan.line_of(*clash[0]))
            else:
                self.taken.update(missing)


class ClaimWriter:
    """Step 2 of the protocol for a whole batch."""

    def __init__(self, school_id):
        self.school_id = school_id
        self.collection = SlotClaim._get_collection()

    def insert_missing(self, plans: list[SlotPlan], wanted_keys) -> None:
        now = utcnow()
        pending = [(plan, claim_document(plan.document, kind, key, now))
                   for plan in plans
                   for kind, key in sorted(wanted_keys(plan) - set(plan.held))]
        failed = self._insert(pending)
        if failed and self._release_stale([doc for _, doc in failed]):
            failed = self._insert(failed)
        for plan, doc in failed:
            plan.reject(_double_booking(doc["kind"], doc["key"]),
                        plan.line_of(doc["kind"], doc["key"]))

    def _insert(self, pending: list[tuple[SlotPlan, dict]]) -> list[tuple[SlotPlan, dict]]:
        """Insert in one round trip; the (plan, claim) pairs that hit a taken class/room."""
        if not pending:
            return []
        failures = insert_unique(self.collection, [doc for _, doc in pending])
        for index, (plan, doc) in enumerate(pending):
            if index not in failures:
                plan.inserted_claim_ids.append(doc["_id"])
        return [pending[index] for index in sorted(failures)]

    def _release_stale(self, refused: list[dict]) -> bool:
        """Delete the holders of refused claims that a crashed writer left behind: older than
        the grace period and not backed by their assignment. True when any was released."""
        holders = list(self.collection.find(
            {"school_id": self.school_id, "_id": {"$in": [d["_id"] for d in refused]},
             "created_at": {"$lt": utcnow() - timedelta(seconds=CLAIM_GRACE_SECONDS)}}))
        if not holders:
            return False
        backing = {a["_id"]: a for a in Assignment._get_collection().find(
            {"school_id": self.school_id,
             "_id": {"$in": [h["assignment_id"] for h in holders]}})}
        stale = [{"_id": h["_id"], "assignment_id": h["assignment_id"]} for h in holders
                 if not _backed(h, backing.get(h["assignment_id"]))]
        if stale:
            self.collection.delete_many({"school_id": self.school_id, "$or": stale})
        return bool(stale)


def _backed(claim: dict, assignment: dict | None) -> bool:
    return assignment is not None and claim["_id"] in claim_ids(
        assignment["school_id"], assignment["day_of_week"], assignment["period_id"],
        _class_infos(assignment.get("classes", [])))


def _claim_id_of(assignment: dict, kind: str, key: str) -> str:
    return claim_id(assignment["school_id"], assignment["day_of_week"], assignment["period_id"],
                    kind, key)


def _double_booking(kind: str, key: str) -> str:
    return f"double booking: {kind} {key!r} is already taught in this slot by someone else"


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
    assignments = list(Assignment._get_collection().find(
        {"school_id": ctx.school_id, "assignment_type": {"$in": list(IMPORTED_TYPES)},
         "period_id": {"$in": list(numbers)}}).batch_size(10000))
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
