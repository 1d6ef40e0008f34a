"""The weeks of a program as time goes: advancing a week (carrying the memberships forward),
the current week, and an instructor's groups this week and next."""

from __future__ import annotations

from documents.weekly_groups import Program, ProgramStudent
from service.aggregates import change
from service.context import STAFF_ROLES
from service.errors import Conflict
from service.weekly_groups import student_summary
from service.weekly_groups_changes import audit_moves, record_change_set
from service.weekly_groups_weeks import (
    WEEK_FIELDS,
    WeekChange,
    WeeklyService,
    group_summary,
    natural,
    weeks,
)

IN_CHUNK = 100  # ids per `$in`: the embedded server's cost grows with its square


class WeekCalendar(WeeklyService):
    """advance-week, the current week, "my groups"."""

    def advance_week(self, program_id, carry_forward: bool | None = None) -> dict:
        """One week on; 409 `final_week` at the last. Parallel calls advance one week each:
        each is a compare-and-set on the week it read. With `carry_forward` (default: the
        program's setting) the new week takes the previous week's members and instructors
        when it holds no members yet (one compare-and-set of the new week, a change set)."""
        self.require_admin()
        program_oid = self.get_program(program_id).id

        def next_week(program: dict) -> dict:
            if program["current_week"] >= program["max_weeks"]:
                raise Conflict(f"The program is already at its final week "
                               f"({program['max_weeks']}).", code="final_week",
                               details={"max_weeks": program["max_weeks"]})
            return {"$inc": {"current_week": 1}}

        before, after = change(Program._get_collection(), self.school_id,
                               {"_id": program_oid}, next_week, what="program")
        carry = after.get("carry_forward", False) if carry_forward is None else carry_forward
        carried = self._carry(after, after["current_week"]) if carry else 0
        self.audit("advance_week", "program", program_oid,
                   before={"current_week": before["current_week"]},
                   after={"current_week": after["current_week"], "carried": carried})
        return {"id": program_oid, "current_week": after["current_week"],
                "max_weeks": after["max_weeks"], "carried": carried}

    def _carry(self, program: dict, week: int) -> int:
        """The previous week's members into `week` when it has none; answers how many."""
        source = self.load_week(program["_id"], week - 1)["groups"]
        enrolled = {s["_id"] for s in ProgramStudent.objects.for_school(self.school_id).filter(
            program_id=program["_id"], first_week__gt=week).only("id").as_pymongo()}

        def plan(week_doc: dict, week_change: WeekChange) -> None:
            if week_change.current:
                return  # the week was filled already: left as it is
            for group in source:
                if group["group_id"] not in week_change.indexes:
                    continue
                if group.get("instructor") and not week_change.group(
                        group["group_id"]).get("instructor"):
                    week_change.set_group(group["group_id"], instructor=group["instructor"])
                for member in group["members"]:
                    if member["student_id"] not in enrolled:
                        week_change.place(member["student_id"], group["group_id"])

        week_change = WeekChange(self, program["_id"], week, "carry_forward")
        week_change.run(plan)
        record_change_set(self, program["_id"], "carry_forward", [week_change])
        audit_moves(self, week_change.records)
        return len(week_change.records)

    def current_week(self, program_id) -> dict:
        """The program's current week as the week view shows it."""
        from service.weekly_groups import WeeklyGroups

        program = self.get_program(program_id)
        return WeeklyGroups(self.ctx).week_view(program.id, program.current_week)

    def my_groups(self) -> list[dict]:
        """The groups the caller teaches in the current and the next week of every program,
        with their students. Three round trips and one per 100 students: the weeks they
        teach in, their programs, the students."""
        self.require_role(STAFF_ROLES)
        me = self.actor.user_id
        taught = list(weeks().find({"school_id": self.school_id,
                                    "groups.instructor.user_id": me}, WEEK_FIELDS))
        programs = {p["_id"]: p for p in Program.objects.for_school(self.school_id).filter(
            id__in=list({w["program_id"] for w in taught})).only(
            "name", "current_week").as_pymongo()}
        entries = []
        for week_doc in taught:
            program = programs.get(week_doc["program_id"])
            if program is None or week_doc["week_number"] - program["current_week"] not in (0, 1):
                continue
            for group in week_doc["groups"]:
                if (group.get("instructor") or {}).get("user_id") == me:
                    entries.append((program, week_doc["week_number"], group))
        students = self._students([m["student_id"] for _, _, g in entries for m in g["members"]])
        entries.sort(key=lambda e: (e[0]["name"], e[1], natural(e[2]["base_name"])))
        return [{**group_summary(group), "program_id": program["_id"],
                 "program_name": program["name"], "week_number": week,
                 "is_current_week": week == program["current_week"],
                 "students": sorted((students[m["student_id"]] for m in group["members"]
                                     if m["student_id"] in students),
                                    key=lambda s: s["name"])}
                for program, week, group in entries]

    def _students(self, ids: list) -> dict:
        found = {}
        for start in range(0, len(ids), IN_CHUNK):
            found.update((s["_id"], student_summary(s)) for s in ProgramStudent.objects.for_school(
                self.school_id).filter(id__in=ids[start:start + IN_CHUNK]).as_pymongo())
        return found
