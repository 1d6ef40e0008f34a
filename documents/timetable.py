"""The timetable: settings with their periods, slots with their assignments, department
permissions and alteration requests.

Collections (field names as stored)
-----------------------------------
timetable_settings       one per school: working_days, default_period_duration,
                         allow_overlapping_assignments, periods[embedded Period], version.
                         Periods live inside it so that number uniqueness and "active periods
                         never overlap" are checked and written in ONE compare-and-set on
                         `version` (service.aggregates.change). A period is never removed from
                         the list: delete sets is_active=false, so old assignments keep
                         resolving their period.
timetable_slots          one per (school_id, day_of_week, period_id), unique: the aggregate
                         that holds "no staff member, class or room is booked twice in one
                         slot". Its `assignments` list embeds every assignment of the slot
                         (id, staff_id, classes[class_id, subject, room_number, student_count],
                         assignment_type, is_locked, original_staff_id, override_notes,
                         swap_request_id, activity_name, description, week, the admin's
                         lock (locked_reason, locked_by, locked_at), created_by, updated_by,
                         move_id, exchange_request_id, exchange_refused_id, version,
                         created_at, updated_at). Creating, changing classes, deleting,
                         overriding, locking and swapping an assignment are each ONE
                         compare-and-set of the slot on its `version` (moving it and
                         exchanging two touch two slots: service/timetable_edits.py and
                         service/timetable_exchanges.py): the plan sees every other
                         assignment of the slot, so the check and the write cannot be
                         separated. An assignment's own `version`
                         counts its changes (the API shows it). Indexes: (school_id,
                         assignments.id) finds an assignment's slot, (school_id,
                         assignments.staff_id) a staff member's week, (school_id,
                         assignments.original_staff_id) the lessons they gave away. A slot
                         stays (empty) when its last assignment goes.
timetable_alteration_requests
                         see AlterationRequest; accept touches two aggregates (the request and
                         the slot) in an order that `rota repair` can settle.
timetable_exchange_requests
                         see ExchangeRequest; accept touches the request and two slots.
"""

from __future__ import annotations

from mongoengine import (
    BooleanField,
    DateTimeField,
    DictField,
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


def booking_key(value: str) -> str:
    """The comparable form of a class id or room number: "Room  101 " == "room 101"."""
    return " ".join(str(value).split()).casefold()


def booking_keys(classes) -> set[tuple[str, str]]:
    """The (kind, key) pairs a list of classes books in its slot: ("class", key) for each
    class, ("room", key) for each room named."""
    keys = {("class", booking_key(c.class_id)) for c in classes}
    keys |= {("room", booking_key(c.room_number)) for c in classes
             if c.room_number and booking_key(c.room_number)}
    return keys


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


class Assignment(EmbeddedDocument):
    """One staff member's lesson (or activity) in a slot, embedded in its TimetableSlot.
    `day_of_week` and `period_id` are the slot's: `TimetableSlot.placed` sets them on
    the assignments it hands out, they are not stored twice."""

    id = ObjectIdField(required=True)
    staff_id = ObjectIdField(required=True)
    classes = ListField(EmbeddedDocumentField(ClassInfo), default=list)
    assignment_type = StringField(choices=ASSIGNMENT_TYPES, default="regular")
    is_locked = BooleanField(default=False)
    original_staff_id = ObjectIdField()
    override_notes = StringField()
    swap_request_id = ObjectIdField()
    activity_name = StringField()
    description = StringField()
    # the A/B rotation (service/calendar.py): "A" or "B" runs in that week only, None every
    # week; lessons of different weeks share a slot without booking each other
    week = StringField(choices=("A", "B"))
    # the admin's lock (self-allocations are locked from the start, locked_by unset)
    locked_reason = StringField()
    locked_by = ObjectIdField()
    locked_at = DateTimeField()
    # who made it: staff may change the classes of a lesson only when they made it
    created_by = ObjectIdField()
    updated_by = ObjectIdField()
    # a move between slots adds the copy first, naming the move, then removes the original:
    # a crash in between leaves two copies, and `move_id` tells `rota repair` the newer one
    move_id = ObjectIdField()
    # a two-way exchange (ExchangeRequest): the id it was applied for, or the id it was
    # refused for (the decision of that exchange in this slot, so it is never applied later)
    exchange_request_id = ObjectIdField()
    exchange_refused_id = ObjectIdField()
    version = IntField(default=0)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)


class TimetableSlot(SchoolOwned):
    """One (day, period) of a school with every assignment in it; see the module docstring."""

    meta = {"collection": "timetable_slots",
            "indexes": [
                {"fields": ["school_id", "day_of_week", "period_id"], "unique": True},
                ["school_id", "assignments.id"],
                ["school_id", "assignments.staff_id"],
                ["school_id", "assignments.original_staff_id"],
            ]}

    day_of_week = IntField(required=True, min_value=0, max_value=6)
    period_id = ObjectIdField(required=True)
    assignments = ListField(EmbeddedDocumentField(Assignment), default=list)
    version = IntField(default=0)
    # the import batch that wrote it last: how the importer tells its own conditional
    # updates from the ones that missed, after a bulk write that only reports counts
    last_import = ObjectIdField()

    def placed(self) -> list[Assignment]:
        """The assignments, each knowing its school, day and period."""
        for assignment in self.assignments:
            assignment.school_id = self.school_id
            assignment.day_of_week = self.day_of_week
            assignment.period_id = self.period_id
        return list(self.assignments)


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
    Leaving `pending` is one update filtered on status "pending": exactly one of parallel
    accepts, rejects and cancels wins. Accept moves it to `accepting` (accepted_by,
    accepting_since), then moves the lesson in its slot (filter: still the requester's, and
    `swap_request_id` set to this request), then `accepting` -> `accepted` (or `failed`).
    An `accepting` request is settled from its slot by whoever meets it: accepted at once
    when the slot shows the move, failed once it is older than the grace period.
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
    # members of the target department who declined: the request stays open for the others
    # and is rejected once every member has declined
    declined_by = ListField(ObjectIdField(), default=list)
    version = IntField(default=0)  # every conditional update counts itself here
    updated_at = DateTimeField(default=utcnow)


class ExchangeRequest(SchoolOwned):
    """A two-way exchange: the requester offers their lesson (`assignment_id`, in slot 1)
    for the target's lesson (`target_assignment_id`, in slot 2); both change hands or neither.

    `open_key` as in AlterationRequest (one open exchange per offered lesson). Leaving
    `pending` is one update filtered on status: exactly one of parallel accepts, rejects and
    cancels wins. Accept: pending -> accepting, then slot 1 (the offered lesson to the
    target), then slot 2 (the target's lesson to the requester), each write naming this
    exchange (`exchange_request_id`), then accepting -> accepted. The write in slot 2 decides:
    when it cannot be made it records `exchange_refused_id` there, so no later attempt can
    apply it, and slot 1 is put back (and marked refused too); then -> failed. When both
    lessons share one slot, both change in one write. See service/timetable_exchanges.py.
    """

    meta = {"collection": "timetable_exchange_requests",
            "indexes": [
                {"fields": ["school_id", "open_key"], "unique": True},
                ["school_id", "requester_id", "-created_at"],
                ["school_id", "target_staff_id", "-created_at"],
                ["school_id", "status"],
            ]}

    assignment_id = ObjectIdField(required=True)
    target_assignment_id = ObjectIdField(required=True)
    requester_id = ObjectIdField(required=True)
    target_staff_id = ObjectIdField(required=True)
    day_of_week = IntField(required=True)
    period_id = ObjectIdField(required=True)
    target_day_of_week = IntField(required=True)
    target_period_id = ObjectIdField(required=True)
    # how both lessons were before the exchange, to put slot 1 back when slot 2 refuses
    assignment_before = DictField()
    target_before = DictField()
    reason = StringField(required=True)
    status = StringField(choices=REQUEST_STATUSES, default="pending")
    open_key = StringField(required=True)
    accepting_since = DateTimeField()
    responded_by = ObjectIdField()
    responded_at = DateTimeField()
    response_reason = StringField()
    failure_code = StringField()
    version = IntField(default=0)
    updated_at = DateTimeField(default=utcnow)
