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

from documents.accounts import User
from documents.connection import insert_unique
from documents.weekly_groups import Group, Program, ProgramStudent
from service.context import STAFF_ROLES
from service.errors import ValidationFailed
from service.ids import field_object_id
from service.weekly_groups import WeeklyGroups, student_summary
from service.weekly_groups_changes import audit_moves, record_change_set
from service.weekly_groups_edits import GroupRemoval
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

    def move_students(self, program_id, week: int, student_ids: list, group_id,
                      waitlist: bool = False) -> dict:
        """Move every student into the group for this week (`group_id` None: out of any
        group), or none: 409 `group_full` when they do not all fit. With `waitlist`, those
        beyond the free seats wait for one instead (`waitlisted`). Staff may move students
        too: instructors rebalance their own weeks."""
        self.require_role(STAFF_ROLES)
        program = self.get_program(program_id)
        self.require_week_in_url(program, week)
        target = field_object_id(group_id, "group_id") if group_id is not None else None
        students = self.students_of_program(program, student_ids)
        staying: list = []
        waiting: list = []

        def plan(week_doc: dict, change: WeekChange) -> None:
            if target is not None and target not in change.indexes:
                raise self._not_in_week(program, week, target)
            staying[:] = [s for s in students if change.current.get(s) == target]
            moving = [s for s in students if s not in staying]
            free = self._free_seats(change, target, len(moving))
            if len(moving) > free and not waitlist:
                raise group_full(change.group(target)["max_size"], len(moving))
            waiting[:] = [s for s in moving[free:] if change.wait(s, target)]
            for student_id in moving[:free]:
                change.place(student_id, target)

        change = WeekChange(self, program.id, week, "move")
        _, after = change.run(plan)
        self._settle(program, [change], "move")
        group = next((g for g in after["groups"] if g["group_id"] == target), None)
        return {"week_number": week, "group_id": target,
                "moved_student_ids": [r["student_id"] for r in change.records
                                      if r["reason"] == "move"],
                "unchanged_student_ids": staying, "waitlisted": waiting,
                "change_id": change.change_id if change.records else None,
                "capacity": capacity(len(group["members"]), group["max_size"])
                if group else None}

    @staticmethod
    def _free_seats(change: WeekChange, target, wanted: int) -> int:
        """Seats the movers may take: none while others wait for the group."""
        if target is None:
            return wanted
        group = change.group(target)
        if change.waiting(target):
            return 0
        return max(0, group["max_size"] - len(group["members"]))

    def _not_in_week(self, program: Program, week: int, group_id) -> ValidationFailed:
        later = Group.objects.for_school(self.school_id).filter(
            id=group_id, program_id=program.id).only("base_name").first()
        if later is not None:
            return ValidationFailed(
                f"The group {later.base_name!r} starts in a later week than week {week}.",
                {"group_id": [f"Not a group of week {week}: it starts later."]},
                code="group_not_in_week")
        return ValidationFailed("group_id is not a group of this program.",
                                {"group_id": ["Not a group of this program."]},
                                code="group_not_in_program")

    def swap(self, program_id, week: int, student_a, student_b) -> dict:
        """The two students exchange their groups this week in one compare-and-set: full
        groups stay full, never over. 422 when they are in the same group (or both in
        none)."""
        self.require_role(STAFF_ROLES)
        program = self.get_program(program_id)
        self.require_week_in_url(program, week)
        a, b = self.students_of_program(program, [student_a, student_b]) \
            if student_a != student_b else (None, None)
        if a is None:
            raise ValidationFailed("A student cannot swap with themselves.",
                                   {"student_b": ["Must differ from student_a."]})

        def plan(week_doc: dict, change: WeekChange) -> None:
            group_a, group_b = change.current.get(a), change.current.get(b)
            if group_a == group_b:
                raise ValidationFailed("The two students are in the same group this week.",
                                       {"student_b": ["In the same group as student_a."]},
                                       code="same_group")
            change.place(a, group_b)
            change.place(b, group_a)

        change = WeekChange(self, program.id, week, "swap")
        change.run(plan)
        self._settle(program, [change], "swap")
        placed = {r["student_id"]: r["to_group_id"] for r in change.records}
        return {"week_number": week, "change_id": change.change_id,
                "student_a": {"student_id": a, "group_id": placed.get(a)},
                "student_b": {"student_id": b, "group_id": placed.get(b)}}

    def _settle(self, program: Program, changes: list[WeekChange], reason: str) -> None:
        """After the week updates: the change set, the audit and webhooks of every student
        moved, and a notification to each student a waitlist seated."""
        record_change_set(self, program.id, reason, changes)
        audit_moves(self, [r for c in changes for r in c.records])
        for change in changes:
            self._notify_seated(program, change)

    def _notify_seated(self, program: Program, change: WeekChange) -> None:
        """The users whose email is a seated student's (students are not users themselves)."""
        if not change.promoted:
            return
        seated = {r["student_id"]: r["to_group_id"] for r in change.records
                  if r["reason"] == "waitlist"}
        emails = {s["email"]: s["_id"] for s in ProgramStudent.objects.for_school(
            self.school_id).filter(id__in=list(seated), email__ne=None).only(
            "email").as_pymongo()}
        for user in User.objects(school_id=self.school_id, email__in=list(emails)).only(
                "email"):
            group_id = seated[emails[user.email.lower()]]
            self.notify(user.id, "weekly_group_seat_taken",
                        f"A seat freed up: you are now in a group of {program.name} in week "
                        f"{change.week}.", {"program_id": str(program.id),
                                            "week_number": change.week,
                                            "group_id": str(group_id)})

    # ---- generation and copies

    def generate_groups(self, program_id, max_group_size: int = 8, week_number: int = 1,
                        dry_run: bool = False, age_band_years: int | None = None,
                        together: list = (), apart: list = ()) -> dict:
        """Groups by ability level, then age band, youngest first, of at most
        `max_group_size`, named "<level> Group <n>" (existing groups of that name are
        reused), keeping the `together` pairs together and the `apart` pairs apart. Replaces
        this week's memberships and the size of the groups used; names and instructors are
        kept; generated groups it leaves empty in every week are removed. `dry_run`: the
        proposed groups, nothing written."""
        self.require_admin()
        program = self.get_program(program_id)
        self.require_week_in_body(program, week_number, "week_number")
        everyone = list(self.students_query(program.id).batch_size(10000))
        students = [s for s in everyone if (s.get("first_week") or 1) <= week_number]
        plan = generation_plan(students, max_group_size, date.today(), age_band_years,
                               self._pairs(program, together, "together"),
                               self._pairs(program, apart, "apart"))
        if dry_run:
            later = [s for s in everyone if (s.get("first_week") or 1) > week_number]
            return self._proposal(program, week_number, plan, max_group_size, later)
        groups = self._ensure_groups(program, plan, max_group_size)
        used = [groups[name] for name in plan]
        targets = {s["_id"]: groups[name]["_id"] for name, members in plan.items()
                   for s in members}
        change = self._replace_week(program, week_number, used, targets, "generate",
                                    {g["_id"]: {"max_size": max_group_size} for g in used})
        add_groups(self.school_id, program.id, used, range(week_number + 1,
                                                           program.max_weeks + 1))
        self._settle(program, [change], "generate")
        removed = GroupRemoval(self, program).remove_unused_generated(
            [g["_id"] for g in groups.values() if g.get("generated")],
            {g["_id"] for g in used})
        self.audit("generate_groups", "program", program.id,
                   after={"week_number": week_number, "max_group_size": max_group_size,
                          "groups": len(plan), "students": len(students),
                          "removed_groups": removed})
        return WeeklyGroups(self.ctx).week_view(program.id, week_number)

    def _pairs(self, program: Program, pairs: list, field: str) -> list[tuple]:
        """The pairs as student ids of this program (422 for others)."""
        wanted = [s for pair in pairs for s in pair]
        if not wanted:
            return []
        self.students_of_program(program, wanted)
        return [(field_object_id(a, field), field_object_id(b, field)) for a, b in pairs]

    def _proposal(self, program: Program, week: int, plan: dict, max_size: int,
                  later: list[dict]) -> dict:
        """The groups a generation would make, in the week view's shape, nothing written."""
        existing = {g["base_name"]: g for g in Group.objects.for_school(self.school_id).filter(
            program_id=program.id, base_name__in=list(plan)).only(
            "base_name").as_pymongo()}
        today = date.today()
        return {"program_id": program.id, "week_number": week, "dry_run": True,
                "current_week": program.current_week,
                "groups": [{"group_id": existing.get(name, {}).get("_id"), "base_name": name,
                            "name": name, "ability_level": level_of(members[0]),
                            "max_size": max_size, "instructor": None,
                            "capacity": capacity(len(members), max_size),
                            "students": [student_summary(s, today) for s in members]}
                           for name, members in plan.items()],
                "unassigned_students": [],
                "not_yet_enrolled_students": [student_summary(s, today) for s in later]}

    def _ensure_groups(self, program: Program, plan: dict[str, list], max_size: int) -> dict:
        """base name -> the stored group, for every group the plan names (created when
        missing; a parallel generation may create some first: they are simply re-read)."""
        def stored():
            return {g["base_name"]: g for g in Group.objects.for_school(self.school_id).filter(
                program_id=program.id).as_pymongo()}
        existing = stored()
        missing = [Group(school_id=self.school_id, program_id=program.id, base_name=name,
                         ability_level=level_of(members[0]), max_size=max_size,
                         generated=True)
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
        change = self._replace_week(program, to_week, used, targets, "copy", {
            g["group_id"]: {"name": g.get("name"), "instructor": g.get("instructor"),
                            "max_size": g["max_size"]} for g in source})
        add_groups(self.school_id, program.id, used, range(to_week + 1, program.max_weeks + 1))
        self._settle(program, [change], "copy")
        self.audit("copy_week", "program", program.id,
                   after={"from_week": from_week, "to_week": to_week, "groups": len(source),
                          "students": len(targets)})
        return WeeklyGroups(self.ctx).week_view(program.id, to_week)

    def _replace_week(self, program: Program, week: int, groups: list[dict], targets: dict,
                      reason: str, settings: dict) -> WeekChange:
        """The week's memberships become `targets` (student -> group), every one of `groups`
        (as stored) in the week with its `settings` (group id -> fields): one
        compare-and-set. Students named nowhere are unassigned; the week's waitlists are
        dropped (they waited in the arrangement replaced), so the result is the plan's."""
        def plan(week_doc: dict, change: WeekChange) -> None:
            for student_id in {w["student_id"] for g in change.groups
                               for w in g.get("waitlist") or []}:
                change.forget(student_id)
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
        return change
