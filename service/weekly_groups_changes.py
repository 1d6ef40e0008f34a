"""Change sets of a program's memberships and their undo.

Every membership change (a move, a swap, a generation, a copy, a carry-forward, an undo)
is recorded as a `ChangeSet` right after its week updates: per week the moves it made and
the week version it produced. An undo puts the students of one change set back where they
were, one compare-and-set per week whose plan first checks that each of them is still where
the change set left them and that their old groups have room (else 409 `undo_conflict`
naming them): what a later change touched is never overwritten.
"""

from __future__ import annotations

from bson import ObjectId

from documents.base import utcnow
from documents.connection import insert_unique
from documents.weekly_groups import ChangeSet, ProgramStudent
from service import audit, webhooks
from service.aggregates import update_where
from service.errors import Conflict, DomainError, NotFound
from service.ids import object_id
from service.pagination import Page, paginate
from service.weekly_groups_weeks import WeekChange, WeeklyService

IN_CHUNK = 100  # ids per `$in`: the embedded server's cost grows with its square


def record_change_set(service: WeeklyService, program_id, reason: str,
                      changes: list[WeekChange], undo_of=None) -> dict | None:
    """The change set of these week changes (None when none of them moved anyone)."""
    weeks = [{"week_number": c.week, "week_version": c.records[0]["week_version"],
              "moves": [[r["student_id"], r["from_group_id"], r["to_group_id"]]
                        for r in c.records]}
             for c in changes if c.records]
    if not weeks:
        return None
    change_set = {"_id": changes[0].change_id, "school_id": service.school_id,
                  "program_id": program_id, "reason": reason,
                  "actor_id": service.actor.user_id, "weeks": weeks, "undo_of": undo_of,
                  "undone_by": None, "created_at": utcnow()}
    # `rota repair` may have restored it from the week already: refused by its id
    insert_unique(ChangeSet._get_collection(), [change_set])
    return change_set


def audit_moves(service: WeeklyService, records: list[dict]) -> None:
    """An audit event and a `student.moved` webhook per student moved."""
    audit.record_many([audit.audit_event(
        service.actor, service.school_id, r["reason"], "program_student", r["student_id"],
        before={"week_number": r["week_number"], "group_id": r["from_group_id"]},
        after={"week_number": r["week_number"], "group_id": r["to_group_id"]})
        for r in records])
    webhooks.emit_many(service.ctx, "student.moved", records)


def change_set_summary(change_set: dict) -> dict:
    students = {move[0] for week in change_set["weeks"] for move in week["moves"]}
    return {"id": change_set["_id"], "reason": change_set["reason"],
            "actor_id": change_set.get("actor_id"), "created_at": change_set["created_at"],
            "weeks": [{"week_number": w["week_number"], "week_version": w["week_version"],
                       "moves": [{"student_id": s, "from_group_id": f, "to_group_id": t}
                                 for s, f, t in w["moves"]]} for w in change_set["weeks"]],
            "student_count": len(students), "undo_of": change_set.get("undo_of"),
            "undone_by": change_set.get("undone_by")}


def net_moves(moves: list) -> dict:
    """student -> (where they were before the change, where it left them)."""
    net: dict = {}
    for student_id, from_group, to_group in moves:
        net[student_id] = (net[student_id][0] if student_id in net else from_group, to_group)
    return {s: ends for s, ends in net.items() if ends[0] != ends[1]}


class WeekChanges(WeeklyService):
    """The change sets of a program and their undo."""

    def list_changes(self, program_id, page: int = 1, page_size: int = 50) -> Page:
        program = self.get_program(program_id)
        found = paginate(ChangeSet.objects.for_school(self.school_id).filter(
            program_id=program.id).order_by("-created_at", "-id").as_pymongo(), page, page_size)
        found.items = [change_set_summary(c) for c in found.items]
        return found

    def undo(self, program_id, change_id) -> dict:
        """Revert one change set: its students back where they were, week by week; 409
        `undo_conflict` naming the students a later change touched (or whose old group has
        no room now). The undo is a change set of its own, audited."""
        self.require_admin()
        program = self.get_program(program_id)
        original = ChangeSet._get_collection().find_one(
            {"school_id": self.school_id, "program_id": program.id,
             "_id": object_id(change_id, "change set")})
        if original is None:
            raise NotFound(f"No change set with id {change_id!r} in this program.")
        if original.get("undone_by"):
            raise undo_conflict("The change set was already undone.",
                                {s for w in original["weeks"] for s, _, _ in w["moves"]},
                                undone_by=str(original["undone_by"]))
        self._require_students(original)
        undo_id, changes = ObjectId(), []
        ordered = sorted(original["weeks"], key=lambda w: w["week_number"])
        for week in ordered:  # every week checked before any is changed
            WeekChange(self, program.id, week["week_number"], "undo").plan_on(
                self.load_week(program.id, week["week_number"]),
                lambda doc, ch, moves=week["moves"]: plan_undo(moves, ch))
        try:
            for week in ordered:  # and each again in its own compare-and-set
                change = WeekChange(self, program.id, week["week_number"], "undo", undo_id)
                change.run(lambda doc, ch, moves=week["moves"]: plan_undo(moves, ch))
                changes.append(change)
        except DomainError:  # a later week changed meanwhile: the weeks undone are kept
            record_change_set(self, program.id, "undo", changes, undo_of=original["_id"])
            audit_moves(self, [r for c in changes for r in c.records])
            raise
        undone = record_change_set(self, program.id, "undo", changes, undo_of=original["_id"])
        records = [r for c in changes for r in c.records]
        undone_by = undo_id
        update_where(ChangeSet._get_collection(), self.school_id,
                     {"_id": original["_id"], "undone_by": None},
                     {"$set": {"undone_by": undone_by}})
        audit_moves(self, records)
        self.audit("undo", "weekly_change_set", original["_id"],
                   before={"reason": original["reason"]},
                   after={"undone_by": undone_by, "students": len(records)})
        return change_set_summary(undone or {**original, "_id": undone_by, "reason": "undo",
                                             "weeks": [], "undo_of": original["_id"],
                                             "undone_by": None, "created_at": utcnow()})

    def _require_students(self, change_set: dict) -> None:
        """409 naming the students of the change set deleted since (never placed again)."""
        named = list({s for w in change_set["weeks"] for s, _, _ in w["moves"]})
        present = set()
        for start in range(0, len(named), IN_CHUNK):
            present.update(s["_id"] for s in ProgramStudent.objects.for_school(
                self.school_id).filter(id__in=named[start:start + IN_CHUNK]).only(
                "id").as_pymongo())
        if len(present) < len(named):
            raise undo_conflict("Some of these students were deleted since.",
                                set(named) - present)


def plan_undo(moves: list, change: WeekChange) -> None:
    """Each student of the change set back to where they were, on the week as read."""
    back = net_moves(moves)
    moved_on = {s for s, (_, left_in) in back.items() if change.current.get(s) != left_in}
    gone = {s for s, (was_in, _) in back.items()
            if was_in is not None and was_in not in change.indexes}
    if moved_on or gone:
        raise undo_conflict("Later changes touched some of these students this week.",
                            moved_on | gone)
    for student_id, (was_in, _) in back.items():
        change.place(student_id, was_in)
    crowded = {s for s, (was_in, _) in back.items() if was_in is not None
               and len(change.group(was_in)["members"]) > change.group(was_in)["max_size"]}
    if crowded:
        raise undo_conflict("Their old group has no room for them any more this week.", crowded)


def undo_conflict(message: str, student_ids, **details) -> Conflict:
    return Conflict(message, code="undo_conflict",
                    details={"student_ids": sorted(str(s) for s in student_ids), **details})
