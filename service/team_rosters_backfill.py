"""The project teams of records made before project teams existed: evaluations, project
assessments and note contexts that name a course group (`group_id`) but no project team.

One team per distinct (project, group) of a school: members copied from the group, or, when
the group has none (or is gone), inferred from the records' participants (`backfill_source:
"inference"`). The teams are born locked (records link to them), then the records are linked.

Safe to re-run and crash-safe, in that order: a backfilled team has the natural key (project,
lineage "backfill:<group id>", team_version 1) under a unique index, so inserting it twice is
skipped; a record is linked by an update whose filter states it has no project team yet. A
crash between the two leaves locked teams without records, which the next run finds and
links; a second run finds nothing to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from bson import ObjectId
from pymongo import UpdateMany

from documents.accounts import User
from documents.base import utcnow
from documents.connection import insert_unique
from documents.team_rosters import (
    CourseGroup,
    Evaluation,
    NoteContext,
    ProjectAssessment,
    ProjectTeam,
)
from service import audit
from service.team_rosters import RosterService

LOCK_REASON = "backfill: records made before project teams link to it"
LINKED_MODELS = (Evaluation, ProjectAssessment, NoteContext)


def backfill_lineage(group_id) -> str:
    return f"backfill:{group_id}"


@dataclass
class BackfillReport:
    """What a backfill found and wrote (or, in a dry run, would write); reports of several
    schools add up."""

    evaluation_combinations: int = 0
    assessment_combinations: int = 0
    unique_combinations: int = 0
    teams_created: int = 0
    teams_existing: int = 0
    members_added: int = 0
    teams_inferred: int = 0
    linked_evaluations: int = 0
    linked_assessments: int = 0
    linked_note_contexts: int = 0

    def __add__(self, other: BackfillReport) -> BackfillReport:
        return BackfillReport(**{f.name: getattr(self, f.name) + getattr(other, f.name)
                                 for f in fields(self)})


LINKED_FIELD = {Evaluation: "linked_evaluations", ProjectAssessment: "linked_assessments",
                NoteContext: "linked_note_contexts"}


@dataclass
class Combo:
    """One (project, group) that legacy records name, and their participants."""

    project_id: ObjectId
    group_id: ObjectId
    participant_ids: list[ObjectId] = field(default_factory=list)

    @property
    def key(self) -> tuple:
        return self.project_id, backfill_lineage(self.group_id)


@dataclass
class TeamPlan:
    combo: Combo
    name: str
    member_ids: list[ObjectId]
    source: str  # "backfill" (group members) or "inference" (participants)


class TeamBackfill(RosterService):
    """`rota backfill-project-teams` for one school."""

    def backfill(self, dry_run: bool = False) -> BackfillReport:
        report = BackfillReport()
        combos: dict[tuple, Combo] = {}
        report.evaluation_combinations = self._collect(Evaluation, combos)
        report.assessment_combinations = self._collect(ProjectAssessment, combos)
        self._collect(NoteContext, combos)
        report.unique_combinations = len(combos)
        existing = self._existing_teams(combos)
        report.teams_existing = len(existing)
        plans = self._plan([c for key, c in combos.items() if key not in existing])
        created = plans if dry_run else self._insert(plans)
        report.teams_created = len(created)
        report.members_added = sum(len(p.member_ids) for p in created)
        report.teams_inferred = sum(p.source == "inference" for p in created)
        teams = [] if dry_run else list(self._existing_teams(combos).values())
        for model in LINKED_MODELS:
            linked = self._unlinked(model).count() if dry_run else self.link(model, teams)
            setattr(report, LINKED_FIELD[model], linked)
        return report

    def _unlinked(self, model):
        return model.objects.for_school(self.school_id).filter(
            project_team_id=None, group_id__ne=None, project_id__ne=None)

    def _collect(self, model, combos: dict[tuple, Combo]) -> int:
        """Add the (project, group) pairs of `model`'s unlinked records to `combos`; answer
        how many distinct pairs `model` names."""
        seen = set()
        records = self._unlinked(model).only("project_id", "group_id",
                                             "participant_ids").batch_size(10000)
        for record in records:
            combo = Combo(record.project_id, record.group_id)
            combo = combos.setdefault(combo.key, combo)
            combo.participant_ids.extend(record.participant_ids or [])
            seen.add(combo.key)
        return len(seen)

    def _existing_teams(self, combos: dict[tuple, Combo]) -> dict[tuple, ProjectTeam]:
        if not combos:
            return {}
        teams = ProjectTeam.objects.for_school(self.school_id).filter(
            project_id__in=list({c.project_id for c in combos.values()}),
            lineage__in=[lineage for _, lineage in combos], team_version=1).batch_size(10000)
        return {(t.project_id, t.lineage): t for t in teams if (t.project_id, t.lineage) in combos}

    def _plan(self, combos: list[Combo]) -> list[TeamPlan]:
        """Members from the group, else from the participants; only users of the school."""
        groups = {g.id: g for g in CourseGroup.objects.for_school(self.school_id).filter(
            id__in=[c.group_id for c in combos])}
        wanted = {uid for c in combos for uid in c.participant_ids}
        wanted |= {uid for g in groups.values() for uid in g.member_ids}
        users = set(User.objects.for_school(self.school_id).filter(
            id__in=list(wanted)).scalar("id"))
        plans = []
        for combo in combos:
            group = groups.get(combo.group_id)
            from_group = [u for u in (group.member_ids if group else []) if u in users]
            inferred = [u for u in dict.fromkeys(combo.participant_ids) if u in users]
            plans.append(TeamPlan(
                combo, group.name if group else f"Group {combo.group_id}",
                from_group or inferred, "backfill" if from_group else "inference"))
        return plans

    def _insert(self, plans: list[TeamPlan]) -> list[TeamPlan]:
        """Insert the missing teams, locked, in one round trip; one that exists already (a
        parallel or crashed run made it) is skipped. Answers the plans this run inserted."""
        now = utcnow()
        docs = [self._team_of(plan, now) for plan in plans]
        skipped = insert_unique(ProjectTeam._get_collection(), docs)
        created = [(plan, doc) for i, (plan, doc) in enumerate(zip(plans, docs, strict=True))
                   if i not in skipped]
        audit.record_many([audit.audit_event(
            self.actor, self.school_id, "backfill", "project_team", doc["_id"],
            after={"project_id": plan.combo.project_id, "team_id": plan.combo.group_id,
                   "member_ids": plan.member_ids, "backfill_source": plan.source})
            for plan, doc in created])
        return [plan for plan, _ in created]

    def _team_of(self, plan: TeamPlan, now) -> dict:
        combo = plan.combo
        return {
            "_id": ObjectId(), "school_id": self.school_id, "project_id": combo.project_id,
            "lineage": backfill_lineage(combo.group_id), "team_version": 1,
            "team_id": combo.group_id, "display_name_at_time": plan.name,
            "members": [{"user_id": uid, "added_at": now} for uid in plan.member_ids],
            "member_ids": plan.member_ids, "members_version": 0, "locked": True,
            "locked_at": now, "locked_reason": LOCK_REASON, "backfill_source": plan.source,
            "created_at": now, "updated_at": now, "version": 0}

    def link(self, model, teams: list[ProjectTeam]) -> int:
        """Link every still unlinked record of `model` to its (project, group)'s team, in
        one round trip; audited as one event per kind of record."""
        if not teams:
            return 0
        result = model._get_collection().bulk_write([UpdateMany(
            {"school_id": self.school_id, "project_id": team.project_id,
             "group_id": team.team_id, "project_team_id": None},
            {"$set": {"project_team_id": team.id, "team_version": team.team_version,
                      "team_name": team.display_name_at_time,
                      "members_version": team.members_version,
                      "member_ids": list(team.member_ids)},
             "$inc": {"version": 1}}) for team in teams], ordered=False)
        if result.modified_count:
            self.audit("backfill_link", model._get_collection_name(),
                       after={"linked": result.modified_count})
        return result.modified_count
