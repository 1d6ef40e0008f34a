"""Editing and deleting programs, groups and program students.

Each edit that touches memberships goes through the week documents first, one
compare-and-set per week, and changes the program, group or student document after, so a
crash in between leaves nothing wrong that a retry or `rota repair` does not settle:

- shrinking a program closes its last weeks one by one (refused while one holds members:
  a move landing meanwhile makes the close fail, never the move), then lowers `max_weeks`,
  then drops the closed weeks; repair reopens closed weeks the program still has and drops
  those it no longer has;
- deleting a group takes it out of every week (members unassigned with `force`, else 409
  while any week holds members), then deletes the group (repair restores a group left in
  no week as an empty group: harmless);
- deleting a student takes them out of every week, then deletes them.
"""

from __future__ import annotations

from datetime import datetime

from mongoengine.errors import NotUniqueError
from pymongo.errors import DuplicateKeyError

from documents.weekly_groups import (
    ChangeSet,
    Group,
    Program,
    ProgramStudent,
    StudentMove,
    StudentNote,
)
from service import preconditions
from service.aggregates import change, update_where
from service.errors import Conflict, DomainError, NotFound, ValidationFailed
from service.ids import object_id
from service.weekly_groups import customer_key, midnight, student_summary
from service.weekly_groups_changes import audit_moves, record_change_set
from service.weekly_groups_weeks import (
    WEEK_FIELDS,
    WeekChange,
    WeeklyService,
    add_groups,
    create_weeks,
    weeks,
)

PROGRAM_FIELDS = ("name", "description", "start_date", "end_date", "carry_forward")
GROUP_FIELDS = ("base_name", "ability_level", "max_size")


class GroupRemoval(WeeklyService):
    """Groups out of every week of a program, then deleted."""

    def __init__(self, service: WeeklyService, program: Program):
        super().__init__(service.ctx)
        self.program = program

    def remove(self, group_ids: set, force: bool, reason: str) -> set:
        """The groups out of every week (members unassigned when `force`; else a group
        holding members anywhere stays: answered are the ids removed everywhere)."""
        week_docs = self._weeks_with(group_ids)
        # a group busy in any week is kept in all of them (checked again in each update)
        kept: set = set() if force else {
            g["group_id"] for w in week_docs for g in w["groups"]
            if g["group_id"] in group_ids and (g["members"] or g.get("waitlist"))}
        changes = []
        for week_doc in week_docs:
            def plan(doc, week_change, ids=group_ids):
                for group_id in ids - kept:
                    if group_id not in week_change.indexes:
                        continue
                    group = week_change.group(group_id)
                    if not force and (group["members"] or group.get("waitlist")):
                        kept.add(group_id)
                    else:
                        week_change.remove_group(group_id)
            week_change = WeekChange(self, self.program.id, week_doc["week_number"], reason,
                                     changes[0].change_id if changes else None)
            week_change.run(plan)
            changes.append(week_change)
        removed = group_ids - kept
        if removed:
            Group.objects.for_school(self.school_id).filter(id__in=list(removed)).delete()
        if any(c.records for c in changes):
            record_change_set(self, self.program.id, reason, changes)
            audit_moves(self, [r for c in changes for r in c.records])
        return removed

    def remove_unused_generated(self, generated: list, used: set) -> list[str]:
        """Generated groups a generation did not use and that are empty in every week."""
        candidates = set(generated) - used
        if not candidates:
            return []
        return sorted(str(g) for g in self.remove(candidates, False, "generate"))

    def _weeks_with(self, group_ids: set) -> list[dict]:
        return list(weeks().find({"school_id": self.school_id, "program_id": self.program.id,
                                  "groups.group_id": {"$in": list(group_ids)}}, WEEK_FIELDS
                                 ).sort("week_number", 1))


class WeeklyEdits(WeeklyService):
    """PATCH and DELETE of programs, groups and program students; every edit audited."""

    # ---- programs

    def update_program(self, program_id, **fields) -> Program:
        self.require_admin()
        program = self.get_program(program_id)
        start = midnight(fields.get("start_date", program.start_date))
        end = midnight(fields.get("end_date", program.end_date))
        if start and end and end < start:
            raise ValidationFailed("end_date is before start_date.",
                                   {"end_date": ["Must not be before start_date."]})
        changes = {k: midnight(v) if isinstance(v, datetime) or k.endswith("_date") else v
                   for k, v in fields.items() if k in PROGRAM_FIELDS}
        before = {k: getattr(program, k) for k in changes}
        # If-Match: the first write of the program states the version; a later step (the
        # weeks of a shrink) is held against what this request read.
        preconditions.check(program.id, program.version)
        if changes:
            self._set_fields(program, changes)
        new_max = fields.get("max_weeks")
        if new_max is not None and new_max != program.max_weeks:
            before["max_weeks"] = program.max_weeks
            changes["max_weeks"] = new_max
            (self._grow if new_max > program.max_weeks else self._shrink)(program, new_max)
        self.audit("update", "program", program.id, before=before, after=changes)
        return self.get_program(program.id)

    def _grow(self, program: Program, new_max: int) -> None:
        """The program's new weeks, then its new `max_weeks` (repair restores weeks a crash
        left missing), then every group in the new weeks."""
        added = range(program.max_weeks + 1, new_max + 1)
        create_weeks(self.school_id, program.id, added)
        self._set_max_weeks(program, new_max, lambda current: None)
        groups = list(Group.objects.for_school(self.school_id).filter(
            program_id=program.id).as_pymongo())
        add_groups(self.school_id, program.id, groups, added)

    def _shrink(self, program: Program, new_max: int) -> None:
        """409 `weeks_hold_members` while a dropped week holds members (checked in the
        compare-and-set that closes it); 409 `current_week_dropped` for the current week."""
        if program.current_week > new_max:
            raise Conflict(f"The program is in week {program.current_week}; it cannot end "
                           f"before it.", code="current_week_dropped",
                           details={"current_week": program.current_week})
        dropped = list(range(new_max + 1, program.max_weeks + 1))
        closed = []
        try:
            for week in dropped:
                change(weeks(), self.school_id, {"program_id": program.id,
                                                 "week_number": week},
                       close_empty_week, what="program week")
                closed.append(week)
        except DomainError:  # a week holding members (or missing): none stays closed
            self._reopen(program, closed)
            raise

        def still_fits(current: dict) -> None:
            if current["current_week"] > new_max:
                raise Conflict("The program moved past the new last week meanwhile.",
                               code="current_week_dropped",
                               details={"current_week": current["current_week"]})
        try:
            self._set_max_weeks(program, new_max, still_fits)
        except Conflict:
            self._reopen(program, closed)
            raise
        weeks().delete_many({"school_id": self.school_id, "program_id": program.id,
                             "week_number": {"$gt": new_max}, "closed": True})

    def _set_fields(self, program: Program, changes: dict) -> None:
        try:
            written = update_where(Program._get_collection(), self.school_id,
                                   {"_id": program.id}, {"$set": changes})
        except DuplicateKeyError:
            raise Conflict(f"A program named {changes['name']!r} already exists.",
                           code="duplicate", details={"name": changes["name"]}) from None
        if written is None:
            raise NotFound("No program with that id.")

    def _set_max_weeks(self, program: Program, new_max: int, check) -> None:
        def plan(current: dict) -> dict:
            check(current)
            return {"$set": {"max_weeks": new_max}}
        change(Program._get_collection(), self.school_id, {"_id": program.id}, plan,
               what="program")

    def _reopen(self, program: Program, closed: list[int]) -> None:
        if closed:
            weeks().update_many({"school_id": self.school_id, "program_id": program.id,
                                 "week_number": {"$in": closed}},
                                {"$set": {"closed": False}, "$inc": {"version": 1}})

    def delete_program(self, program_id) -> None:
        """The program first (every route answers 404 from then on), then what it owned."""
        self.require_admin()
        program = self.get_program(program_id)
        deleted = Program._get_collection().delete_one(
            {"_id": program.id, "school_id": self.school_id, **preconditions.guard(program.id)})
        if not deleted.deleted_count:
            current = Program._get_collection().find_one(
                {"_id": program.id, "school_id": self.school_id}, {"version": 1})
            if current is not None:
                preconditions.check(program.id, current.get("version"))
            raise NotFound(f"No program with id {program_id!r}.")
        preconditions.written(program.id)
        for model in (ProgramStudent, Group, StudentMove, ChangeSet, StudentNote):
            model.objects.for_school(self.school_id).filter(program_id=program.id).delete()
        weeks().delete_many({"school_id": self.school_id, "program_id": program.id})
        self.audit("delete", "program", program.id, before={"name": program.name,
                                                           "max_weeks": program.max_weeks})

    # ---- groups

    def update_group(self, program_id, group_id, **fields) -> Group:
        """The group's base name, level and default size; every week's snapshot follows
        (a week's own name is kept). 409 `group_too_small` when a week holds more members
        than the new size."""
        self.require_admin()
        program = self.get_program(program_id)
        group = self._group_of(program, group_id)
        changes = {k: v for k, v in fields.items() if k in GROUP_FIELDS}
        if not changes:
            return group
        week_docs = self._weeks_of(program, group.id)
        for week_doc in week_docs:  # all checked before any is changed
            fits_in(week_doc, group.id, changes)
        for week_doc in week_docs:  # and each again in its compare-and-set
            def plan(doc, week_change, gid=group.id):
                fits_in(doc, gid, changes)
                week_change.set_group(gid, **changes)
            WeekChange(self, program.id, week_doc["week_number"], "edit").run(plan)
        before = {k: getattr(group, k) for k in changes}
        try:
            Group.objects.for_school(self.school_id).filter(id=group.id).update(
                **{f"set__{k}": v for k, v in changes.items()})
        except NotUniqueError:
            raise Conflict(f"The program already has a group named {changes['base_name']!r}.",
                           code="duplicate", details={"base_name": changes["base_name"]}
                           ) from None
        self.audit("update", "weekly_group", group.id, before=before, after=changes)
        return self.get(Group, group.id, "group")

    def delete_group(self, program_id, group_id, force: bool = False) -> None:
        """409 `group_has_members` while any week holds members, unless `force`: then they
        are unassigned (a change set, which undo can revert only while the group exists)."""
        self.require_admin()
        program = self.get_program(program_id)
        group = self._group_of(program, group_id)
        removed = GroupRemoval(self, program).remove({group.id}, force, "delete_group")
        if not removed:
            raise Conflict("The group has members; delete with force=true to unassign them.",
                           code="group_has_members", details={"group_id": str(group.id)})
        self.audit("delete", "weekly_group", group.id,
                   before={"base_name": group.base_name, "max_size": group.max_size},
                   after={"force": force})

    def _group_of(self, program: Program, group_id) -> Group:
        group = Group.objects.for_school(self.school_id).filter(
            id=object_id(group_id, "group"), program_id=program.id).first()
        if group is None:
            raise NotFound(f"No group with id {group_id!r} in this program.")
        return group

    def _weeks_of(self, program: Program, group_id) -> list[dict]:
        return list(weeks().find({"school_id": self.school_id, "program_id": program.id,
                                  "groups.group_id": group_id}, WEEK_FIELDS))

    # ---- students

    def update_student(self, program_id, student_id, **fields) -> dict:
        self.require_admin()
        program = self.get_program(program_id)
        student = self._student_of(program, student_id)
        if "first_week" in fields and fields["first_week"] is not None:
            self.require_week_in_body(program, fields["first_week"], "first_week")
        changes = {k: midnight(v) if k == "birth_date" else v for k, v in fields.items()}
        if changes.get("email"):
            changes["email"] = changes["email"].strip().lower()
        if "customer_id" in changes:
            changes["customer_key"] = customer_key(changes["customer_id"], student.id)
        before = {k: getattr(student, k) for k in changes if k != "customer_key"}
        try:
            ProgramStudent.objects.for_school(self.school_id).filter(id=student.id).update(
                **{f"set__{k}": v for k, v in changes.items()})
        except NotUniqueError:
            raise Conflict(f"customer_id {changes['customer_id']!r} is already used in this "
                           f"school.", code="duplicate",
                           details={"customer_id": changes["customer_id"]}) from None
        changes.pop("customer_key", None)
        self.audit("update", "program_student", student.id, before=before, after=changes)
        stored = ProgramStudent.objects.for_school(self.school_id).filter(
            id=student.id).as_pymongo().first()
        return student_summary(stored)

    def delete_student(self, program_id, student_id) -> None:
        """Out of every week's groups and waitlists first, then deleted with their notes."""
        self.require_admin()
        program = self.get_program(program_id)
        student = self._student_of(program, student_id)
        changes = []
        for week_doc in weeks().find({"school_id": self.school_id, "program_id": program.id},
                                     {"week_number": 1}).sort("week_number", 1):
            def plan(doc, week_change, sid=student.id):
                week_change.forget(sid)
                week_change.place(sid, None)
            # no change set: an undo must never place a deleted student
            week_change = WeekChange(self, program.id, week_doc["week_number"], "remove",
                                     recorded=False)
            week_change.run(plan)
            changes.append(week_change)
        audit_moves(self, [r for c in changes for r in c.records])
        ProgramStudent.objects.for_school(self.school_id).filter(id=student.id).delete()
        StudentNote.objects.for_school(self.school_id).filter(student_id=student.id).delete()
        self.audit("delete", "program_student", student.id,
                   before={"name": student.name, "customer_id": student.customer_id})

    def _student_of(self, program: Program, student_id) -> ProgramStudent:
        student = ProgramStudent.objects.for_school(self.school_id).filter(
            id=object_id(student_id, "student"), program_id=program.id).first()
        if student is None:
            raise NotFound(f"No student with id {student_id!r} in this program.")
        return student


def close_empty_week(week: dict) -> dict:
    """The update closing a week being dropped; 409 `weeks_hold_members` when it has any."""
    held = sum(len(g["members"]) for g in week.get("groups") or [])
    if held:
        raise Conflict(f"Week {week['week_number']} holds {held} member(s); unassign them "
                       f"before shortening the program.", code="weeks_hold_members",
                       details={"week_number": week["week_number"], "members": held})
    return {"$set": {"closed": True}}


def fits_in(week: dict, group_id, changes: dict) -> None:
    """409 `group_too_small` when the group holds more members that week than its new size."""
    snapshot = next(g for g in week["groups"] if g["group_id"] == group_id)
    if len(snapshot["members"]) > changes.get("max_size", snapshot["max_size"]):
        raise Conflict(f"Week {week['week_number']} holds {len(snapshot['members'])} "
                       f"members, more than {changes['max_size']}.", code="group_too_small",
                       details={"week_number": week["week_number"]})
