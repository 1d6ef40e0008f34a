"""The timetable: settings with their periods, assignments, slot claims, department
permissions and alteration requests.

Collections (field names as stored)
-----------------------------------
timetable_settings       one per school: working_days, default_period_duration,
                         allow_overlapping_assignments, periods[embedded Period], version.
                         Periods live inside it so that number uniqueness and "active periods
                         never overlap" are checked and written in ONE conditional update
                         (filter on `version`, then `$set` the whole list and `$inc` version).
                         A period is never removed from the list: delete sets is_active=false,
                         so old assignments keep resolving their period.
timetable_assignments    one per (school_id, staff_id, day_of_week, period_id): unique index.
                         Plain fields: school_id, staff_id, period_id, day_of_week,
                         classes[embedded: class_id, subject, room_number, student_count],
                         assignment_type (regular|admin_override|peer_swap|self_allocated),
                         is_locked, original_staff_id, override_notes, swap_request_id,
                         activity_name, description, version, created_at, updated_at.
                         Every change of an existing assignment holds a revision lock (below) and
                         is an update_one filtered on the `version` read (and `staff_id` when
                         ownership matters) that `$inc`s version; the classes list is always
                         `$set` whole.
timetable_claims         the claim protocol below.
timetable_revision_locks one per (school_id, target_id, version) under a unique index: the
                         right to write `version` of the settings document, an assignment, or
                         (version 1) to decide an alteration request. See "Revision locks".

Revision locks (why not just a filter on version)
-------------------------------------------------
FerretDB v1 (SQLite) applies update_one / find_one_and_update as read, modify, write back
without re-checking the filter, so two parallel "update where version = 3" can both succeed
(checked: 20 parallel `$inc` report 19 modifications and leave +1). Its unique indexes are
atomic, on insert and on update. So every change of an existing assignment or of the settings:
  1. reads the document (version v),
  2. inserts RevisionLock(target_id=_id, version=v+1); a duplicate key means another writer
     is changing it -> refuse (409) or re-read and retry,
  3. update_one(filter _id, version=v, ...) with `$inc: {version: 1}`,
  4. deletes its lock (a later writer that read v now reliably fails the filter in step 3).
A lock older than CLAIM_GRACE_SECONDS whose document is still at version v was left by a crash
between 2 and 3: the next writer deletes it and retries. The importer must follow the same
steps for assignments it changes; creating an assignment needs no lock (the insert is atomic).

Claim protocol (double booking of a class or a room)
----------------------------------------------------
A claim is one document per taken (school_id, day_of_week, period_id, kind, key), where kind
is "class" or "room" and key is `claim_key(class_id)` / `claim_key(room_number)` (trimmed,
inner whitespace collapsed, case-folded). Its `_id` IS that tuple, written out by `claim_id`,
so the `_id` index refuses a second claim: atomic on MongoDB (a school's documents share one
shard, since school_id leads the `_id` and is the shard key) and on FerretDB, where the `_id`
index is the cheapest unique index (a five-field unique index made every claim cost as much as
an assignment). Each claim also stores its kind, key, and the `assignment_id` it belongs to.
A claim is only ever deleted with a filter on its `assignment_id` too: the `_id` alone names
the slot's class or room, whoever holds it.

Creating an assignment (API or importer) goes:
  1. choose the assignment's `_id` up front;
  2. unless the school's settings have allow_overlapping_assignments=true, insert the claims
     from `claims_for(assignment)` (one per distinct class key, one per distinct non-empty
     room key), all carrying that `assignment_id`; a duplicate key means another assignment
     teaches that class / uses that room in the slot -> refuse (409);
  3. insert the assignment (the staff slot index refuses a second one for the same staff);
  4. if step 2 or 3 fails, delete the claims with this `assignment_id` (only ours).
Adding a class inserts its new claims first, then `$set`s the classes list under a revision
lock; on failure it deletes the claims it inserted (their ids and its assignment_id).
Removing a class or deleting an assignment changes the assignment FIRST, then deletes the
claims no longer backed.
Reassigning (override, swap) changes staff_id only: the claims stay, they belong to the slot.

So a claim can only be stale (not backed by its assignment) after a crash between steps. A
writer that hits a duplicate claim may delete it and retry once when it is older than
CLAIM_GRACE_SECONDS and its assignment is gone or no longer holds that class/room.
With allow_overlapping_assignments=true no class or room claims are written or checked.
"""

from __future__ import annotations

from mongoengine import (
    BooleanField,
    DateTimeField,
    EmbeddedDocument,
    EmbeddedDocumentField,
    IntField,
    ListField,
    ObjectIdField,
    StringField,
)

from documents.base import SchoolOwned, utcnow

ASSIGNMENT_TYPES = ("regular", "admin_override", "peer_swap", "self_allocated")
REQUEST_STATUSES = ("pending", "accepting", "accepted", "rejected", "cancelled", "failed")
OPEN_REQUEST_STATUSES = ("pending", "accepting")
CLAIM_KINDS = ("class", "room")
CLAIM_GRACE_SECONDS = 30


def claim_key(value: str) -> str:
    """The comparable form of a class id or room number: "Room  101 " == "room 101"."""
    return " ".join(str(value).split()).casefold()


class Period(EmbeddedDocument):
    """One period of the school day; `id` is what assignments reference as period_id."""

    id = ObjectIdField(required=True)
    period_number = IntField(required=True)
    period_name = StringField(required=True)
    start_time = StringField(required=True)  # "HH:MM"
    end_time = StringField(required=True)
    duration_minutes = IntField(required=True)
    is_active = BooleanField(default=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)


class TimetableSettings(SchoolOwned):
    meta = {"collection": "timetable_settings",
            "indexes": [{"fields": ["school_id"], "unique": True}]}

    working_days = ListField(IntField(), default=lambda: [0, 1, 2, 3, 4])
    default_period_duration = IntField(default=45)
    allow_overlapping_assignments = BooleanField(default=False)
    periods = ListField(EmbeddedDocumentField(Period), default=list)
    version = IntField(default=0)
    updated_at = DateTimeField(default=utcnow)


class ClassInfo(EmbeddedDocument):
    class_id = StringField(required=True)
    subject = StringField(required=True)
    room_number = StringField()
    student_count = IntField()


class Assignment(SchoolOwned):
    meta = {"collection": "timetable_assignments",
            "indexes": [
                {"fields": ["school_id", "staff_id", "day_of_week", "period_id"], "unique": True},
                ["school_id", "day_of_week", "period_id"],
                ["school_id", "original_staff_id"],
            ]}

    staff_id = ObjectIdField(required=True)
    period_id = ObjectIdField(required=True)
    day_of_week = IntField(required=True, min_value=0, max_value=6)
    classes = ListField(EmbeddedDocumentField(ClassInfo), default=list)
    assignment_type = StringField(choices=ASSIGNMENT_TYPES, default="regular")
    is_locked = BooleanField(default=False)
    original_staff_id = ObjectIdField()
    override_notes = StringField()
    swap_request_id = ObjectIdField()
    activity_name = StringField()
    description = StringField()
    version = IntField(default=0)
    updated_at = DateTimeField(default=utcnow)


class SlotClaim(SchoolOwned):
    """One class or room taken in one slot; see the claim protocol above."""

    meta = {"collection": "timetable_claims",
            "indexes": [["school_id", "assignment_id"]]}

    id = StringField(primary_key=True)  # claim_id(school_id, day_of_week, period_id, kind, key)
    kind = StringField(required=True, choices=CLAIM_KINDS)
    key = StringField(required=True)
    assignment_id = ObjectIdField(required=True)


def claim_id(school_id, day_of_week: int, period_id, kind: str, key: str) -> str:
    return f"{school_id}:{day_of_week}:{period_id}:{kind}:{key}"


def claim_keys(classes) -> set[tuple[str, str]]:
    """The (kind, key) pairs a list of classes takes in its slot."""
    keys = {("class", claim_key(c.class_id)) for c in classes}
    keys |= {("room", claim_key(c.room_number)) for c in classes
             if c.room_number and claim_key(c.room_number)}
    return keys


def claim_ids(school_id, day_of_week: int, period_id, classes) -> set[str]:
    """The ids of the claims a list of classes needs in its slot."""
    return {claim_id(school_id, day_of_week, period_id, kind, key)
            for kind, key in claim_keys(classes)}


def claims_for(assignment: Assignment, keys: set[tuple[str, str]] | None = None
               ) -> list[SlotClaim]:
    """The claim documents of an assignment (or of some of its keys), ready to insert."""
    wanted = claim_keys(assignment.classes) if keys is None else keys
    return [SlotClaim(id=claim_id(assignment.school_id, assignment.day_of_week,
                                  assignment.period_id, kind, key),
                      school_id=assignment.school_id, kind=kind, key=key,
                      assignment_id=assignment.id)
            for kind, key in sorted(wanted)]


class RevisionLock(SchoolOwned):
    """The right to write `version` of one document; see "Revision locks" above."""

    meta = {"collection": "timetable_revision_locks",
            "indexes": [{"fields": ["school_id", "target_id", "version"], "unique": True}]}

    target_id = ObjectIdField(required=True)
    version = IntField(required=True)


class DepartmentPermission(SchoolOwned):
    """Absent means both allowed."""

    meta = {"collection": "timetable_department_permissions",
            "indexes": [{"fields": ["school_id", "department"], "unique": True}]}

    department = StringField(required=True)
    allow_alterations = BooleanField(default=True)
    allow_inbound = BooleanField(default=True)
    updated_at = DateTimeField(default=utcnow)


class AlterationRequest(SchoolOwned):
    """A request to hand one assignment to a named colleague or to a whole department.

    `open_key` is str(assignment_id) while the request is pending or accepting and
    "closed:<request id>" afterwards: its unique index allows one open request per assignment.
    Leaving `pending` (accept, reject, cancel, fail) first inserts RevisionLock(target_id=the
    request id, version=1): only one caller ever gets it. Accept then marks the request
    `accepting`, moves the assignment (revision lock, filter staff_id=requester + version),
    then marks it `accepted` (or `failed`); a request whose decision lock is older than the
    grace period while it is still open is repaired from the assignment's `swap_request_id`.
    """

    meta = {"collection": "timetable_alteration_requests",
            "indexes": [
                {"fields": ["school_id", "open_key"], "unique": True},
                ["school_id", "requester_id", "-created_at"],
                ["school_id", "target_staff_id", "-created_at"],
                ["school_id", "target_department", "-created_at"],
                ["school_id", "status"],
            ]}

    assignment_id = ObjectIdField(required=True)
    day_of_week = IntField(required=True)
    period_id = ObjectIdField(required=True)
    requester_id = ObjectIdField(required=True)
    requester_department = StringField()
    target_staff_id = ObjectIdField()
    target_department = StringField()
    reason = StringField(required=True)
    status = StringField(choices=REQUEST_STATUSES, default="pending")
    open_key = StringField(required=True)
    accepted_by = ObjectIdField()
    accepting_since = DateTimeField()
    responded_by = ObjectIdField()
    responded_at = DateTimeField()
    response_reason = StringField()
    failure_code = StringField()
    updated_at = DateTimeField(default=utcnow)
