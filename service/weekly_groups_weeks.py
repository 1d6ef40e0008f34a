"""The week document (`ProgramWeek`, see documents/weekly_groups.py) and what every weekly
groups manager shares: program and week lookups, and changing a week in one compare-and-set.

A change of a week's memberships goes through `WeekChange`: it plans the new members of the
groups it touches on the document it read, checks capacity and "one group per student" on
it, and writes them with the move log records in ONE conditional update
(`service.aggregates.change`, compare-and-set on `version`); a lost race plans again on the
fresh document. The log records are inserted right after (`log_moves`).
"""

from __future__ import annotations

import copy
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime

from bson import ObjectId
from pymongo import UpdateOne

from documents.base import utcnow
from documents.connection import insert_unique
from documents.weekly_groups import Program, ProgramStudent, ProgramWeek, StudentMove
from service.aggregates import change
from service.base import SchoolService
from service.errors import Conflict, NotFound, ValidationFailed
from service.ids import unique_ids

STUDENT_FIELDS = ("program_id", "name", "ability_level", "birth_date", "customer_id", "email",
                  "first_week")
# What readers of a week need: never the log records of its last change.
WEEK_FIELDS = {"last_change": 0}
# What the log records of one change share, kept once in the week's `last_change`.
SHARED = ("school_id", "program_id", "week_number", "week_version", "reason", "actor_id",
          "created_at", "change_id")


def weeks() -> object:
    return ProgramWeek._get_collection()


def natural(name: str) -> list:
    """Sort key putting "Group 2" before "Group 10"."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"(\d+)", name)]


def capacity(count: int, max_size: int) -> str:
    return f"{count}/{max_size}"


def group_snapshot(group: dict) -> dict:
    """A group (a `Group` as stored) as it starts in a week: its base name, no members."""
    return {"group_id": group["_id"], "base_name": group["base_name"],
            "ability_level": group.get("ability_level"), "name": None,
            "max_size": group["max_size"], "instructor": None, "members": [], "waitlist": []}


def group_at(week: dict, group_id) -> tuple[int, dict] | None:
    """(index, group) of the group in the week document, or None."""
    return next(((index, group) for index, group in enumerate(week.get("groups") or [])
                 if group["group_id"] == group_id), None)


def placements(week: dict) -> dict[ObjectId, ObjectId]:
    """student id -> the id of their group that week."""
    return {member["student_id"]: group["group_id"] for group in week.get("groups") or []
            for member in group["members"]}


def group_summary(group: dict) -> dict:
    """A week's group as the API shows it, without its students."""
    instructor = group.get("instructor")
    return {"group_id": group["group_id"], "base_name": group["base_name"],
            "name": group.get("name") or group["base_name"],
            "ability_level": group.get("ability_level"), "max_size": group["max_size"],
            "instructor": {"id": instructor["user_id"], "name": instructor.get("name"),
                           "email": instructor.get("email")} if instructor else None,
            "capacity": capacity(len(group["members"]), group["max_size"])}


def create_weeks(school_id, program_id, week_numbers: Iterable[int]) -> int:
    """The program's week documents that do not exist yet; answers how many were created."""
    now = utcnow()
    documents = [{"school_id": school_id, "program_id": program_id, "week_number": week,
                  "groups": [], "last_change": {}, "version": 0, "created_at": now,
                  "updated_at": now} for week in week_numbers]
    return len(documents) - len(insert_unique(weeks(), documents))


def add_groups(school_id, program_id, groups: list[dict], week_numbers: Iterable[int]) -> None:
    """Each group (as stored) into those weeks of the program that lack it, in one round
    trip: a conditional push per group and week, so present snapshots are kept as they are.
    (Per week, not one update of many weeks: mongomock would share the pushed object.)"""
    now = utcnow()
    pushes = [UpdateOne({"school_id": school_id, "program_id": program_id, "week_number": week,
                         "groups.group_id": {"$ne": group["_id"]}},
                        {"$push": {"groups": group_snapshot(group)}, "$inc": {"version": 1},
                         "$set": {"updated_at": now}})
              for group in groups for week in week_numbers]
    if pushes:
        weeks().bulk_write(pushes, ordered=False)


def log_moves(records: list[dict], settled: list[dict] = ()) -> None:
    """Insert the log records of a week change, and those of the change before it (`settled`:
    `logged_change` of the week as read) in case that one's writer died before logging them.
    Records already logged are refused by their ids; a change this process logged itself is
    not sent again (an import's batches follow each other on one week)."""
    with _LOGGED_LOCK:
        if settled and settled[0]["_id"] in _LOGGED_HERE:
            settled = ()
    insert_unique(StudentMove._get_collection(), [*settled, *records])
    if records:
        with _LOGGED_LOCK:
            _LOGGED_HERE.append(records[0]["_id"])


# The first record id of each change this process logged lately. Only a shortcut: a change
# forgotten here is sent again and refused by its ids.
_LOGGED_HERE: deque = deque(maxlen=64)
_LOGGED_LOCK = threading.Lock()


def kept_change(records: list[dict]) -> dict:
    """The log records of a change as the week keeps them: what they share once, then per
    move its id, student and groups (a third of the bytes of the records: an import batch
    rewrites a week of thousands of members, and the server's cost grows with its size)."""
    if not records:
        return {}
    return {**{key: records[0][key] for key in SHARED},
            "moves": [[r["_id"], r["student_id"], r["from_group_id"], r["to_group_id"]]
                      for r in records]}


def logged_change(week: dict) -> list[dict]:
    """The log records of the week's last change (see `kept_change`)."""
    kept = week.get("last_change") or {}
    return [{**{key: kept.get(key) for key in SHARED}, "_id": move_id, "student_id": student_id,
             "from_group_id": from_group, "to_group_id": to_group}
            for move_id, student_id, from_group, to_group in kept.get("moves") or []]


class WeekChange:
    """The membership changes of one week in one compare-and-set; see the module docstring.

    `plan(week, change)` looks at the week document as read and calls `change.place(...)`
    for each student going somewhere (None: unassigned); it raises a `DomainError` when a
    rule forbids the change. `run()` answers the document before and after.

    Waitlists: after the plan, every group with a free seat seats its first waiting
    students (`promoted`), in the same update: a seat freed is never lost nor overfilled.
    `change_id` names the change set the change belongs to (one id for all its weeks);
    a change that makes none (`recorded=False`: a student deleted) has None."""

    def __init__(self, service: SchoolService, program_id, week: int, reason: str,
                 change_id: ObjectId | None = None, recorded: bool = True):
        self.service = service
        self.program_id = program_id
        self.week = week
        self.reason = reason
        self.change_id = (change_id or ObjectId()) if recorded else None
        self.promoted: list = []
        self.now = utcnow()
        self.groups: list[dict] = []
        self.indexes: dict = {}  # group id -> its index in `groups`
        self.version = 0
        self.records: list[dict] = []
        self.touched: set[int] = set()
        self.current: dict = {}

    def run(self, plan: Callable[[dict, WeekChange], None]) -> tuple[dict, dict]:
        before, after = change(weeks(), self.service.school_id,
                               {"program_id": self.program_id, "week_number": self.week},
                               lambda week: self.plan_on(week, plan), what="program week")
        if after is not before:
            log_moves(self.records, logged_change(before))
        return before, after

    def plan_on(self, week: dict, plan: Callable[[dict, WeekChange], None]) -> dict | None:
        """The update `plan` makes of the week document as read (None: nothing changes).
        Alone, a dry run."""
        if week.get("closed"):
            raise NotFound(f"Week {self.week} is being dropped from the program.")
        self._start(week)
        plan(week, self)
        self._seat_waiting()
        if not self.records and not self.touched and not self.regrouped:
            return None
        if not self.regrouped:
            # only the groups touched (a week may hold thousands of members); their indexes
            # are those the compare-and-set on the version vouches for
            changed = {f"groups.{index}": self.groups[index] for index in self.touched}
        else:  # groups added or removed: the whole list, one form every backend applies alike
            changed = {"groups": self.groups}
        return {"$set": {**changed, "last_change": kept_change(self.records),
                         "updated_at": self.now}}

    def _start(self, week: dict) -> None:
        # groups are copied when first touched: a week may hold thousands of members
        self.groups = list(week.get("groups") or [])
        self.indexes = {group["group_id"]: i for i, group in enumerate(self.groups)}
        self.version = week.get("version") or 0
        self.current = placements(week)
        self.records, self.touched, self.promoted = [], set(), []
        self.regrouped = False

    def _touch(self, group_id) -> dict:
        """The group of this change, copied from the document read when first touched."""
        index = self.indexes[group_id]
        if index not in self.touched:
            group = self.groups[index]
            self.groups[index] = {**group, "members": list(group["members"]),
                                  "waitlist": list(group.get("waitlist") or [])}
            self.touched.add(index)
        return self.groups[index]

    def waiting(self, group_id) -> list:
        """The students waiting for the group, first first."""
        return [w["student_id"] for w in self.group(group_id).get("waitlist") or []]

    def wait(self, student_id, group_id) -> bool:
        """The student at the end of the group's waitlist (False: already there or in it)."""
        if self.current.get(student_id) == group_id or student_id in self.waiting(group_id):
            return False
        self._touch(group_id)["waitlist"].append({"student_id": student_id, "since": self.now})
        return True

    def forget(self, student_id) -> None:
        """The student off every waitlist of the week (they left the program)."""
        for group in list(self.groups):
            if student_id in (w["student_id"] for w in group.get("waitlist") or []):
                touched = self._touch(group["group_id"])
                touched["waitlist"] = [w for w in touched["waitlist"]
                                       if w["student_id"] != student_id]

    def _seat_waiting(self) -> None:
        """Free seats to the first waiting students; a student seated leaves a seat behind,
        which the loop offers in turn (each round takes one student off a waitlist)."""
        seated = True
        while seated:
            seated = False
            for group in self.groups:
                waitlist = group.get("waitlist") or []
                if waitlist and len(group["members"]) < group["max_size"]:
                    student_id = waitlist[0]["student_id"]
                    self._touch(group["group_id"])["waitlist"] = waitlist[1:]
                    self.place(student_id, group["group_id"], reason="waitlist")
                    self.promoted.append(student_id)
                    seated = True

    def group(self, group_id) -> dict:
        return self.groups[self.indexes[group_id]]

    def place(self, student_id, group_id, joined_at: datetime | None = None,
              reason: str | None = None) -> None:
        """The student into the group this week (None: into no group). No capacity check:
        the plan checks what it promises."""
        previous = self.current.get(student_id)
        if previous == group_id:
            return
        if previous is not None:
            left = self._touch(previous)
            left["members"] = [m for m in left["members"] if m["student_id"] != student_id]
        if group_id is not None:
            entered = self._touch(group_id)
            entered["members"].append(
                {"student_id": student_id, "joined_at": joined_at or self.now})
            entered["waitlist"] = [w for w in entered["waitlist"]
                                   if w["student_id"] != student_id]
        self.current[student_id] = group_id
        self.records.append(self._record(student_id, previous, group_id, reason))

    def set_group(self, group_id, **fields) -> None:
        """Change the week's fields of a group (name, instructor, max_size)."""
        if any(self.group(group_id).get(k) != v for k, v in fields.items()):
            self._touch(group_id).update(fields)

    def add_group(self, snapshot: dict) -> None:
        """A group the week lacks (its snapshot), appended."""
        if snapshot["group_id"] not in self.indexes:
            self.indexes[snapshot["group_id"]] = len(self.groups)
            self.groups.append(copy.deepcopy(snapshot))
            self.touched.add(len(self.groups) - 1)
            self.regrouped = True

    def remove_group(self, group_id) -> None:
        """The group out of the week, its members unassigned and its waitlist dropped."""
        if group_id not in self.indexes:
            return
        for member in list(self.group(group_id)["members"]):
            self.place(member["student_id"], None)
        for other in list(self.indexes):  # every group is rewritten: each a copy
            self._touch(other)
        del self.groups[self.indexes[group_id]]
        self.indexes = {group["group_id"]: i for i, group in enumerate(self.groups)}
        self.touched = set(range(len(self.groups)))
        self.regrouped = True

    def _record(self, student_id, from_group, to_group, reason: str | None = None) -> dict:
        return {"_id": ObjectId(), "school_id": self.service.school_id,
                "program_id": self.program_id, "student_id": student_id,
                "week_number": self.week, "week_version": self.version + 1,
                "from_group_id": from_group, "to_group_id": to_group,
                "reason": reason or self.reason,
                "actor_id": self.service.actor.user_id, "created_at": self.now,
                "change_id": self.change_id}


class WeeklyService(SchoolService):
    """What the weekly groups managers share: the program and week lookups."""

    def get_program(self, program_id) -> Program:
        return self.get(Program, program_id, "program")

    def load_week(self, program_id, week: int) -> dict:
        found = weeks().find_one({"school_id": self.school_id, "program_id": program_id,
                                  "week_number": week}, WEEK_FIELDS)
        if found is None:
            raise NotFound(f"Week {week} of the program is missing; `rota repair` restores it.")
        return found

    def students_query(self, program_id):
        return ProgramStudent.objects.for_school(self.school_id).filter(
            program_id=program_id).only(*STUDENT_FIELDS).order_by("name", "id").as_pymongo()

    def require_week_in_url(self, program: Program, week: int) -> None:
        if not 1 <= week <= program.max_weeks:
            raise NotFound(f"The program has weeks 1 to {program.max_weeks}; no week {week}.")

    def require_week_in_body(self, program: Program, week: int, field: str) -> None:
        if not 1 <= week <= program.max_weeks:
            raise ValidationFailed(
                f"{field} must be a week of the program (1 to {program.max_weeks}).",
                {field: [f"Must be between 1 and {program.max_weeks}."]})

    def students_of_program(self, program: Program, student_ids: list) -> list[ObjectId]:
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


def group_full(max_size: int, seats: int) -> Conflict:
    return Conflict(f"The group has not {seats} free seat(s) left this week.",
                    code="group_full", details={"max_size": max_size, "seats": seats})
