"""Changing who is in which group in a week: moves, generation and copies of a week.

Each is ONE compare-and-set of the week's document (`WeekChange`, see
service/weekly_groups_weeks.py): capacity and "one group per student" are checked on the
document as read, and a writer that lost the race to another plans again on the fresh one.
So a move never overfills a group whatever runs in parallel, and a generation or a copy
replaces the week exactly as it was when it won (moves before it are replaced, moves after
it apply to its result).
"""

from __future__ import annotations

from datetime import date

from documents.connection import insert_unique
from documents.weekly_groups import Group, Program
from service import audit, webhooks
from service.context import STAFF_ROLES
from service.errors import ValidationFailed
from service.ids import field_object_id
from service.weekly_groups import WeeklyGroups
from service.weekly_groups_generation import generation_plan, level_of
from service.weekly_groups_weeks import (
    WeekChange,
    WeeklyService,
    add_groups,
    capacity,
    group_full,
    group_snapshot,
)


class WeekMoves(WeeklyService):
    """Moves of students between a week's groups, generation and copies of weeks."""

    def move_students(self, program_id, week: int, student_ids: list, group_id) -> dict:
        """Move every student into the group for this week, or none: 409 `group_full` when
        they do not all fit. Staff may move students too: instructors rebalance their own
        weeks."""
        self.require_role(STAFF_ROLES)
        program = self.get_program(program_id)
        self.require_week_in_url(program, week)
        target = field_object_id(group_id, "group_id")
        students = self.students_of_program(program, student_ids)
        staying: list = []

        def plan(week_doc: dict, change: WeekChange) -> None:
            if target not in change.indexes:
                raise ValidationFailed("group_id is not a group of this program.",
                                       {"group_id": ["Not a group of this program."]},
                                       code="group_not_in_program")
            staying[:] = [s for s in students if change.current.get(s) == target]
            moving = [s for s in students if s not in staying]
            group = change.group(target)
            if len(group["members"]) + len(moving) > group["max_size"]:
                raise group_full(group["max_size"], len(moving))
            for student_id in moving:
                change.place(student_id, target)

        change = WeekChange(self, program.id, week, "move")
        _, after = change.run(plan)
        self._audit_moves(change.records)
        group = next(g for g in after["groups"] if g["group_id"] == target)
        return {"week_number": week, "group_id": target,
                "moved_student_ids": [r["student_id"] for r in change.records],
                "unchanged_student_ids": staying,
                "capacity": capacity(len(group["members"]), group["max_size"])}

    def _audit_moves(self, records: list[dict]) -> None:
        audit.record_many([audit.audit_event(
            self.actor, self.school_id, r["reason"], "program_student", r["student_id"],
            before={"week_number": r["week_number"], "group_id": r["from_group_id"]},
            after={"week_number": r["week_number"], "group_id": r["to_group_id"]})
            for r in records])
        webhooks.emit_many(self.ctx, "student.moved", records)

    # ---- generation and copies

    def generate_groups(self, program_id, max_group_size: int = 8, week_number: int = 1) -> dict:
        """Groups by ability level, youngest first, in chunks of `max_group_size`, named
        "<level> Group <n>" (existing groups of that name are reused). Replaces this week's
        memberships and the size of the groups used; names and instructors are kept."""
        self.require_admin()
        program = self.get_program(program_id)
        self.require_week_in_body(program, week_number, "week_number")
        students = list(self.students_query(program.id).batch_size(10000))
        plan = generation_plan(students, max_group_size, date.today())
        groups = self._ensure_groups(program, plan, max_group_size)
        used = [groups[name] for name in plan]
        targets = {s["_id"]: groups[name]["_id"] for name, members in plan.items()
                   for s in members}
        self._replace_week(program, week_number, used, targets, "generate",
                           {g["_id"]: {"max_size": max_group_size} for g in used})
        add_groups(self.school_id, program.id, used, range(week_number + 1,
                                                           program.max_weeks + 1))
        self.audit("generate_groups", "program", program.id,
                   after={"week_number": week_number, "max_group_size": max_group_size,
                          "groups": len(plan), "students": len(students)})
        return WeeklyGroups(self.ctx).week_view(program.id, week_number)

    def _ensure_groups(self, program: Program, plan: dict[str, list], max_size: int) -> dict:
        """base name -> the stored group, for every group the plan names (created when
        missing; a parallel generation may create some first: they are simply re-read)."""
        def stored():
            return {g["base_name"]: g for g in Group.objects.for_school(self.school_id).filter(
                program_id=program.id).as_pymongo()}
        existing = stored()
        missing = [Group(school_id=self.school_id, program_id=program.id, base_name=name,
                         ability_level=level_of(members[0]), max_size=max_size)
                   for name, members in plan.items() if name not in existing]
        if not missing:
            return existing
        insert_unique(Group._get_collection(), [g.to_mongo().to_dict() for g in missing])
        return stored()

    def copy_week(self, program_id, to_week: int, from_week: int) -> dict:
        """Week `to_week` becomes a copy of `from_week`: names, instructors, sizes and
        memberships; whatever `to_week` held before is replaced."""
        self.require_admin()
        program = self.get_program(program_id)
        self.require_week_in_body(program, to_week, "to_week")
        self.require_week_in_body(program, from_week, "from_week")
        if to_week == from_week:
            raise ValidationFailed("A week cannot be copied onto itself.",
                                   {"from_week": ["Must differ from to_week."]})
        source = self.load_week(program.id, from_week)["groups"]
        used = [{"_id": g["group_id"], **g} for g in source]
        targets = {m["student_id"]: g["group_id"] for g in source for m in g["members"]}
        self._replace_week(program, to_week, used, targets, "copy", {
            g["group_id"]: {"name": g.get("name"), "instructor": g.get("instructor"),
                            "max_size": g["max_size"]} for g in source})
        add_groups(self.school_id, program.id, used, range(to_week + 1, program.max_weeks + 1))
        self.audit("copy_week", "program", program.id,
                   after={"from_week": from_week, "to_week": to_week, "groups": len(source),
                          "students": len(targets)})
        return WeeklyGroups(self.ctx).week_view(program.id, to_week)

    def _replace_week(self, program: Program, week: int, groups: list[dict], targets: dict,
                      reason: str, settings: dict) -> None:
        """The week's memberships become `targets` (student -> group), every one of `groups`
        (as stored) in the week with its `settings` (group id -> fields): one
        compare-and-set. Students named nowhere are unassigned."""
        def plan(week_doc: dict, change: WeekChange) -> None:
            for group in groups:
                change.add_group(group_snapshot(group))
            for group_id, fields in settings.items():
                change.set_group(group_id, **fields)
            for student_id in list(change.current):
                if student_id not in targets:
                    change.place(student_id, None)
            for student_id, group_id in targets.items():
                change.place(student_id, group_id)

        change = WeekChange(self, program.id, week, reason)
        change.run(plan)
