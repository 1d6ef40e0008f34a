"""The `users` import kind: the staff, students and school admins of a school from HR.

Upsert by `external_id` when the row has one and a user of the school carries it, else by
email. One query loads every user the file names (before the first batch), then one
`bulk_write` applies a batch and one insert records its audit events: two round trips per
batch whatever its size. The unique email index refuses what a concurrent writer took meanwhile;
those rows are read and planned once more, so two runs of one file at once both end well.
"""

from __future__ import annotations

from collections.abc import Iterator

from bson import ObjectId
from pymongo import InsertOne, UpdateOne
from pymongo.errors import BulkWriteError

from documents.accounts import User
from documents.connection import DUPLICATE_KEY
from service import audit
from service.context import SchoolContext
from service.imports import CREATED, UNCHANGED, UPDATED, Row, RowResult, rejected
from service.schools import SCHOOL_ROLES

SYNCED_FIELDS = ("email", "name", "role", "department", "external_id", "is_active")


def preload_users(ctx: SchoolContext, rows: list[Row], dry_run: bool) -> KnownUsers:
    """Every stored user the file names, read once (see ImportKind.preload). Each email and
    external_id is on one row of the file, so no batch needs what another one wrote."""
    return KnownUsers.load(ctx, rows)


def import_users(ctx: SchoolContext, rows: list[Row], dry_run: bool,
                 known: KnownUsers | None = None, *, replanned: bool = False) -> list[RowResult]:
    known = known or KnownUsers.load(ctx, rows)
    results: dict[int, RowResult] = {}
    writes: list[tuple[Row, dict, object, dict]] = []  # row, stored (or {}), operation, changes
    for row in rows:
        outcome = _plan_row(ctx, row, known)
        if isinstance(outcome, RowResult):
            results[row.line] = outcome
        else:
            writes.append((row, *outcome))
    failed = {} if dry_run else _bulk_write([operation for _, _, operation, _ in writes])
    events, raced = [], []
    for index, (row, stored, _, changes) in enumerate(writes):
        error = failed.get(index)
        if error is None:
            results[row.line] = RowResult(row.line, UPDATED if stored else CREATED, key=_key(row))
            events.append(_audit_event(ctx, stored, changes))
        elif error.get("code") == DUPLICATE_KEY and not replanned:
            raced.append(row)
        else:
            results[row.line] = rejected(row, _write_error_reason(error), _key(row))
    if not dry_run:
        audit.record_many(events)
    if raced:
        # Another writer (the same file imported twice at once) took an email after this batch
        # read the users: read them again and plan these rows once more, as a re-run would.
        again = import_users(ctx, raced, dry_run, KnownUsers.load(ctx, raced), replanned=True)
        results.update((result.line, result) for result in again)
    return [results[row.line] for row in rows]


def _audit_event(ctx: SchoolContext, stored: dict, changes: dict):
    """An import change: what the row changed, before and after (the whole user if new)."""
    if not stored:
        return audit.audit_event(ctx.actor, ctx.school_id, "import_create", "user",
                                 changes["_id"], after={f: changes.get(f) for f in SYNCED_FIELDS})
    return audit.audit_event(ctx.actor, ctx.school_id, "import_update", "user", stored["_id"],
                             before={f: stored.get(f) for f in changes}, after=changes)


class KnownUsers:
    """The stored users a batch names, by external id (this school) and by email (any)."""

    def __init__(self, ctx: SchoolContext, documents: list[dict]):
        self.school_id = ctx.school_id
        self.by_external_id = {d["external_id"]: d for d in documents
                               if d.get("school_id") == ctx.school_id and d.get("external_id")}
        self.by_email = {d["email"]: d for d in documents}

    @classmethod
    def load(cls, ctx: SchoolContext, rows: list[Row]) -> KnownUsers:
        emails = [row.values["email"].lower() for row in rows]
        external_ids = [row.values["external_id"] for row in rows if "external_id" in row.values]
        query = {"$or": [{"email": {"$in": emails}},
                         {"school_id": ctx.school_id, "external_id": {"$in": external_ids}}]}
        fields = dict.fromkeys(("school_id", "role", *SYNCED_FIELDS), 1)
        return cls(ctx, list(User._get_collection().find(query, fields).batch_size(10000)))

    def match(self, row: Row) -> dict | str | None:
        """The stored user this row describes, None for a new one, or why it cannot be."""
        email, external_id = row.values["email"].lower(), row.values.get("external_id")
        owner = self.by_email.get(email)
        target = self.by_external_id.get(external_id) if external_id else None
        if target is not None:
            if owner is not None and owner["_id"] != target["_id"]:
                return f"email {email} belongs to another user"
            return target
        if owner is None:
            return None
        if owner.get("school_id") != self.school_id:
            return f"email {email} is used outside this school"
        if external_id and owner.get("external_id") not in (None, external_id):
            return f"email {email} belongs to the user with external_id {owner['external_id']}"
        return owner


def _plan_row(ctx: SchoolContext, row: Row, known: KnownUsers):
    """A RowResult (rejected or unchanged), or (stored, operation, changes) to write."""
    problem = _invalid(row)
    if problem:
        return rejected(row, problem, _key(row))
    stored = known.match(row)
    if isinstance(stored, str):
        return rejected(row, stored, _key(row))
    wanted = _wanted(row, stored)
    if stored is None:
        document = User(id=ObjectId(), company_id=ctx.company_id, school_id=ctx.school_id,
                        **wanted).to_mongo().to_dict()
        return {}, InsertOne(document), document
    changes = {f: v for f, v in wanted.items() if stored.get(f) != v}
    if not changes:
        return RowResult(row.line, UNCHANGED, key=_key(row))
    operation = UpdateOne({"_id": stored["_id"], "school_id": ctx.school_id}, {"$set": changes})
    return stored, operation, changes


def _invalid(row: Row) -> str | None:
    email = row.values["email"]
    if "@" not in email or " " in email or email.startswith("@") or email.endswith("@"):
        return f"bad email {email!r}"
    if row.values["role"] not in SCHOOL_ROLES:
        return f"bad role {row.values['role']!r}: one of {', '.join(SCHOOL_ROLES)}"
    return None


def _wanted(row: Row, stored: dict | None) -> dict:
    values, stored = row.values, stored or {}
    external_id = values.get("external_id") or stored.get("external_id")
    # A file without the department column leaves departments as they are.
    department = values.get("department") if row.gives("department") else stored.get(
        "department")
    return {"email": values["email"].lower(), "name": values["name"], "role": values["role"],
            "department": department, "external_id": external_id, "is_active": True}


def _bulk_write(operations: list) -> dict[int, dict]:
    """Apply the batch; answer the write errors of the operations that failed, by index."""
    if not operations:
        return {}
    try:
        User._get_collection().bulk_write(operations, ordered=False)
    except BulkWriteError as exc:
        return {error["index"]: error for error in exc.details.get("writeErrors", [])}
    return {}


def _write_error_reason(error: dict) -> str:
    if error.get("code") == DUPLICATE_KEY:
        return "email already used by another user"
    return f"not written: {error.get('errmsg', 'database error')}"


def _key(row: Row) -> str:
    return row.values.get("external_id") or row.values["email"].lower()


def export_users(ctx: SchoolContext) -> Iterator[dict[str, str]]:
    """The school's active users in the import's columns, by role then email."""
    users = User.objects.for_school(ctx.school_id).filter(
        is_active=True, role__in=SCHOOL_ROLES).order_by("role", "email").only(
        "email", "name", "role", "external_id", "department").batch_size(10000)
    for user in users.as_pymongo():
        yield {"email": user["email"], "name": user["name"], "role": user["role"],
               "external_id": user.get("external_id") or "",
               "department": user.get("department") or ""}
